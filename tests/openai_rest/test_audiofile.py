"""Tests for transcription/openai_rest/audiofile.py: uploads in the formats people send decode to
16 kHz mono s16le, read piece by piece; what is no audio is a 400, what is too long a 413."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.openai_rest.encode import FORMATS, encode
from transcription.openai_rest.audiofile import AudioFile
from transcription.openai_rest.errors import OpenAIError

RATE = 16_000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def read_all(audio: AudioFile, piece: int = 7_000) -> np.ndarray:
    chunks = []
    while not audio.exhausted:
        data = audio.read(piece)
        assert len(data) <= piece * 2
        chunks.append(np.frombuffer(data, "<i2"))
    return np.concatenate(chunks)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_upload_format_decodes_to_16khz_mono_of_the_same_length(name: str) -> None:
    """wav, mp3, m4a, ogg/opus, webm and flac give the file's duration at 16 kHz (within the
    codec's padding) and the tone's loudness."""
    audio = AudioFile(io.BytesIO(encode(tone(2.0), name)), max_s=60)
    try:
        samples = read_all(audio)
    finally:
        audio.close()
    assert abs(len(samples) - 2 * RATE) < 0.1 * RATE
    rms = float(np.sqrt(np.mean((samples / 32768.0) ** 2)))
    assert 0.15 < rms < 0.3  # a 0.3 sine has an RMS of 0.21


def test_reading_in_pieces_returns_exactly_what_was_asked_until_the_end() -> None:
    """Every read but the last returns the requested number of samples."""
    audio = AudioFile(io.BytesIO(encode(tone(1.0), "flac")), max_s=60)
    sizes = []
    while not audio.exhausted:
        sizes.append(len(audio.read(3_000)) // 2)
    assert sizes[:-1] == [3_000] * (len(sizes) - 1) and sum(sizes) == RATE
    assert audio.read(3_000) == b""


@pytest.mark.parametrize(
    "data", [b"this is a text file, not audio\n" * 40, b"", b"RIFF\x00\x00\x00\x00WAVEjunk"]
)
def test_what_is_not_audio_is_a_400_invalid_file_format(data: bytes) -> None:
    """Text, an empty file or a truncated header: OpenAI's 400 naming the file field."""
    with pytest.raises(OpenAIError) as raised:
        audio = AudioFile(io.BytesIO(data), max_s=60)
        read_all(audio)
    assert raised.value.status == 400
    assert (raised.value.param, raised.value.code) == ("file", "invalid_file_format")


def test_audio_longer_than_the_cap_is_a_413() -> None:
    """A file whose header says it is too long is refused at once; one without a duration in
    its header is refused once the cap is read."""
    with pytest.raises(OpenAIError) as raised:
        AudioFile(io.BytesIO(encode(tone(4.0), "wav")), max_s=2)
    assert raised.value.status == 413
    audio = AudioFile(io.BytesIO(encode(tone(4.0), "webm")), max_s=60)
    audio.max_s = 2  # as for a header without a duration (a browser's MediaRecorder webm)
    with pytest.raises(OpenAIError) as raised:
        read_all(audio, RATE)
    assert raised.value.status == 413
