"""Random frame sequences against a real daphne process (hypothesis): random Unicode with lone
surrogates, hostile JSON (5000-digit integers, deep nesting, NaN/Infinity), invalid UTF-8 in
text frames, binary junk, valid configs and audio in random order, abrupt disconnects.

Every connection must end with a documented event or close code, the node's connection and
session counts must return to zero after each one, and afterwards the node still takes a full
load of connections; a node running the real model still transcribes real speech.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import migrated_db
from tests.e2e.hostile_support import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    END_FRAME,
    Client,
    assert_documented_close,
    assert_documented_events,
    config_frame,
    frame,
    tone_pcm,
    wait_drained,
)
from tests.support import speech
from tests.support.client import config, pcm_chunks, stream
from tests.support.server import Server, start_server
from tests.support.wer import wer

pytestmark = pytest.mark.e2e

MAX_CONNECTIONS = 16
FUZZ_EXAMPLES = 120
HUGE = "__HUGE_INT__"  # rendered as a 5000-digit integer (json.dumps refuses > 4300 digits)
DEEP = "__DEEP__"  # rendered as deeply nested arrays
SURROGATES = ("\ud800", "\udfff", "\udbff", "\udc00", "\ud83d")


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Server]:
    """FAKE backend (the random phase needs no model), at the issue's 16 connections."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_FAKE_BACKEND_RTF": "0.01",
            "WSS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()


