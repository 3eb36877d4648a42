"""Checkpoints (PROTOCOL.md "Checkpoints and resume"): signed by the server, scoped to the API
key that created the session, stored with a TTL in memory or Redis, and restored on resume;
live-session markers keep one session on one connection across nodes."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from typing import Any

import pytest
import redis
from django.conf import settings

from openasr_site.config import ServerConfig
from tests.e2e.conftest import redis_test_url
from transcription import checkpoints
from transcription.checkpoints import (
    MEMORY_MAX_ENTRIES,
    InMemoryCheckpointStore,
    InMemoryLiveSessions,
    RedisCheckpointStore,
    RedisLiveSessions,
    resolve_resume,
    restore,
    sign,
    verify,
)
from transcription.events import ClientError, ErrorCode

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def payload(session_id: str = "a" * 32) -> dict[str, Any]:
    """A checkpoint as ``Session.checkpoint()`` makes it (unsigned)."""
    return {
        "session_id": session_id,
        "last_audio_ms": 9500,
        "last_text_offset": 22,
        "full_transcript": "Hello there. Good day.",
        "buffer_config": {"window_duration_ms": 5000, "overlap_duration_ms": 500},
        "backend_model_id": "tiny.en",
        "words": [
            {"text": "Good", "start": 8000, "end": 8400, "prob": 0.9},
            {"text": "day.", "start": 8400, "end": 9000, "prob": 0.8},
        ],
    }


@pytest.fixture
def configure(settings: Any) -> Any:
    base = settings.OPENASR

    def apply(**overrides: Any) -> ServerConfig:
        changes = {"accept_unsigned_checkpoints": False, **overrides}
        settings.OPENASR = dataclasses.replace(base, **changes)
        return settings.OPENASR

    apply()
    return apply


def not_found(exc: pytest.ExceptionInfo[ClientError]) -> bool:
    return exc.value.code is ErrorCode.SESSION_NOT_FOUND


# --- sign / verify ---


def test_signed_checkpoint_verifies_and_names_its_owner() -> None:
    """sign() adds the owner key id and a signature that verify() accepts."""
    signed = sign(payload(), "key-1")
    assert signed["key_id"] == "key-1"
    assert verify(signed)
    assert verify(sign(payload(), None))


def _tamperings() -> list[tuple[str, Any]]:
    return [
        ("session_id", "b" * 32),
        ("last_audio_ms", 9501),
        ("last_text_offset", 0),
        ("full_transcript", "Hello there. Good night."),
        ("buffer_config", {"window_duration_ms": 3000, "overlap_duration_ms": 500}),
        ("backend_model_id", "base"),
        ("words", []),
        ("key_id", "key-2"),
        ("extra", 1),
    ]


@pytest.mark.parametrize(("field", "value"), _tamperings())
def test_editing_any_field_breaks_the_signature(field: str, value: Any) -> None:
    """Changing, adding or dropping any field of a signed checkpoint fails verification."""
    signed = sign(payload(), "key-1")
    edited = copy.deepcopy(signed)
    edited[field] = value
    assert not verify(edited)
    dropped = {k: v for k, v in signed.items() if k != field}
    assert field == "extra" or not verify(dropped)


def test_signature_from_another_secret_fails(settings: Any) -> None:
    """A checkpoint signed under another SECRET_KEY (another deployment) is not ours."""
    signed = sign(payload(), "key-1")
    settings.SECRET_KEY = "another-deployment-secret-0123456789-abcdefghijkl"
    assert not verify(signed)


def test_signatures_of_a_fallback_secret_still_verify(settings: Any) -> None:
    """While DJANGO_SECRET_KEY is rotated, checkpoints signed under a secret listed in
    DJANGO_SECRET_KEY_FALLBACKS verify; new ones are signed with the current secret only."""
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "old-secret-" + "o" * 40, []
    old = sign(payload(), "key-1")
    settings.SECRET_KEY = "new-secret-" + "n" * 40
    assert not verify(old)
    settings.SECRET_KEY_FALLBACKS = ["old-secret-" + "o" * 40]
    assert verify(old)
    new = sign(payload(), "key-1")
    settings.SECRET_KEY_FALLBACKS = []
    assert verify(new) and not verify(old)


@pytest.mark.parametrize(
    "edit",
    [
        {"full_transcript": "\ud800"},
        {"session_id": "\udfff"},
        {"words": [{"text": "\ud800", "start": 0, "end": 1, "prob": 1.0}]},
        {"signature": "\ud800"},
    ],
)
def test_lone_surrogates_never_verify_nor_crash(edit: dict[str, Any]) -> None:
    """A signed checkpoint with a lone surrogate anywhere (a hostile client) is simply not
    ours: verify() is False, it does not raise."""
    assert not verify({**sign(payload(), "key-1"), **edit})


def test_missing_or_non_string_signature_fails() -> None:
    """No signature, or a signature that is not a string, never verifies."""
    assert not verify(payload())
    assert not verify({**sign(payload(), None), "signature": 12345})


# --- resolve_resume ---


async def test_full_checkpoint_resumes_for_its_owner(configure: Any) -> None:
    """The owner's full signed checkpoint restores its transcript and timeline position."""
    signed = sign(payload(), "key-1")
    session_id, state = await resolve_resume(signed, "key-1", InMemoryCheckpointStore(60))
    assert session_id == "a" * 32
    assert state.last_audio_ms == 9500
    assert state.transcript.text == "Hello there. Good day."


