"""Languages and models end to end (docs/PROTOCOL.md "Language detection", README "Models"): a
real daphne serving tiny.en (the default) and base in one process, real speech, the words.

Real German, Spanish and French come from ../shared/speech/multi (skipped when absent),
English is generated; each is streamed with ``"auto"`` and scored with Whisper's basic
normaliser against the same model offline, language given, whole clip in one call. The figures
over all fifteen clips (``benchmarks/languages.py``) are in benchmarks/results/SUMMARY.md."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import websockets
from whisper_normalizer.basic import BasicTextNormalizer

from tests.e2e.conftest import migrated_db
from tests.support.client import config, pcm_chunks, stream
from tests.support.multi import Clip, basic_wer, clips
from tests.support.server import Server, start_server
from tests.support.speech import SENTENCES, synthesize
from transcription.inference.types import InferenceRequest
from transcription.languages import LOCK_MIN_PROBABILITY

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Windows shorter than the speech (20-35 s), so the language is locked over several windows.
WINDOW = {"window_duration_ms": 8000, "overlap_duration_ms": 1000}
# Two sentences per language (40-75 words): in one clip of 10-30 words a single word is 3-10
# points, and where the windows cut moves it by +-10. Measured at these windows: streaming 0 to
# +2.6 points (one word) over offline; benchmarks/languages.py pools 0 to +3.7 points per
# language over five clips. More means the merge or the language lock lost words.
WER_MARGIN = 0.06
PAUSE_S = 0.5  # between the two sentences


@pytest.fixture(scope="module")
def two_model_server(tiny_model_path: Path, base_model_path: Path) -> Iterator[Server]:
    """The in-process default: tiny.en by WSS_MODEL, base because it is installed."""
    server = start_server({"WSS_MODEL": "tiny.en", "DATABASE_URL": migrated_db()})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def offline(base_model_path: Path) -> Iterator[object]:
    """base through the shared backend, for the offline transcript of a clip."""
    from transcription.inference.whisper_shared import SharedWhisperBackend

    backend = SharedWhisperBackend(base_model_path, concurrency=1, n_threads=2)
    yield backend
    backend.close()


def offline_text(backend: object, samples: np.ndarray, language: str) -> str:
    segments = backend.transcribe(samples, InferenceRequest(language=language, n_threads=2))  # type: ignore[attr-defined]
    return " ".join(s.text.strip() for s in segments)


def two_sentences(language: str) -> list[Clip]:
    """The first two clips of ``language`` (streamed one after the other)."""
    return clips(language)[:2]


def joined(parts: list[Clip]) -> Clip:
    """``parts`` as one recording, a short pause between them."""
    pause = b"\0\0" * int(16000 * PAUSE_S)
    return Clip(
        "+".join(c.name for c in parts),
        parts[0].language,
        " ".join(c.reference for c in parts),
        pause.join(c.pcm for c in parts),
    )


def english_clip() -> Clip:
    audio = np.concatenate([synthesize(s, "hibari") for s in SENTENCES[:3]])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return Clip("generated-en", "en", " ".join(SENTENCES[:3]), pcm)


@pytest.mark.parametrize("language", ["de", "es", "fr", "en"])
async def test_auto_detects_and_locks_the_language_of_real_speech(
    two_model_server: Server, offline: object, language: str
) -> None:
    """ "auto" (no model_id: the English-only default) goes to base; every phrase reports the
    speech's language, locked with a clear probability, the checkpoint keeps it, and the WER
    is within a few points of base offline with the language given."""
    parts = [english_clip()] if language == "en" else two_sentences(language)
    clip = joined(parts)
    result = await stream(
        two_model_server.url, pcm_chunks(clip.pcm, 16000), config(language="auto", **WINDOW)
    )
    result.assert_ended_normally()
    assert result.ack["payload"]["effective_config"]["model_id"] == "whisper-base"
    assert result.phrases and {p["language"] for p in result.phrases} == {language}
    assert all(p["language_probability"] >= 0.5 for p in result.phrases)
    assert result.last_checkpoint is not None
    assert result.last_checkpoint["language"] == language
    assert result.last_checkpoint["language_probability"] >= LOCK_MIN_PROBABILITY
    streamed = basic_wer(clip.reference, result.phrase_text)
    # Each sentence offline in one call (whisper.cpp seeks through audio over 30 s, which
    # costs words of its own: not the bar a stream is held to).
    whole = " ".join(offline_text(offline, c.samples, language) for c in parts)
    baseline = basic_wer(clip.reference, whole)
    print(f"{clip.name}: streaming {streamed:.3f} offline {baseline:.3f}")
    assert streamed <= baseline + WER_MARGIN, (result.phrase_text, clip.reference)


# Function words that tell English text from German text (a translation keeps a few of the
# first, a transcription of German is full of the second).
ENGLISH_WORDS = {"the", "of", "and", "to", "a", "in", "is", "you", "they", "for", "it", "was"}
GERMAN_WORDS = {"die", "der", "das", "und", "sie", "ist", "zum", "von", "auf", "ein", "eine"}


async def test_german_speech_with_task_translate_comes_back_in_english(
    two_model_server: Server,
) -> None:
    """task "translate" with "auto" on the English-only default: base serves it, the ack
    shows the task, phrases report the spoken language (de) and their words are English."""
    clip = clips("de")[0]
    payload = config(language="auto", task="translate", **WINDOW)
    result = await stream(two_model_server.url, pcm_chunks(clip.pcm, 16000), payload)
    result.assert_ended_normally()
    effective = result.ack["payload"]["effective_config"]
    assert (effective["model_id"], effective["task"]) == ("whisper-base", "translate")
    assert result.phrases and {p["language"] for p in result.phrases} == {"de"}
    words = set(BasicTextNormalizer()(result.phrase_text).split())
    assert len(words & ENGLISH_WORDS) >= 3 and not words & GERMAN_WORDS, result.phrase_text


async def test_an_unknown_language_is_refused_at_config(two_model_server: Server) -> None:
    """language "xx": INVALID_MESSAGE naming 'language' and the Whisper list; nothing starts."""
    result = await stream(two_model_server.url, [], config(language="xx"), end=False)
    assert result.events[0]["type"] == "speech.error"
    error = result.events[0]["payload"]
    assert error["code"] == "INVALID_MESSAGE"
    assert "'language'" in error["message"] and "Whisper language code" in error["message"]


async def test_the_english_only_default_reroutes_german_to_the_multilingual_model(
    two_model_server: Server,
) -> None:
    """model_id whisper-tiny.en with language "de": base serves it, and the ack says so."""
    clip = clips("de")[1]
    payload = config(language="de", model_id="whisper-tiny.en", **WINDOW)
    result = await stream(two_model_server.url, pcm_chunks(clip.pcm, 16000), payload)
    result.assert_ended_normally()
    assert result.ack["payload"]["effective_config"]["model_id"] == "whisper-base"
    assert basic_wer(clip.reference, result.phrase_text) < 0.5


async def test_two_sessions_with_different_models_are_served_by_their_pools_at_once(
    two_model_server: Server,
) -> None:
    """A tiny.en and a base session at the same time on one node: each ack names its model,
    both transcribe the same English speech, and each pool's metrics moved."""

    def pool_windows() -> dict[str, float]:
        _, text = two_model_server.get("/metrics")
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("openasr_inference_real_time_factor_count{"):
                model = line.split('model="', 1)[1].split('"', 1)[0]
                found[model] = float(line.rsplit(" ", 1)[1])
        return found

    clip = english_clip()
    before = pool_windows()
    frames = pcm_chunks(clip.pcm, 16000)
    tiny, base = await asyncio.gather(
        stream(two_model_server.url, frames, config(model_id="whisper-tiny.en", **WINDOW)),
        stream(two_model_server.url, frames, config(model_id="base", **WINDOW)),
    )
    after = pool_windows()
    for result, model in ((tiny, "whisper-tiny.en"), (base, "whisper-base")):
        result.assert_ended_normally()
        assert result.ack["payload"]["effective_config"]["model_id"] == model
        assert basic_wer(clip.reference, result.phrase_text) < 0.2, result.phrase_text
        assert after[model] > before.get(model, 0.0)


async def test_an_unknown_model_id_is_served_by_the_default_and_the_ack_names_it(
    two_model_server: Server,
) -> None:
    """The seed's whisper-large-v3: tiny.en (the default) serves, and the ack says so."""
    async with websockets.connect(two_model_server.url) as ws:
        await ws.send(
            json.dumps({"type": "speech.config", "payload": config(model_id="whisper-large-v3")})
        )
        ack = json.loads(await ws.recv())
    assert ack["payload"]["effective_config"]["model_id"] == "whisper-tiny.en"
