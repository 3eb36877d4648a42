"""Binary audio frames to float32 mono samples, one decoder per session.

Normative: ``docs/PROTOCOL.md`` "Audio": PCM frames form a byte stream (an odd byte waits
for the next frame, an empty frame is ignored); Opus is one packet per frame, and a corrupt packet
is an error for that packet only, the session continues. G.711 (``pcm_mulaw``, ``pcm_alaw``:
ITU-T G.711, one byte per sample, telephony's 8 kHz by default) is a byte stream too.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import opuslib
import opuslib.api.decoder
import opuslib.api.info

Encoding = Literal["pcm_s16le", "opus", "pcm_mulaw", "pcm_alaw"]

# Rates the Opus decoder produces natively (RFC 6716 section 2); anything else is decoded at 48 kHz
# and left to the resampler.
OPUS_NATIVE_RATES_HZ = (8000, 12000, 16000, 24000, 48000)
OPUS_FALLBACK_RATE_HZ = 48000
# The longest Opus packet holds 120 ms (RFC 6716 section 3.2.5); the decoder needs room for it.
OPUS_MAX_PACKET_MS = 120
PCM16_SCALE = 32768.0


class AudioDecodeError(Exception):
    """A frame that cannot be decoded; the message names the reason."""


class Decoder(Protocol):
    """Turns one binary frame into float32 mono samples at ``output_rate``."""

    output_rate: int

    packets: bool  # True: each frame is one indivisible packet; False: a byte stream

    def decode(self, data: bytes) -> np.ndarray:
        """Called for every binary frame; returns float32 mono samples (possibly empty)."""
        ...

    def duration_ms(self, data: bytes) -> int:
        """The audio ``data`` holds, read without decoding it (rounded up)."""
        ...


class PcmS16leDecoder:
    """Signed 16-bit little-endian mono PCM; frames are slices of one byte stream."""

    packets = False

    def __init__(self, sample_rate: int) -> None:
        self.output_rate = sample_rate
        self._odd_byte = b""

    def duration_ms(self, data: bytes) -> int:
        """The audio ``data`` completes, counting the odd byte kept from the last frame."""
        samples = (len(self._odd_byte) + len(data)) // 2
        return -(-samples * 1000 // self.output_rate)

    def decode(self, data: bytes) -> np.ndarray:
        """Called per frame; returns samples in [-1, 1), keeping a trailing odd byte for later."""
        if self._odd_byte:
            data = self._odd_byte + data
        usable = len(data) & ~1
        self._odd_byte = bytes(data[usable:])
        if usable == 0:
            return np.zeros(0, dtype=np.float32)
        pcm = np.frombuffer(data, dtype="<i2", count=usable // 2)
        return pcm.astype(np.float32) / np.float32(PCM16_SCALE)


def _mulaw_table() -> np.ndarray:
    """The 256 linear values of G.711 mu-law (ITU-T G.711 table 2; bytes are stored
    inverted)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84 << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """The 256 linear values of G.711 A-law (ITU-T G.711 table 1; even bits inverted),
    scaled to 16 bits."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


G711_TABLES = {"pcm_mulaw": _mulaw_table(), "pcm_alaw": _alaw_table()}


class G711Decoder:
    """G.711 mu-law or A-law: one byte per sample, so any split of the stream decodes alike."""

    packets = False

    def __init__(self, law: Literal["pcm_mulaw", "pcm_alaw"], sample_rate: int) -> None:
        self.output_rate = sample_rate
        self._table = G711_TABLES[law].astype(np.float32) / np.float32(PCM16_SCALE)

    def duration_ms(self, data: bytes) -> int:
        """The audio ``data`` holds (one sample per byte)."""
        return -(-len(data) * 1000 // self.output_rate)

    def decode(self, data: bytes) -> np.ndarray:
        """Called per frame; returns samples in [-1, 1)."""
        decoded: np.ndarray = self._table[np.frombuffer(data, dtype=np.uint8)]
        return decoded


class OpusDecoder:
    """One Opus packet per frame, decoded to mono by a decoder that lives for the session."""

    packets = True

    def __init__(self, sample_rate: int) -> None:
        self.output_rate = (
            sample_rate if sample_rate in OPUS_NATIVE_RATES_HZ else OPUS_FALLBACK_RATE_HZ
        )
        # channels=1: a stereo packet is down-mixed by libopus itself.
        self._decoder = opuslib.Decoder(self.output_rate, 1)
        self._max_frame_samples = self.output_rate * OPUS_MAX_PACKET_MS // 1000

    def duration_ms(self, data: bytes) -> int:
        """The packet's duration from its table-of-contents byte(s) (RFC 6716 section 3.1), so
        a packet that cannot be accepted is refused without decoding it: a 2-byte packet may
        ask for 120 ms of decoding. Raises AudioDecodeError for a malformed header."""
        if not data:
            return 0
        try:
            samples = opuslib.api.decoder.get_nb_samples(
                self._decoder.decoder_state, bytes(data), len(data)
            )
        except opuslib.OpusError as exc:
            raise AudioDecodeError(f"corrupt Opus packet: {_opus_reason(exc)}") from None
        return -(-int(samples) * 1000 // self.output_rate)

    def decode(self, data: bytes) -> np.ndarray:
        """Called per packet; raises AudioDecodeError for a corrupt one, which leaves the decoder
        usable (libopus rejects a bad packet before touching its state)."""
        if not data:
            # An empty packet would ask libopus for packet-loss concealment; the spec says an
            # empty frame is ignored.
            return np.zeros(0, dtype=np.float32)
        try:
            pcm_bytes = self._decoder.decode(bytes(data), self._max_frame_samples)
        except opuslib.OpusError as exc:
            raise AudioDecodeError(f"corrupt Opus packet: {_opus_reason(exc)}") from None
        pcm = np.frombuffer(pcm_bytes, dtype="<i2")
        return pcm.astype(np.float32) / np.float32(PCM16_SCALE)


def _opus_reason(exc: opuslib.OpusError) -> str:
    # opuslib's str() is the repr of libopus's strerror() bytes (b'corrupted stream').
    reason = opuslib.api.info.strerror(exc.code)
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def make_decoder(encoding: Encoding, sample_rate: int) -> Decoder:
    """Called once per session with the validated ``speech.config`` encoding and rate."""
    if encoding == "pcm_s16le":
        return PcmS16leDecoder(sample_rate)
    if encoding == "opus":
        return OpusDecoder(sample_rate)
    if encoding == "pcm_mulaw" or encoding == "pcm_alaw":
        return G711Decoder(encoding, sample_rate)
    raise ValueError(f"encoding must be one of {Encoding.__args__}, got {encoding!r}")