@pytest.mark.parametrize("caller", ["key-2", None])
async def test_another_keys_checkpoint_is_not_found(configure: Any, caller: str | None) -> None:
    """A checkpoint owned by another API key (or by a keyed caller) is SESSION_NOT_FOUND."""
    signed = sign(payload(), "key-1")
    with pytest.raises(ClientError) as exc:
        await resolve_resume(signed, caller, InMemoryCheckpointStore(60))
    assert not_found(exc) and "another API key" in exc.value.message


async def test_tampered_checkpoint_is_not_found(configure: Any) -> None:
    """An edited checkpoint is SESSION_NOT_FOUND."""
    edited = {**sign(payload(), "key-1"), "last_audio_ms": 0}
    with pytest.raises(ClientError) as exc:
        await resolve_resume(edited, "key-1", InMemoryCheckpointStore(60))
    assert not_found(exc) and "signature" in exc.value.message


async def test_unsigned_checkpoint_needs_the_setting(configure: Any) -> None:
    """An unsigned (C++ server) checkpoint is refused unless WSS_ACCEPT_UNSIGNED_CHECKPOINTS."""
    store = InMemoryCheckpointStore(60)
    with pytest.raises(ClientError) as exc:
        await resolve_resume(payload(), "key-1", store)
    assert not_found(exc)
    configure(accept_unsigned_checkpoints=True)
    session_id, state = await resolve_resume(payload(), "key-1", store)
    assert session_id == "a" * 32 and state.last_audio_ms == 9500


async def test_session_id_only_loads_the_stored_checkpoint(configure: Any) -> None:
    """{"session_id"} resumes from the store, scoped to the owner; unknown ids are not found."""
    store = InMemoryCheckpointStore(60)
    await store.asave("a" * 32, sign(payload(), "key-1"))
    _, state = await resolve_resume({"session_id": "a" * 32}, "key-1", store)
    assert state.last_audio_ms == 9500
    with pytest.raises(ClientError) as exc:
        await resolve_resume({"session_id": "a" * 32}, "key-2", store)
    assert not_found(exc)
    with pytest.raises(ClientError) as exc:
        await resolve_resume({"session_id": "c" * 32}, "key-1", store)
    assert not_found(exc)


async def test_bad_session_id_is_invalid_message(configure: Any) -> None:
    """A missing or non-string session_id, or one that is not 1-64 printable ASCII
    characters, is INVALID_MESSAGE (never a store error)."""
    for resume in (
        {},
        {"session_id": 5},
        {"session_id": "x" * 65},
        {"session_id": "\ud800"},
        {"session_id": "a\nb"},
        {"session_id": "sessión"},
    ):
        with pytest.raises(ClientError) as exc:
            await resolve_resume(resume, None, InMemoryCheckpointStore(60))
        assert exc.value.code is ErrorCode.INVALID_MESSAGE


