"""An uploaded audio file decoded with PyAV (FFmpeg's demuxers and decoders inside the wheel: no
binary to shell out to), read piece by piece as 16 kHz mono s16le, Whisper's input.

wav, mp3, m4a/mp4 (AAC), ogg and webm (Opus, Vorbis where the wheel has it), flac, and whatever
else FFmpeg recognises by content: the file name and content type are not trusted. The reader
is incremental, so memory stays bounded by what the session buffers, whatever the file's
length; the caller runs it on a thread (decoding is CPU work the event loop must not do).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

import av
import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.openai_rest.errors import OpenAIError

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2  # s16le


def unsupported(detail: str) -> OpenAIError:
    """The 400 OpenAI answers for a file it cannot read."""
    return OpenAIError(
        400,
        f"Invalid file format: {detail}. Supported formats: flac, m4a, mp3, mp4, mpeg, mpga, "
        "oga, ogg, wav, webm",
        param="file",
        code="invalid_file_format",
    )


def too_long(max_s: int) -> OpenAIError:
    return OpenAIError(
        413,
        f"Audio longer than {max_s} s (WSS_MAX_UPLOAD_S): send a shorter file",
        param="file",
        code="audio_too_long",
    )


class AudioFile:
    """One upload's audio stream, opened and checked on construction (400 when it is no audio,
    413 when its header already says it is too long)."""

    def __init__(self, source: str | IO[bytes], *, max_s: int) -> None:
        self.max_s = max_s
        try:
            self._container = av.open(source, mode="r", metadata_errors="ignore")
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise unsupported("not an audio file FFmpeg can read") from exc
        audio = self._container.streams.audio
        if not audio:
            self.close()
            raise unsupported("the file has no audio stream")
        self._stream = audio[0]
        duration = self._container.duration  # microseconds (av.time_base), None if unknown
        self.header_duration_s = duration / av.time_base if duration else None
        if self.header_duration_s is not None and self.header_duration_s > max_s + 1:
            self.close()
            raise too_long(max_s)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        self._frames: Iterator[av.AudioFrame] = self._container.decode(self._stream)
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self.samples_read = 0
        self.finished = False

    @property
    def exhausted(self) -> bool:
        """Every sample of the file has been read."""
        return self.finished and not self._pending_samples

    @property
    def seconds_read(self) -> float:
        return self.samples_read / SAMPLE_RATE_HZ

    def read(self, max_samples: int) -> bytes:
        """Up to ``max_samples`` of 16 kHz mono s16le; fewer only at the end, b"" after it.
        Blocking CPU work: call it on a thread. Raises 400 for data FFmpeg cannot decode and
        413 once the audio passes ``max_s``."""
        while self._pending_samples < max_samples and not self.finished:
            self._decode_more()
        data = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        out, rest = data[:max_samples], data[max_samples:]
        self._pending = [rest] if rest.size else []
        self._pending_samples = int(rest.size)
        self.samples_read += int(out.size)
        if self.samples_read > (self.max_s + 1) * SAMPLE_RATE_HZ:
            raise too_long(self.max_s)
        return out.astype("<i2", copy=False).tobytes()

    def _decode_more(self) -> None:
        try:
            frame = next(self._frames, None)
            converted = self._resampler.resample(frame)  # None flushes the resampler
        except av.FFmpegError as exc:
            if self.samples_read or self._pending_samples:
                raise unsupported(f"the audio is corrupt after {self.seconds_read:.1f} s") from exc
            raise unsupported("the audio stream cannot be decoded") from exc
        if frame is None:
            self.finished = True
        for out in converted:
            samples = out.to_ndarray().reshape(-1)
            self._pending.append(samples)
            self._pending_samples += int(samples.size)

    def close(self) -> None:
        """Release FFmpeg's state; safe to call twice."""
        self._container.close()