# --- strategies ---

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SURROGATES),
    st.lists(st.one_of(st.characters(), st.sampled_from(SURROGATES)), min_size=1, max_size=6).map(
        "".join
    ),
    st.sampled_from(["speech.config", "speech.end", "en", "pcm_s16le", "opus", "0" * 32]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.just(HUGE),
    st.just(DEEP),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=8,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything at all."""
    return st.one_of(valid, valid, json_values)


checkpoints = st.one_of(
    st.fixed_dictionaries({"session_id": field(st.sampled_from(["0" * 32, "ab" * 16]))}),
    st.fixed_dictionaries(
        {
            "session_id": field(st.just("0" * 32)),
            "last_audio_ms": field(st.integers(0, 10**6)),
            "full_transcript": field(st.text(max_size=20)),
            "signature": field(st.just("0" * 64)),
        }
    ),
)
config_payloads = st.fixed_dictionaries(
    {},
    optional={
        "language": field(st.sampled_from(["en", "en-US", "de"])),
        "sample_rate": field(st.sampled_from([8000, 16000, 48000])),
        "encoding": field(st.sampled_from(["pcm_s16le", "opus"])),
        "window_duration_ms": field(st.integers(1000, 6000)),
        "overlap_duration_ms": field(st.integers(0, 500)),
        "model_id": field(st.sampled_from(["whisper-tiny.en", "whisper-large-v3"])),
        "resume_checkpoint": st.one_of(st.none(), checkpoints, json_values),
        "x\ud800": json_values,
    },
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": field(st.sampled_from(["speech.config", "speech.end"])),
        "payload": st.one_of(config_payloads, json_values),
        "session_id": json_values,
    },
)


def render(value: Any) -> str:
    """JSON text with surrogates escaped and the sentinels expanded."""
    text = frame(value)
    text = text.replace(f'"{HUGE}"', "-" + "7" * 5000)
    return text.replace(f'"{DEEP}"', "[" * 20_000 + "]" * 20_000)


valid_configs = st.builds(
    lambda window, overlap: config_frame(window_duration_ms=window, overlap_duration_ms=overlap),
    st.integers(1000, 5000),
    st.integers(0, 500),
)
frames = st.one_of(
    st.tuples(st.just("text"), messages.map(render)),
    st.tuples(st.just("text"), json_values.map(render)),
    st.tuples(st.just("text"), st.text(max_size=40)),
    st.tuples(st.just("text"), valid_configs),
    st.tuples(st.just("text"), st.just(END_FRAME)),
    st.tuples(st.just("raw"), st.binary(min_size=1, max_size=64)),  # usually not UTF-8
    st.tuples(
        st.just("raw"),
        st.sampled_from([b'{"type":"\xed\xa0\x80","payload":{}}', b'{"type":"speech.end"\xff}']),
    ),
    st.tuples(st.just("binary"), st.binary(max_size=2048)),
    st.tuples(st.just("binary"), st.integers(20, 1500).map(lambda ms: tone_pcm(ms / 1000))),
)
sequences = st.lists(frames, max_size=8)
endings = st.sampled_from(["abort", "close", "finish"])


# --- one connection ---


async def run_connection(
    server: Server, sequence: list[tuple[str, Any]], ending: str
) -> tuple[Client, bool]:
    """Send ``sequence`` on one connection and end it as ``ending`` says; returns the client
    and whether a text frame that is not UTF-8 was sent."""
    client = await Client.open(server)
    sent_invalid_utf8 = False
    for kind, data in sequence:
        if client.closed:
            break
        try:
            if kind == "text":
                await client.send_text(data)
            elif kind == "raw":
                sent_invalid_utf8 |= not _is_utf8(data)
                await client.send_raw_text(data)
            else:
                await client.send_binary(data)
        except websockets.ConnectionClosed:
            break
    if ending == "abort":
        client.abort()
    elif ending == "close" or client.closed:
        await client.close()
    else:
        await finish(client)
    return client, sent_invalid_utf8


async def finish(client: Client) -> None:
    """speech.end: a configured session must end with EndOfStream and close 1000 (or another
    documented close); an unconfigured connection answers INVALID_STATE and we hang up."""
    start = len(client.events)
    try:
        await client.send_text(END_FRAME)
        await client.wait_for(
            lambda e: e["type"] == "speech.error" and e["payload"]["code"] == "INVALID_STATE",
            timeout=1.5,
            start=start,
        )
    except (AssertionError, websockets.ConnectionClosed):
        pass  # closed by the server, or no answer (errors suppressed): judged below
    if client.of("speech.config.ack") and not client.closed:
        await client.wait_closed(timeout=15)
    await client.close()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_connection(client: Client, ending: str, sent_invalid_utf8: bool) -> None:
    """The documented outcome: known events and codes, no internal error, and a server-side
    close only with a documented code."""
    assert_documented_events(client.events)
    codes = [e["code"] for e in client.errors]
    assert "INTERNAL_ERROR" not in codes, client.events
    protocol = client.ws.protocol
    if protocol.close_rcvd is not None and protocol.close_rcvd_then_sent:
        assert client.close_code != CLOSE_INTERNAL, client.events
        assert_documented_close(client, sent_invalid_utf8=sent_invalid_utf8)
    elif ending != "abort" and not sent_invalid_utf8:
        # Invalid UTF-8 in a text frame makes the WebSocket layer fail the connection (RFC
        # 6455 section 8.1): a 1007 close frame that may lose the race with the client's own
        # close, so a drop is a documented outcome there and only there.
        assert protocol.close_rcvd is not None, "the server dropped the connection"


_cases: list[float] = []


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(sequence=sequences, ending=endings)
def test_random_frame_sequences_end_documented_and_leak_nothing(
    fuzz_server: Server, sequence: list[tuple[str, Any]], ending: str
) -> None:
    """Any frame sequence ends with documented events and close codes, and the node's
    connection and session counts return to zero."""
    started = time.monotonic()

    async def run() -> None:
        client, sent_invalid_utf8 = await run_connection(fuzz_server, sequence, ending)
        check_connection(client, ending, sent_invalid_utf8)
        await wait_drained(fuzz_server, timeout=10)

    asyncio.run(run())
    _cases.append(time.monotonic() - started)


async def test_fuzzed_node_takes_a_full_load_and_serves(fuzz_server: Server) -> None:
    """After the random phase: WSS_MAX_CONNECTIONS connections at once are all accepted, and a
    normal session returns the fake words and closes 1000."""
    if _cases:
        print(f"\nfuzz: {len(_cases)} cases in {sum(_cases):.1f} s")
    clients = [await Client.open(fuzz_server) for _ in range(MAX_CONNECTIONS)]
    for client in clients:
        await client.close()
    await wait_drained(fuzz_server)
    result = await stream(fuzz_server.url, pcm_chunks(tone_pcm(3.0), 16000), config())
    assert result.close_code == CLOSE_NORMAL, result.events[-3:]
    assert result.final is not None and result.final["text"].startswith("tok0 tok1"), result.final
    await wait_drained(fuzz_server)


# --- the real model after hostile frames ---

HOSTILE = (
    '{"type":"\\ud800","payload":{}}',
    '{"type":"speech.config","payload":{"sample_rate":' + "9" * 5000 + "}}",
    frame({"type": "speech.config", "payload": config(resume_checkpoint={"session_id": "\ud800"})}),
    "[" * 100_000,
    '{"type":"speech.config","payload":{"window_duration_ms":NaN}}',
)


@pytest.fixture(scope="module")
def real_server(model_env: dict[str, str]) -> Iterator[Server]:
    """The real tiny.en model in-process, at the issue's 16 connections."""
    server = start_server(
        {
            **model_env,
            "WSS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "WSS_ADMISSION_HEADROOM": "0",
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()


@pytest.mark.slow
async def test_real_speech_is_transcribed_after_hostile_frames(real_server: Server) -> None:
    """Twice WSS_MAX_CONNECTIONS hostile connections (the issue's frames, invalid UTF-8, junk
    audio), then a normal session on the real model returns the spoken words (WER <= 10 %,
    two to three times what tiny.en measures on these voices) and closes 1000."""
    for n in range(2 * MAX_CONNECTIONS):
        client = await Client.open(real_server)
        if n % 7 == 6:
            await client.send_raw_text(b'{"type":"\xed\xa0\x80"}')
        else:
            await client.send_text(HOSTILE[n % len(HOSTILE)])
            await client.send_binary(b"\xff" * 333)
        if n % 2:
            client.abort()
        else:
            await client.close()
    await wait_drained(real_server)
    clip = speech.compose(speech.SENTENCES[:2], speech.VOICES[:2])
    frames = pcm_chunks(speech.to_pcm16(clip.audio), speech.SAMPLE_RATE_HZ)
    result = await stream(real_server.url, frames, config(), timeout=120)
    assert result.errors == [], result.errors
    assert result.close_code == CLOSE_NORMAL
    assert result.final is not None
    assert wer(clip.text, result.final["text"]) <= 0.10, result.final["text"]
    await wait_drained(real_server)
