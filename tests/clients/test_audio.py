"""``openasr_client.audio``: WAV via ``wave``, other formats via sox/ffmpeg, clear errors."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest
from openasr_client import AudioError, open_audio
from openasr_client import audio as audio_module


def write_wav(path: Path, frames: bytes, rate: int, width: int, channels: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)


def samples16(values: list[int]) -> bytes:
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


def test_mono_16bit_wav_is_passed_through(tmp_path: Path) -> None:
    """16-bit mono WAV: the PCM bytes unchanged, at the file's own rate, with its duration."""
    pcm = samples16([(i * 13) % 40000 - 20000 for i in range(22050)])
    write_wav(tmp_path / "a.wav", pcm, 22050, 2, 1)
    source = open_audio(tmp_path / "a.wav")
    assert (source.sample_rate, source.duration_ms) == (22050, 1000)
    chunks = list(source.chunks())
    assert b"".join(chunks) == pcm
    assert all(len(c) % 2 == 0 for c in chunks) and len(chunks) == 5


def test_stereo_24bit_wav_is_downmixed_to_16bit_mono(tmp_path: Path) -> None:
    """24-bit stereo WAV: channels averaged, scaled to 16 bits."""
    left, right = 0x100000, -0x100000 + 0x200  # 24-bit values
    frame = left.to_bytes(3, "little", signed=True) + right.to_bytes(3, "little", signed=True)
    write_wav(tmp_path / "b.wav", frame * 100, 8000, 3, 2)
    data = b"".join(open_audio(tmp_path / "b.wav").chunks())
    assert data == samples16([((left + right) // 2) >> 8] * 100)


def test_8bit_wav_is_unsigned_and_scaled(tmp_path: Path) -> None:
    """8-bit WAV is unsigned: 128 is silence, 255 near full scale."""
    write_wav(tmp_path / "c.wav", bytes([128, 255, 0]), 8000, 1, 1)
    assert b"".join(open_audio(tmp_path / "c.wav").chunks()) == samples16([0, 127 << 8, -128 << 8])


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_flac_is_decoded_with_sox_at_its_rate(tmp_path: Path) -> None:
    """FLAC goes through sox: 16-bit mono PCM at the file's rate and the same samples."""
    pcm = samples16([(i * 37) % 20000 - 10000 for i in range(24000)])
    write_wav(tmp_path / "d.wav", pcm, 24000, 2, 1)
    subprocess.run(["sox", str(tmp_path / "d.wav"), str(tmp_path / "d.flac")], check=True)
    source = open_audio(tmp_path / "d.flac")
    assert source.sample_rate == 24000 and source.duration_ms == 1000
    assert b"".join(source.chunks()) == pcm


def test_missing_converter_names_the_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sox and no ffmpeg: AudioError naming both tools."""
    (tmp_path / "e.mp3").write_bytes(b"ID3 not really")
    monkeypatch.setattr(audio_module.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="install sox.*or ffmpeg"):
        open_audio(tmp_path / "e.mp3")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist: AudioError saying so."""
    with pytest.raises(AudioError, match="no such file"):
        open_audio(tmp_path / "nope.wav")


def test_microphone_needs_a_recorder(monkeypatch: pytest.MonkeyPatch) -> None:
    """No arecord and no sox: AudioError naming what to install."""
    monkeypatch.setattr(audio_module.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="arecord.*sox"):
        audio_module.microphone_command()
