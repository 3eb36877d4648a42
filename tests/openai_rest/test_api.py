"""The official ``openai`` SDK against a real daphne with the real model (tiny.en): every
response_format on generated speech (words scored), stream=True, the models list, and the
refusals in OpenAI's error shape (401, 413, 400, 415, 503). One server for the module, with an
API key set (auth on), one session per node (so admission is testable), a 3 MB upload cap."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import websockets

from tests.e2e.conftest import migrated_db
from tests.openai_rest.encode import FORMATS, encode
from tests.support.server import REPO, Process, Server, start_server, start_worker
from tests.support.speech import SENTENCES, VOICES, compose
from tests.support.wer import wer

pytestmark = pytest.mark.slow

KEY = "test-openai-rest-key-0123456789abcdef"
MAX_UPLOAD_BYTES = 3_000_000
MAX_WER = 0.1  # tiny.en on these voices: 2-3 % (TEST_SPEECH.md); the bound catches lost windows
WER_BY_PATH: dict[str, float] = {}  # printed at the end (pytest -s): the figures of the note


@pytest.fixture(scope="module")
def clip() -> tuple[bytes, str]:
    """~40 s of speech with pauses (two 24 s windows and a merge) as a wav file."""
    comp = compose(list(SENTENCES[:7]), VOICES)
    return encode(comp.audio, "wav", rate=16_000), comp.text


@pytest.fixture(scope="module")
def short_clip() -> tuple[np.ndarray, str]:
    comp = compose(list(SENTENCES[7:9]), VOICES)
    return comp.audio, comp.text


@pytest.fixture(scope="module")
def server(tiny_model_path: Path) -> Iterator[Server]:
    srv = start_server(
        {
            "WHISPER_MODEL_PATH": str(tiny_model_path),
            "DATABASE_URL": migrated_db(),
            "WSS_API_KEY": KEY,
            "WSS_MAX_SESSIONS": "1",
            "WSS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        }
    )
    yield srv
    srv.stop()
    if WER_BY_PATH:
        print("\nWER by path:", json.dumps(WER_BY_PATH, indent=1))


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    # No retries: a 503 must surface, not be retried into a pass.
    return openai.OpenAI(base_url=server.http + "/v1", api_key=KEY, max_retries=0, timeout=120)


def transcribe(
    client: openai.OpenAI, data: bytes, name: str = "speech.wav", **kw: object
) -> object:
    return client.audio.transcriptions.create(file=(name, data), model="whisper-1", **kw)  # type: ignore[call-overload]


def _cues(text: str, separator: str) -> list[tuple[float, float, str]]:
    clock = rf"(\d\d):(\d\d):(\d\d){separator}(\d{{3}})"
    pattern = re.compile(rf"{clock} --> {clock}\n(.+?)\n(?:\n|$)", re.S)
    cues = []
    for m in pattern.finditer(text):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in m.groups()[:8])
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        cues.append((start, end, m.group(9).strip()))
    return cues


def _check_cues(cues: list[tuple[float, float, str]], reference: str, path: str) -> None:
    assert cues, "no cue parsed"
    times = [t for start, end, _ in cues for t in (start, end)]
    assert times == sorted(times), "cues overlap or go back in time"
    score = wer(reference, " ".join(text for _, _, text in cues))
    WER_BY_PATH[path] = round(score, 4)
    assert score <= MAX_WER


def test_json_gives_the_spoken_words(client: openai.OpenAI, clip: tuple[bytes, str]) -> None:
    """The default response_format: ``Transcription`` with the words of the clip."""
    data, reference = clip
    result = transcribe(client, data)
    assert isinstance(result, openai.types.audio.Transcription)
    WER_BY_PATH["json"] = round(wer(reference, result.text), 4)
    assert WER_BY_PATH["json"] <= MAX_WER


def test_text_gives_the_words_as_plain_text(client: openai.OpenAI, clip: tuple[bytes, str]) -> None:
    """response_format=text: the SDK returns a str."""
    data, reference = clip
    text = transcribe(client, data, response_format="text")
    assert isinstance(text, str) and not text.startswith("{")
    WER_BY_PATH["text"] = round(wer(reference, text), 4)
    assert WER_BY_PATH["text"] <= MAX_WER


def test_srt_parses_into_ordered_cues(client: openai.OpenAI, clip: tuple[bytes, str]) -> None:
    """response_format=srt: numbered cues in order whose text is the clip."""
    data, reference = clip
    srt = transcribe(client, data, response_format="srt")
    assert isinstance(srt, str) and srt.startswith("1\n")
    _check_cues(_cues(srt, ","), reference, "srt")


def test_vtt_parses_into_ordered_cues(client: openai.OpenAI, clip: tuple[bytes, str]) -> None:
    """response_format=vtt: the WEBVTT header, then cues in order whose text is the clip."""
    data, reference = clip
    vtt = transcribe(client, data, response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n")
    _check_cues(_cues(vtt, r"\."), reference, "vtt")


def test_verbose_json_has_monotone_words_and_segments(
    client: openai.OpenAI, clip: tuple[bytes, str]
) -> None:
    """verbose_json with both granularities: word times never go back, segments cover the
    words, the duration is the clip's."""
    data, reference = clip
    result = transcribe(
        client, data, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.words and result.segments
    times = [t for w in result.words for t in (w.start, w.end)]
    assert times == sorted(times)
    assert result.words[-1].end <= result.duration + 0.5
    assert 30 < result.duration < 60
    WER_BY_PATH["verbose_json.words"] = round(
        wer(reference, " ".join(w.word for w in result.words)), 4
    )
    WER_BY_PATH["verbose_json.segments"] = round(
        wer(reference, "".join(s.text for s in result.segments)), 4
    )
    assert WER_BY_PATH["verbose_json.words"] <= MAX_WER
    assert WER_BY_PATH["verbose_json.segments"] <= MAX_WER


def test_stream_deltas_concatenate_to_the_done_text(
    client: openai.OpenAI, clip: tuple[bytes, str]
) -> None:
    """stream=True: several transcript.text.delta events, then transcript.text.done whose
    text is exactly the deltas joined."""
    data, reference = clip
    deltas: list[str] = []
    done = None
    for event in transcribe(client, data, stream=True):  # type: ignore[attr-defined]
        if event.type == "transcript.text.delta":
            assert done is None
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event
    assert done is not None and len(deltas) >= 2
    assert "".join(deltas) == done.text
    WER_BY_PATH["stream"] = round(wer(reference, done.text), 4)
    assert WER_BY_PATH["stream"] <= MAX_WER


@pytest.mark.parametrize("name", sorted(set(FORMATS) - {"wav"}))
def test_each_upload_format_is_transcribed(
    client: openai.OpenAI, short_clip: tuple[np.ndarray, str], name: str
) -> None:
    """mp3, m4a, ogg/opus, webm and flac uploads give the spoken words."""
    audio, reference = short_clip
    result = transcribe(client, encode(audio, name), name=f"speech.{name}")
    WER_BY_PATH[f"json.{name}"] = round(wer(reference, result.text), 4)  # type: ignore[attr-defined]
    assert WER_BY_PATH[f"json.{name}"] <= MAX_WER


def test_models_lists_the_served_models(client: openai.OpenAI) -> None:
    """GET /v1/models in OpenAI's list shape: the default model first, then every other
    bundled model installed (the in-process node serves them all); an unknown id is a 404."""
    ids = [m.id for m in client.models.list()]
    base_installed = (REPO / "models" / "ggml-base.bin").is_file()
    assert ids == ["whisper-tiny.en", *(["whisper-base"] if base_installed else [])]
    assert all(client.models.retrieve(i).owned_by == "openasr" for i in ids)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_a_wrong_key_is_a_401_in_openai_shape(server: Server, clip: tuple[bytes, str]) -> None:
    """The SDK raises AuthenticationError, with OpenAI's error object."""
    bad = openai.OpenAI(base_url=server.http + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        transcribe(bad, clip[0])
    error = raised.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"


def test_repeated_wrong_keys_from_one_address_are_a_429(
    server: Server, clip: tuple[bytes, str]
) -> None:
    """The WebSocket's auth-failure limit (WSS_AUTH_FAILURE_LIMIT per address) applies: past
    it, RateLimitError with Retry-After; a right key still works (only failures count)."""
    bad = openai.OpenAI(base_url=server.http + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(11):  # default limit 10, one failure already counted or not
            with pytest.raises(openai.AuthenticationError):
                bad.models.list()
    assert int(raised.value.response.headers["retry-after"]) > 0
    good = openai.OpenAI(base_url=server.http + "/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in good.models.list()][0] == "whisper-tiny.en"


def test_a_file_over_the_cap_is_a_413(client: openai.OpenAI) -> None:
    """WSS_MAX_UPLOAD_BYTES: HTTP 413 with code file_too_large, before any decoding."""
    with pytest.raises(openai.APIStatusError) as raised:
        transcribe(client, b"\0" * (MAX_UPLOAD_BYTES + 100_000))
    assert raised.value.status_code == 413
    assert raised.value.response.json()["error"]["code"] == "file_too_large"


def test_a_file_that_is_not_audio_is_a_400(client: openai.OpenAI) -> None:
    """A text file named .mp3: 400 invalid_file_format naming the file field."""
    with pytest.raises(openai.BadRequestError) as raised:
        transcribe(client, b"not audio at all\n" * 100, name="notes.mp3")
    error = raised.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_file_format", "file")


def test_a_body_that_is_no_form_is_a_415(server: Server) -> None:
    """JSON instead of multipart/form-data: 415 in OpenAI's shape."""
    response = httpx.post(
        server.http + "/v1/audio/transcriptions",
        json={"model": "whisper-1"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_full_node_refuses_with_503_in_openai_shape(
    server: Server, client: openai.OpenAI, short_clip: tuple[np.ndarray, str]
) -> None:
    """WSS_MAX_SESSIONS=1 and a live /transcribe session holds it: the file job is admitted
    like a session, so it gets a 503 with Retry-After (the SDK's InternalServerError)."""

    async def hold_a_live_session() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with websockets.connect(server.url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "speech.config", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "speech.config.ack"
            with pytest.raises(openai.InternalServerError) as raised:
                await asyncio.to_thread(transcribe, client, encode(short_clip[0], "wav"))
            assert raised.value.status_code == 503
            assert raised.value.response.headers["retry-after"]
            assert raised.value.response.json()["error"]["type"] == "server_error"

    asyncio.run(hold_a_live_session())


def test_over_redis_the_batch_channel_reaches_a_separate_worker(
    tiny_model_path: Path, short_clip: tuple[np.ndarray, str]
) -> None:
    """The same code path with REDIS_URL: daphne sends the file's windows to the batch
    channel on Redis, a ``runworker asr.inference`` process transcribes them."""
    from tests.support.redisdb import redis_test_url

    env = {
        "WHISPER_MODEL_PATH": str(tiny_model_path),
        "REDIS_URL": redis_test_url(13),
        "DATABASE_URL": migrated_db(),
    }
    worker: Process = start_worker(env)
    srv = start_server(env)
    try:
        dev = openai.OpenAI(base_url=srv.http + "/v1", api_key="none", max_retries=0)
        audio, reference = short_clip
        result = transcribe(dev, encode(audio, "wav"))
        WER_BY_PATH["json.redis"] = round(wer(reference, result.text), 4)  # type: ignore[attr-defined]
        assert WER_BY_PATH["json.redis"] <= MAX_WER
    finally:
        srv.stop()
        worker.stop()


def test_a_failing_worker_is_a_503_or_an_error_event_in_the_stream(
    short_clip: tuple[np.ndarray, str],
) -> None:
    """The worker fails every window (FAKE backend, named as such): the inference client gives
    up, the request gets a 503; a stream already started ends with OpenAI's error object,
    which the SDK raises as APIError."""
    srv = start_server(
        {
            "DATABASE_URL": migrated_db(),
            "WSS_BACKEND": "fake",
            "WSS_FAKE_BACKEND_FAIL": "true",
            "WSS_INFERENCE_RETRIES": "0",
        }
    )
    try:
        dev = openai.OpenAI(base_url=srv.http + "/v1", api_key="none", max_retries=0)
        data = encode(short_clip[0], "wav")
        with pytest.raises(openai.InternalServerError) as raised:
            transcribe(dev, data)
        assert raised.value.status_code == 503
        assert raised.value.response.json()["error"]["code"] == "service_unavailable"
        with pytest.raises(openai.APIError, match="No inference worker answered"):
            for _ in transcribe(dev, data, stream=True):  # type: ignore[attr-defined]
                pass
    finally:
        srv.stop()