async def test_store_down_is_service_unavailable(configure: Any) -> None:
    """Resume by session_id with Redis away is a clear SERVICE_UNAVAILABLE, not a crash."""
    store = RedisCheckpointStore(DEAD_REDIS_URL, 60)
    with pytest.raises(ClientError) as exc:
        await resolve_resume({"session_id": "a" * 32}, None, store)
    assert exc.value.code is ErrorCode.SERVICE_UNAVAILABLE
    # the full object still works: it needs no store
    _, state = await resolve_resume(sign(payload(), None), None, store)
    assert state.last_audio_ms == 9500


# --- restore ---


def test_restore_rebuilds_transcript_and_word_tail() -> None:
    """restore() gives the committed text, its word tail and the resume point."""
    state = restore(payload())
    assert state.last_audio_ms == 9500
    assert state.transcript.text == "Hello there. Good day."
    assert [w.text for w in state.transcript.words][-2:] == ["Good", "day."]


@pytest.mark.parametrize(
    "edit",
    [
        {"last_audio_ms": -1},
        {"last_audio_ms": "soon"},
        {"last_audio_ms": float("inf")},
        {"last_audio_ms": "9" * 5000},
        {"words": [{"text": "x"}]},
    ],
)
def test_restore_refuses_malformed_checkpoints(edit: dict[str, Any]) -> None:
    """A malformed checkpoint (accepted unsigned) is SESSION_NOT_FOUND, not a crash."""
    with pytest.raises(ClientError) as exc:
        restore({**payload(), **edit})
    assert not_found(exc)


# --- stores ---


async def test_in_memory_store_expires_after_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process store returns a checkpoint until its TTL passes, and deletes on request."""
    now = [1000.0]
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: now[0])
    store = InMemoryCheckpointStore(60)
    await store.asave("s1", sign(payload("s1"), None))
    assert (await store.aload("s1"))["session_id"] == "s1"  # type: ignore[index]
    now[0] += 61
    assert await store.aload("s1") is None
    await store.asave("s2", payload("s2"))
    await store.adelete("s2")
    assert await store.aload("s2") is None


async def test_in_memory_store_is_a_bounded_lru() -> None:
    """Past max_entries the least recently saved or loaded checkpoint is dropped first."""
    store = InMemoryCheckpointStore(60, max_entries=3)
    for sid in ("s1", "s2", "s3"):
        await store.asave(sid, payload(sid))
    assert await store.aload("s1") is not None  # s1 is now the most recently used
    await store.asave("s4", payload("s4"))
    assert len(store) == 3
    assert await store.aload("s2") is None
    assert {sid for sid in ("s1", "s3", "s4") if await store.aload(sid)} == {"s1", "s3", "s4"}
    await store.asave("s3", payload("s3"))  # saving again replaces, never duplicates
    assert len(store) == 3


async def test_in_memory_store_is_bounded_in_bytes() -> None:
    """Past max_bytes of JSON the oldest checkpoints go, but never the one just saved."""
    size = len(json.dumps(payload("b0")))
    store = InMemoryCheckpointStore(60, max_bytes=size * 2)
    for i in range(5):
        await store.asave(f"b{i}", payload(f"b{i}"))
    assert len(store) == 2 and await store.aload("b4") is not None
    huge = {**payload("big"), "full_transcript": "x" * (size * 4)}
    await store.asave("big", huge)
    assert len(store) == 1 and await store.aload("big") == huge


async def test_in_memory_store_drops_expired_entries_when_saving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expired checkpoints free their memory at the next save, not only when loaded."""
    now = [1000.0]
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: now[0])
    store = InMemoryCheckpointStore(60)
    for i in range(100):
        await store.asave(f"old{i}", payload(f"old{i}"))
    now[0] += 61
    await store.asave("fresh", payload("fresh"))
    assert len(store) == 1


