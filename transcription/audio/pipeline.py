"""Decoder -> resampler -> buffer: one session's audio path, bytes in, 16 kHz samples held.

Normative: ``docs/PROTOCOL.md`` "Audio" (decoding, streaming resampling to 16 kHz) and
"Flow control and limits" (audio beyond the bound is refused and reported in ms).
"""

from __future__ import annotations

from dataclasses import dataclass

from transcription.audio.buffer import DEFAULT_CAPACITY_MS, AudioBuffer
from transcription.audio.decode import Encoding, make_decoder
from transcription.audio.resample import TARGET_RATE_HZ, StreamingResampler
from transcription.audio.vad import SpeechDetector


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What became of one binary frame, in ms of 16 kHz audio.

    ``refused_ms`` is rounded up, so any refused sample is reported (never a silent drop);
    ``accepted_ms`` is rounded down.
    """

    accepted_ms: int
    refused_ms: int


class AudioPipeline:
    """Owns the decoder, the resampler and the buffer of one session."""

    def __init__(
        self,
        encoding: Encoding,
        sample_rate: int,
        *,
        capacity_ms: int = DEFAULT_CAPACITY_MS,
        vad: SpeechDetector | None = None,
        timeline_start_ms: int = 0,
    ) -> None:
        self.decoder = make_decoder(encoding, sample_rate)
        self.resampler = StreamingResampler(self.decoder.output_rate, TARGET_RATE_HZ)
        self.buffer = AudioBuffer(
            capacity_ms=capacity_ms,
            timeline_start_ms=timeline_start_ms,
            vad=vad,
            sample_rate=TARGET_RATE_HZ,
        )

    def feed(self, frame: bytes, allowance_ms: int | None = None) -> FeedResult:
        """Called for every binary frame; accepts at most ``allowance_ms`` (and what the buffer
        holds). A frame with no room, or an Opus packet that does not fit whole (a client
        cannot resend part of a packet), is refused before it is decoded, so refused audio
        costs no decoding. Raises AudioDecodeError for a corrupt Opus packet, after which the
        next frame decodes normally."""
        room_ms = (
            self.buffer.free_ms
            if allowance_ms is None
            else min(self.buffer.free_ms, max(0, allowance_ms))
        )
        frame_ms = self.decoder.duration_ms(frame)
        if frame_ms > 0 and (room_ms <= 0 or (self.decoder.packets and frame_ms > room_ms)):
            return FeedResult(accepted_ms=0, refused_ms=frame_ms)
        samples = self.resampler.process(self.decoder.decode(frame))
        room = room_ms * TARGET_RATE_HZ // 1000
        return self._push(samples.size, self.buffer.push(samples[:room]))

    def finish(self) -> FeedResult:
        """Called on ``speech.end``: pushes the resampler's tail and scores the last frame.

        A second call does nothing."""
        if self.buffer.finished:
            return FeedResult(accepted_ms=0, refused_ms=0)
        samples = self.resampler.flush()
        result = self._push(samples.size, self.buffer.push(samples))
        self.buffer.finish()
        return result

    @staticmethod
    def _push(offered: int, accepted: int) -> FeedResult:
        refused = offered - accepted
        return FeedResult(
            accepted_ms=accepted * 1000 // TARGET_RATE_HZ,
            refused_ms=-(-refused * 1000 // TARGET_RATE_HZ),
        )
