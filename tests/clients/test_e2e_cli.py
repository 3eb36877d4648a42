"""End to end: the ``openasr`` command against a real server with the real model and speech."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.clients.conftest import API_KEY, SpeechFile
from tests.clients.subtitles import assert_monotone, parse_srt, parse_vtt
from tests.support.server import Server
from tests.support.wer import normalize, repeated_bigrams, wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MAX_WER = 0.15


async def openasr(*args: str, api_key: str | None = API_KEY) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENASR_API_KEY"}
    if api_key:
        env["OPENASR_API_KEY"] = api_key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openasr_client",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def text_of(output: str, fmt: str) -> str:
    """The words of one output format (parsing it strictly on the way)."""
    if fmt == "text":
        return output
    if fmt == "json":
        data = json.loads(output)
        words = [w["text"] for p in data["phrases"] for w in p["words"]]
        assert normalize(" ".join(words)) == normalize(data["text"])
        return data["text"]
    cues = parse_srt(output) if fmt == "srt" else parse_vtt(output)
    assert_monotone(cues)
    return " ".join(text for _, _, text in cues)


@pytest.mark.parametrize("fmt", ["text", "json", "srt", "vtt"])
async def test_cli_transcribes_speech_in_every_format(
    asr_server: Server, speech_file: SpeechFile, fmt: str
) -> None:
    """openasr transcribe: the words come back (WER ≤ 15 %), the format parses, progress 100 %."""
    code, out, err = await openasr(
        "transcribe", str(speech_file.path), "--url", asr_server.url, "--format", fmt
    )
    assert code == 0, err
    assert "progress 100%" in err
    hypothesis = text_of(out, fmt)
    assert wer(speech_file.composition.text, hypothesis) <= MAX_WER, hypothesis


async def test_cli_without_the_key_is_refused(asr_server: Server, speech_file: SpeechFile) -> None:
    """No API key: exit status 1 and a message naming HTTP 401."""
    code, _, err = await openasr(
        "transcribe", str(speech_file.path), "--url", asr_server.url, api_key=None
    )
    assert code == 1 and "HTTP 401" in err


def frame_length(buf: bytes | bytearray) -> int | None:
    """Length of the complete WebSocket frame at the start of ``buf`` (RFC 6455 5.2), or None."""
    if len(buf) < 2:
        return None
    size, header = buf[1] & 0x7F, 2
    if size == 126:
        if len(buf) < 4:
            return None
        size, header = int.from_bytes(buf[2:4], "big"), 4
    elif size == 127:
        if len(buf) < 10:
            return None
        size, header = int.from_bytes(buf[2:10], "big"), 10
    header += 4 if buf[1] & 0x80 else 0
    return header + size if len(buf) >= header + size else None


@asynccontextmanager
async def killing_proxy(
    target_port: int, *, after_down_bytes: int = 0, after_phrases: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """A TCP proxy to the server that aborts its FIRST connection (both sides, no close frame)
    once the server has sent ``after_down_bytes`` of frames, or right after its
    ``after_phrases``-th Success phrase (so that phrase's checkpoint never reaches the client).
    Later connections pass through untouched."""
    stats: dict[str, Any] = {"connections": 0, "killed": False}

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        stats["connections"] += 1
        first = stats["connections"] == 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)

        def kill() -> None:
            stats["killed"] = True
            client_w.transport.abort()
            server_w.transport.abort()

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await client_r.read(65536):
                    server_w.write(data)
                    await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            buf, down, phrases, in_http = bytearray(), 0, 0, True
            with contextlib.suppress(ConnectionError, OSError):
                while data := await server_r.read(65536):
                    if not first or stats["killed"]:
                        client_w.write(data)
                        await client_w.drain()
                        continue
                    buf += data
                    if in_http:  # the 101 response precedes the frames
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            continue
                        client_w.write(bytes(buf[: end + 4]))
                        del buf[: end + 4]
                        in_http = False
                    while (length := frame_length(buf)) is not None:
                        frame = bytes(buf[:length])
                        del buf[:length]
                        client_w.write(frame)
                        down += length
                        if b'"speech.phrase"' in frame and b'"Success"' in frame:
                            phrases += 1
                        if (after_phrases and phrases >= after_phrases) or (
                            after_down_bytes and down >= after_down_bytes
                        ):
                            await client_w.drain()
                            kill()
                            return
                    await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream())

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    stats["port"] = server.sockets[0].getsockname()[1]
    try:
        yield stats
    finally:
        server.close()


def assert_each_sentence_once(speech_file: SpeechFile, out: str) -> None:
    """WER within the bound and no sentence (or word pair) repeated."""
    reference = speech_file.composition.text
    assert wer(reference, out) <= MAX_WER, out
    assert repeated_bigrams(out, reference) == 0, out
    # A lost sentence alone would exceed the WER bound (about 12 of 50 words); a repeated one
    # would repeat its opening words.
    heard = normalize(out)
    for sentence in speech_file.sentences:
        opening = normalize(sentence)[:3]
        assert sum(heard[i : i + 3] == opening for i in range(len(heard))) <= 1, out


async def test_cli_resumes_after_the_connection_is_killed(
    asr_server: Server, speech_file: SpeechFile
) -> None:
    """The connection dies mid-file: the client resumes from its last checkpoint, re-sends the
    audio after it, and the transcript has every sentence once."""
    # The ack is ~300 bytes, a window's events 1-2 kB: this kills after a checkpoint or two.
    async with killing_proxy(asr_server.port, after_down_bytes=2500) as proxy:
        url = f"ws://127.0.0.1:{proxy['port']}/transcribe"
        code, out, err = await openasr("transcribe", str(speech_file.path), "--url", url)
    assert code == 0, err
    assert proxy["killed"] and proxy["connections"] == 2, err
    assert "resumed at" in err
    assert_each_sentence_once(speech_file, out)


async def test_cli_does_not_repeat_a_phrase_whose_checkpoint_was_lost(
    asr_server: Server, speech_file: SpeechFile
) -> None:
    """The connection dies right after a phrase, before its checkpoint: the server transcribes
    that audio again after the resume, and the client still yields the text once."""
    async with killing_proxy(asr_server.port, after_phrases=2) as proxy:
        url = f"ws://127.0.0.1:{proxy['port']}/transcribe"
        code, out, err = await openasr("transcribe", str(speech_file.path), "--url", url)
    assert code == 0, err
    assert proxy["killed"] and proxy["connections"] == 2, err
    assert_each_sentence_once(speech_file, out)