async def test_in_memory_store_stays_bounded_under_many_sessions() -> None:
    """Many more sessions than MEMORY_MAX_ENTRIES: the store holds MEMORY_MAX_ENTRIES, and the
    newest checkpoints are the ones kept."""
    store = InMemoryCheckpointStore(60)
    small = {"session_id": "s", "full_transcript": "hi"}
    for i in range(MEMORY_MAX_ENTRIES + 2000):
        await store.asave(f"s{i}", small)
    assert len(store) == MEMORY_MAX_ENTRIES
    assert await store.aload("s0") is None
    assert await store.aload(f"s{MEMORY_MAX_ENTRIES + 1999}") == small


async def test_redis_store_round_trips_with_ttl() -> None:
    """The Redis store keeps JSON under openasr:checkpoint:<id> with the configured TTL."""
    url = redis_test_url(5)
    store = RedisCheckpointStore(url, 120)
    signed = sign(payload("r1"), "key-1")
    await store.asave("r1", signed)
    assert await store.aload("r1") == signed
    ttl = redis.Redis.from_url(url).ttl("openasr:checkpoint:r1")
    assert 110 <= ttl <= 120
    await store.adelete("r1")
    assert await store.aload("r1") is None
    assert await store.aload("never") is None


# --- live-session markers ---


async def test_in_memory_live_sessions() -> None:
    """One owner per session; takeover only from the owner found dead; release by owner only."""
    live = InMemoryLiveSessions()
    assert await live.aclaim("s", "ch-a") is None
    assert await live.aclaim("s", "ch-b") == "ch-a"
    assert not await live.atakeover("s", "ch-x", "ch-b")
    assert await live.atakeover("s", "ch-a", "ch-b")
    await live.arelease("s", "ch-a")  # not the owner any more: no effect
    assert await live.arefresh("s", "ch-b")
    await live.arelease("s", "ch-b")
    assert await live.aclaim("s", "ch-c") is None


async def test_redis_live_sessions_across_processes() -> None:
    """Markers in Redis: SET NX with a short TTL, refreshed and released by their owner only."""
    url = redis_test_url(6)
    node_a, node_b = RedisLiveSessions(url), RedisLiveSessions(url)
    assert await node_a.aclaim("s", "ch-a") is None
    assert await node_b.aclaim("s", "ch-b") == "ch-a"
    raw = redis.Redis.from_url(url)
    assert 0 < raw.ttl("openasr:live:s") <= checkpoints.LIVE_TTL_S
    raw.expire("openasr:live:s", 2)
    assert await node_a.arefresh("s", "ch-a")
    assert raw.ttl("openasr:live:s") > 2
    assert not await node_b.arefresh("s", "ch-b")
    assert not await node_b.atakeover("s", "ch-other", "ch-b")
    assert await node_b.atakeover("s", "ch-a", "ch-b")
    await node_a.arelease("s", "ch-a")
    assert raw.get("openasr:live:s") == b"ch-b"
    await node_b.arelease("s", "ch-b")
    assert raw.get("openasr:live:s") is None


async def test_live_marker_expires_when_its_owner_stops_refreshing() -> None:
    """A dead owner's marker goes away by itself after its TTL."""
    url = redis_test_url(7)
    live = RedisLiveSessions(url, ttl_s=1)
    assert await live.aclaim("s", "ch-a") is None
    raw = redis.Redis.from_url(url)
    assert raw.pttl("openasr:live:s") <= 1000
    await asyncio.sleep(1.2)
    assert await live.aclaim("s", "ch-b") is None


def test_a_settings_change_rebuilds_the_stores() -> None:
    """override_settings(OPENASR=...) drops the cached stores (setting_changed), so a test or
    a reconfigured process never keeps a store built from the old settings."""
    from django.test import override_settings

    first = checkpoints.get_store()
    with override_settings(OPENASR=dataclasses.replace(settings.OPENASR, checkpoint_ttl_s=61)):
        assert checkpoints.get_store() is not first
