"""Audio sources: files as 16-bit mono PCM at their own rate, and the default microphone.

WAV is read with the stdlib ``wave`` module. Other formats (FLAC, MP3, Opus, OGG, ...) are
converted by the ``sox`` or ``ffmpeg`` binary when one is installed. The rate is left as it is:
the server resamples (``PROTOCOL.md`` "Audio"), so the client never needs a resampler.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK_MS = 200
MIC_SAMPLE_RATE_HZ = 16000


class AudioError(RuntimeError):
    """The file cannot be read (or no converter is installed for its format)."""


@dataclass(frozen=True)
class AudioSource:
    """A PCM s16le mono stream: ``sample_rate``, ``duration_ms`` (when known) and chunks."""

    path: str
    sample_rate: int
    duration_ms: int | None
    _chunks: Iterator[bytes]

    def chunks(self) -> Iterator[bytes]:
        """The PCM bytes in chunks of about ``CHUNK_MS`` (each an even number of bytes)."""
        return self._chunks


def open_audio(path: str | Path, chunk_ms: int = CHUNK_MS) -> AudioSource:
    """Open an audio file as PCM s16le mono at its own sample rate."""
    name = str(path)
    if not Path(name).is_file():
        raise AudioError(f"{name}: no such file")
    try:
        return _open_wav(name, chunk_ms)
    except (wave.Error, EOFError) as exc:
        wav_error: Exception | None = exc
    if Path(name).suffix.lower() not in (".wav", ".wave"):
        wav_error = None
    if shutil.which("sox"):
        return _open_with_sox(name, chunk_ms)
    if shutil.which("ffmpeg"):
        return _open_with_ffmpeg(name, chunk_ms)
    detail = f" ({wav_error})" if wav_error else ""
    raise AudioError(
        f"{name}: cannot decode this format{detail}: install sox (with libsox-fmt-all for MP3) "
        "or ffmpeg, or convert the file to 16-bit PCM WAV"
    )


# --- WAV ---


def _open_wav(path: str, chunk_ms: int) -> AudioSource:
    wav = wave.open(path, "rb")  # noqa: SIM115 -- closed by the generator
    rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
    frames = wav.getnframes()
    if width not in (1, 2, 3, 4):
        wav.close()
        raise wave.Error(f"unsupported sample width {width}")

    def chunks() -> Iterator[bytes]:
        per_chunk = max(1, rate * chunk_ms // 1000)
        try:
            while True:
                data = wav.readframes(per_chunk)
                if not data:
                    return
                yield _to_mono_s16(data, width, channels)
        finally:
            wav.close()

    return AudioSource(path, rate, frames * 1000 // rate if rate else None, chunks())


def _to_mono_s16(data: bytes, width: int, channels: int) -> bytes:
    """WAV sample frames (little-endian, ``width`` bytes, interleaved) as mono s16le."""
    if width == 2 and channels == 1:
        return data if sys.byteorder == "little" else _swap16(data)
    samples = _decode(data, width)
    if channels > 1:
        samples = [
            sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)
        ]
    shift = 8 * width - 16
    out = bytearray()
    for value in samples:
        v = value >> shift if shift > 0 else value << -shift
        out += max(-32768, min(32767, v)).to_bytes(2, "little", signed=True)
    return bytes(out)


def _decode(data: bytes, width: int) -> list[int]:
    if width == 1:  # 8-bit WAV is unsigned
        return [b - 128 for b in data]
    return [
        int.from_bytes(data[i : i + width], "little", signed=True)
        for i in range(0, len(data) - width + 1, width)
    ]


def _swap16(data: bytes) -> bytes:
    out = bytearray(data)
    out[0::2], out[1::2] = data[1::2], data[0::2]
    return bytes(out)


# --- external converters ---


def _probe(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    except subprocess.CalledProcessError as exc:
        raise AudioError(f"{cmd[0]} cannot read the file: {exc.stderr.strip()}") from None
    return done.stdout.strip()


def _open_with_sox(path: str, chunk_ms: int) -> AudioSource:
    rate = int(float(_probe(["sox", "--i", "-r", path])))
    try:
        seconds = float(_probe(["sox", "--i", "-D", path]))
        duration_ms: int | None = int(seconds * 1000) if seconds > 0 else None
    except (AudioError, ValueError):
        duration_ms = None
    cmd = ["sox", "-q", path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"]
    cmd += ["-L", "-"]
    return AudioSource(path, rate, duration_ms, _pipe(cmd, rate, chunk_ms))


def _open_with_ffmpeg(path: str, chunk_ms: int) -> AudioSource:
    rate, duration_ms = 16000, None
    if shutil.which("ffprobe"):
        out = _probe(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries"]
            + ["stream=sample_rate:format=duration", "-of", "default=nw=1", path]
        )
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            rate = int(fields.get("sample_rate", rate))
            duration_ms = int(float(fields["duration"]) * 1000)
        except (KeyError, ValueError):
            pass
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", str(rate)]
    cmd += ["-f", "s16le", "-acodec", "pcm_s16le", "-"]
    return AudioSource(path, rate, duration_ms, _pipe(cmd, rate, chunk_ms))


def _pipe(cmd: list[str], rate: int, chunk_ms: int) -> Iterator[bytes]:
    size = max(2, rate * 2 * chunk_ms // 1000 // 2 * 2)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    pending = b""
    try:
        while True:
            data = proc.stdout.read(size)
            if not data:
                break
            data = pending + data
            cut = len(data) // 2 * 2
            pending = data[cut:]
            if cut:
                yield data[:cut]
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise AudioError(f"{cmd[0]} failed to decode the file: {err or proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# --- microphone ---


def microphone_command(sample_rate: int = MIC_SAMPLE_RATE_HZ) -> list[str]:
    """The command recording the default microphone as raw s16le mono (arecord or sox)."""
    if shutil.which("arecord"):
        return ["arecord", "-q", "-f", "S16_LE", "-c", "1", "-r", str(sample_rate), "-t", "raw"]
    if shutil.which("sox"):
        return ["sox", "-q", "-d", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"] + [
            "-r",
            str(sample_rate),
            "-L",
            "-",
        ]
    raise AudioError(
        "no microphone recorder found: install alsa-utils (arecord) or sox "
        "(on macOS: brew install sox)"
    )


def microphone_chunks(
    sample_rate: int = MIC_SAMPLE_RATE_HZ, chunk_ms: int = CHUNK_MS
) -> Iterator[bytes]:
    """Raw PCM from the default microphone until the recorder exits or the caller stops."""
    return _pipe(microphone_command(sample_rate), sample_rate, chunk_ms)
