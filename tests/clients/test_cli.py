"""The ``openasr`` command line against a FAKE in-process server (``fake_server.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from pathlib import Path

import pytest

from tests.clients.fake_server import fake_server
from tests.clients.subtitles import assert_monotone, parse_srt, parse_vtt

RATE = 16000


def write_wav(path: Path, ms: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(b"\x10\x00" * (RATE * ms // 1000))
    return path


async def openasr(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openasr_client",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("fmt", ["text", "json", "srt", "vtt"])
async def test_transcribe_prints_each_format(tmp_path: Path, fmt: str) -> None:
    """openasr transcribe --format F prints a parseable transcript; progress reaches 100 %."""
    wav = write_wav(tmp_path / "a.wav", 5000)
    async with fake_server(window_ms=2000) as fake:
        code, out, err = await openasr(
            "transcribe", str(wav), "--url", fake.url, "--window", "2000", "--format", fmt
        )
    assert code == 0, err
    assert "progress 100%" in err
    expected = " ".join(f"w{i}" for i in range(10))
    if fmt == "text":
        assert out == expected + "\n"
    elif fmt == "json":
        assert json.loads(out)["text"] == expected
    elif fmt == "srt":
        cues = parse_srt(out)
        assert_monotone(cues)
        assert " ".join(c[2] for c in cues) == expected
    else:
        cues = parse_vtt(out)
        assert_monotone(cues)
        assert " ".join(c[2] for c in cues) == expected


async def test_output_file_and_api_key_from_the_environment(tmp_path: Path) -> None:
    """-o writes the file; OPENASR_API_KEY is sent as the Authorization header."""
    wav = write_wav(tmp_path / "a.wav", 2500)
    async with fake_server(api_key="env.key") as fake:
        code, out, err = await openasr(
            "transcribe",
            str(wav),
            "--url",
            fake.url,
            "-o",
            str(tmp_path / "out.txt"),
            env={"OPENASR_API_KEY": "env.key"},
        )
    assert code == 0, err
    assert out == ""
    assert (tmp_path / "out.txt").read_text().startswith("w0 w1")
    assert fake.auth_headers == ["Bearer env.key"]


async def test_wrong_key_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    """A refused key: exit status 1 and a message naming HTTP 401."""
    wav = write_wav(tmp_path / "a.wav", 500)
    async with fake_server(api_key="right") as fake:
        code, _, err = await openasr("transcribe", str(wav), "--url", fake.url, "--api-key", "x")
    assert code == 1
    assert "HTTP 401" in err


async def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    """A file that does not exist: exit status 2 and the reason."""
    code, _, err = await openasr("transcribe", str(tmp_path / "none.wav"))
    assert code == 2 and "no such file" in err


async def test_resume_is_reported_on_stderr(tmp_path: Path) -> None:
    """A dropped connection is resumed; stderr says so and the text is complete."""
    wav = write_wav(tmp_path / "a.wav", 7000)
    async with fake_server(window_ms=2000, drop_at_ms=[4500]) as fake:
        code, out, err = await openasr(
            "transcribe", str(wav), "--url", fake.url, "--window", "2000"
        )
    assert code == 0, err
    assert "resumed at 4.0 s" in err
    assert out.split() == [f"w{i}" for i in range(14)]


async def test_mic_streams_the_recorder_output(tmp_path: Path) -> None:
    """openasr mic: the recorder's raw PCM is streamed and phrases are printed as they come."""
    raw = tmp_path / "speech.raw"
    raw.write_bytes(b"\x10\x00" * (RATE * 3))  # 3 s that a FAKE arecord "records"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    recorder = fake_bin / "arecord"
    recorder.write_text(f"#!/bin/sh\nexec cat {raw}\n")
    recorder.chmod(0o755)
    path = f"{fake_bin}:{os.environ['PATH']}"
    async with fake_server(window_ms=1000) as fake:
        code, out, err = await openasr(
            "mic", "--url", fake.url, "--window", "1000", env={"PATH": path}
        )
    assert code == 0, err
    assert "listening" in err
    assert out.split() == [f"w{i}" for i in range(6)]
    assert fake.configs[0]["sample_rate"] == 16000


async def test_mic_without_a_recorder_says_what_to_install(tmp_path: Path) -> None:
    """openasr mic with neither arecord nor sox on PATH: exit 2 naming both."""
    code, _, err = await openasr("mic", env={"PATH": str(tmp_path)})
    assert code == 2
    assert "arecord" in err and "sox" in err


async def test_transcribe_file_helper_returns_a_transcript(tmp_path: Path) -> None:
    """transcribe_file(path, url=...) (sync) returns text, phrases and words."""
    from openasr_client import transcribe_file

    wav = write_wav(tmp_path / "a.wav", 3000)
    async with fake_server(window_ms=1000) as fake:
        transcript = await asyncio.to_thread(transcribe_file, wav, url=fake.url, window_ms=1000)
    assert transcript.text == " ".join(f"w{i}" for i in range(6))
    assert len(transcript.phrases) == 3 and len(transcript.words) == 6
    assert transcript.session_id == "fake0001"
