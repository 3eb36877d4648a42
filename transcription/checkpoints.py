"""Checkpoints: signed, stored server-side, and turned back into a session on resume.

Normative: docs/PROTOCOL.md "Checkpoints and resume". A checkpoint the client hands back is trusted
only with a valid HMAC ``signature`` made from the server's secret (``salted_hmac``), so any
node of the deployment can verify it and nobody can forge one; signatures made under a secret
listed in ``SECRET_KEY_FALLBACKS`` still verify while the secret is rotated. Stores are shaped
like Django's session backends: ``aload`` / ``asave`` / ``adelete``, JSON values, one key
builder, and entries that expire after ``WSS_CHECKPOINT_TTL_S`` (Redis ``SET EX``; in memory, a
bounded LRU).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from transcription import metrics
from transcription.events import ClientError, ErrorCode
from transcription.redis_pool import Redis, get_redis
from transcription.session_state import ResumeState, resumed_language
from transcription.transcript import Transcript

log = logging.getLogger(__name__)

KEY_PREFIX = "openasr:checkpoint:"
LIVE_KEY_PREFIX = "openasr:live:"
# A live-session marker outlives its owner by at most LIVE_TTL_S when a node dies without
# cleaning up; the owner refreshes it every LIVE_REFRESH_S. A resume does not wait for the TTL:
# it probes the owner over the channel layer and takes the marker over when nobody answers
# within LIVE_PROBE_TIMEOUT_S (``live.claim``). A live owner answers from its channel-layer receive,
# not behind the frame it is handling (``SessionConsumer.answer_early``), so one round trip over
# Redis plus a loaded event loop's lag is all it needs; the resume of a dead node's session
# waits no longer than this.
LIVE_TTL_S = 15
LIVE_REFRESH_S = 5.0
LIVE_PROBE_TIMEOUT_S = 0.5
SIGNATURE_FIELD = "signature"
OWNER_FIELD = "key_id"
SESSION_ID_MAX_CHARS = 64
# The in-memory store keeps at most this many checkpoints and this many bytes of them (a
# checkpoint holds up to WSS_MAX_TRANSCRIPT_BYTES of transcript): beyond, the least recently
# saved or loaded one is dropped first. A dropped checkpoint can still be resumed from the full
# object the client was sent.
MEMORY_MAX_ENTRIES = 10_000
MEMORY_MAX_BYTES = 256 * 1024 * 1024
_SALT = "openasr.checkpoint"


def checkpoint_key(session_id: str) -> str:
    """The Redis key of a session's checkpoint."""
    return f"{KEY_PREFIX}{session_id}"


def live_key(session_id: str) -> str:
    """The Redis key of a session's live marker (value: the owning consumer's channel)."""
    return f"{LIVE_KEY_PREFIX}{session_id}"


def _canonical(checkpoint: Mapping[str, Any]) -> str:
    body = {k: v for k, v in checkpoint.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _signature(body: str, secret: str | None = None) -> str:
    digest: str = salted_hmac(_SALT, body, secret=secret, algorithm="sha256").hexdigest()
    return digest


def sign(checkpoint: Mapping[str, Any], key_id: str | None) -> dict[str, Any]:
    """Return the checkpoint with its owner (API key id) and HMAC signature (made with
    ``SECRET_KEY``) added."""
    signed = dict(checkpoint)
    signed[OWNER_FIELD] = key_id or ""
    signed[SIGNATURE_FIELD] = _signature(_canonical(signed))
    return signed


def verify(checkpoint: Mapping[str, Any]) -> bool:
    """True when the signature matches under ``SECRET_KEY`` or one of
    ``SECRET_KEY_FALLBACKS`` (this deployment issued this exact checkpoint)."""
    signature = checkpoint.get(SIGNATURE_FIELD)
    if not isinstance(signature, str) or not signature.isascii():  # ours are hex digests
        return False
    try:
        body = _canonical(checkpoint)
        body.encode()
    except (TypeError, ValueError, RecursionError):  # incl. lone surrogates: never ours
        return False
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(signature, _signature(body, secret)) for secret in secrets)


class CheckpointStore(Protocol):
    """Where checkpoints live between connections (Redis across nodes, memory on one node)."""

    async def aload(self, session_id: str) -> dict[str, Any] | None: ...

    async def asave(self, session_id: str, checkpoint: Mapping[str, Any]) -> None: ...

    async def adelete(self, session_id: str) -> None: ...


class InMemoryCheckpointStore:
    """Single-node store (no ``REDIS_URL``): same behaviour, lost on restart.

    An LRU (``OrderedDict``, most recently used last) of at most ``max_entries`` checkpoints and
    ``max_bytes`` of JSON; each entry expires ``ttl_s`` after its last save. Save, load and
    delete are O(1) (amortised: each entry is evicted at most once).
    """

    def __init__(
        self,
        ttl_s: int,
        max_entries: int = MEMORY_MAX_ENTRIES,
        max_bytes: int = MEMORY_MAX_BYTES,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key → (expiry, JSON)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= len(item[1])

    async def aload(self, session_id: str) -> dict[str, Any] | None:
        key = checkpoint_key(session_id)
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        loaded: dict[str, Any] = json.loads(item[1])
        return loaded

    async def asave(self, session_id: str, checkpoint: Mapping[str, Any]) -> None:
        now = time.monotonic()
        key = checkpoint_key(session_id)
        value = json.dumps(checkpoint)
        self._drop(key)
        self._data[key] = (now + self.ttl_s, value)
        self._bytes += len(value)
        # Oldest first: expired entries, then whatever is over the bounds (never the new one).
        while len(self._data) > 1:
            oldest, (expiry, _) = next(iter(self._data.items()))
            over = len(self._data) > self.max_entries or self._bytes > self.max_bytes
            if expiry > now and not over:
                break
            self._drop(oldest)

    async def adelete(self, session_id: str) -> None:
        self._drop(checkpoint_key(session_id))


class RedisCheckpointStore:
    """Checkpoints in Redis with a TTL, so a client can resume on any node."""

    def __init__(self, url: str, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self.url = url

    @property
    def _redis(self) -> Redis:
        return get_redis(self.url)

    async def aload(self, session_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(checkpoint_key(session_id))
        if raw is None:
            return None
        loaded: dict[str, Any] = json.loads(raw)
        return loaded

    async def asave(self, session_id: str, checkpoint: Mapping[str, Any]) -> None:
        # SET EX: the entry and its expiry are written at once, so none outlives the TTL.
        await self._redis.set(checkpoint_key(session_id), json.dumps(checkpoint), ex=self.ttl_s)

    async def adelete(self, session_id: str) -> None:
        await self._redis.delete(checkpoint_key(session_id))


class LiveSessions(Protocol):
    """Which connection owns a session right now, so a session runs on one connection only
    (docs/PROTOCOL.md "Checkpoints and resume": a session id live on another connection is refused).
    Owners are consumer channel names; every write is conditional on the current owner."""

    async def aclaim(self, session_id: str, owner: str) -> str | None:
        """Claim a free session: None on success, else the current owner."""
        ...

    async def atakeover(self, session_id: str, old_owner: str, owner: str) -> bool:
        """Replace ``old_owner`` (found dead) by ``owner``; False if someone else won."""
        ...

    async def arefresh(self, session_id: str, owner: str) -> bool:
        """Extend the marker's TTL; False when ``owner`` no longer holds it."""
        ...

    async def arelease(self, session_id: str, owner: str) -> None:
        """Drop the marker if ``owner`` still holds it."""
        ...


class InMemoryLiveSessions:
    """Single-node markers (no ``REDIS_URL``): the consumer's disconnect always releases."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    async def aclaim(self, session_id: str, owner: str) -> str | None:
        current = self._owners.setdefault(session_id, owner)
        return None if current == owner else current

    async def atakeover(self, session_id: str, old_owner: str, owner: str) -> bool:
        if self._owners.get(session_id) != old_owner:
            return False
        self._owners[session_id] = owner
        return True

    async def arefresh(self, session_id: str, owner: str) -> bool:
        return self._owners.get(session_id) == owner

    async def arelease(self, session_id: str, owner: str) -> None:
        if self._owners.get(session_id) == owner:
            del self._owners[session_id]


# Compare-and-set / compare-and-delete on the owner, atomic in Redis.
_TAKEOVER_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1
end
return 0
"""
_REFRESH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLiveSessions:
    """Markers in Redis (``SET NX EX``), so the refusal holds across nodes."""

    def __init__(self, url: str, ttl_s: int = LIVE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self.url = url

    @property
    def _redis(self) -> Redis:
        return get_redis(self.url)

    async def aclaim(self, session_id: str, owner: str) -> str | None:
        key = live_key(session_id)
        for _ in range(2):  # twice: the marker may expire between SET NX and GET
            if await self._redis.set(key, owner, nx=True, ex=self.ttl_s):
                return None
            raw = await self._redis.get(key)
            if raw is not None:
                current = raw.decode() if isinstance(raw, bytes) else raw
                return None if current == owner else current
        return ""  # contended: an owner nobody can probe, so the claim is refused

    async def atakeover(self, session_id: str, old_owner: str, owner: str) -> bool:
        key = live_key(session_id)
        won = await self._redis.eval(_TAKEOVER_LUA, 1, key, old_owner, owner, self.ttl_s)
        return bool(won)

    async def arefresh(self, session_id: str, owner: str) -> bool:
        return bool(
            await self._redis.eval(_REFRESH_LUA, 1, live_key(session_id), owner, self.ttl_s)
        )

    async def arelease(self, session_id: str, owner: str) -> None:
        await self._redis.eval(_RELEASE_LUA, 1, live_key(session_id), owner)


_store: CheckpointStore | None = None
_live: LiveSessions | None = None


def reset_stores() -> None:
    """Forget the stores built from the settings (they are rebuilt on next use)."""
    global _store, _live
    _store = None
    _live = None


def get_store() -> CheckpointStore:
    """The process's store, chosen by ``REDIS_URL``."""
    global _store
    if _store is None:
        cfg = settings.OPENASR
        if cfg.redis_url:
            _store = RedisCheckpointStore(cfg.redis_url, cfg.checkpoint_ttl_s)
        else:
            _store = InMemoryCheckpointStore(cfg.checkpoint_ttl_s)
    return _store


def get_live_sessions() -> LiveSessions:
    """The process's live-session markers, chosen by ``REDIS_URL``."""
    global _live
    if _live is None:
        cfg = settings.OPENASR
        _live = RedisLiveSessions(cfg.redis_url) if cfg.redis_url else InMemoryLiveSessions()
    return _live


def _not_found(reason: str) -> ClientError:
    return ClientError(ErrorCode.SESSION_NOT_FOUND, f"Cannot resume: {reason}")


async def resolve_resume(
    resume: Mapping[str, Any], key_id: str | None, store: CheckpointStore
) -> tuple[str, ResumeState]:
    """Turn a ``resume_checkpoint`` (full object or ``{"session_id"}``) into a session id and
    restored state, or raise ``SESSION_NOT_FOUND`` naming the reason."""
    session_id = resume.get("session_id")
    if not (
        isinstance(session_id, str)
        and 0 < len(session_id) <= SESSION_ID_MAX_CHARS
        and session_id.isascii()
        and session_id.isprintable()
    ):
        raise ClientError(
            ErrorCode.INVALID_MESSAGE,
            "Invalid 'resume_checkpoint.session_id': must be a string of 1 to "
            f"{SESSION_ID_MAX_CHARS} printable ASCII characters",
        )
    if set(resume) <= {"session_id"}:
        try:
            checkpoint = await store.aload(session_id)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="checkpoint_load").inc()
            log.warning("could not load checkpoint %s", session_id, exc_info=True)
            raise ClientError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "Cannot resume by session_id: the checkpoint store is unavailable; resume with "
                "the full checkpoint object or try again later",
            ) from None
        if checkpoint is None:
            raise _not_found(f"no checkpoint for session {session_id} (expired or unknown)")
    else:
        checkpoint = dict(resume)
        if SIGNATURE_FIELD not in checkpoint:
            if not settings.OPENASR.accept_unsigned_checkpoints:
                raise _not_found("the checkpoint is not signed by this service")
            checkpoint[OWNER_FIELD] = key_id or ""
        elif not verify(checkpoint):
            raise _not_found("the checkpoint's signature does not match (edited or forged)")
    if (checkpoint.get(OWNER_FIELD) or "") != (key_id or ""):
        raise _not_found("the checkpoint belongs to another API key")
    return session_id, restore(checkpoint)


def restore(checkpoint: Mapping[str, Any]) -> ResumeState:
    """Rebuild the transcript and timeline position from a verified checkpoint."""
    try:
        last_audio_ms = int(checkpoint.get("last_audio_ms", 0))
        text = str(checkpoint.get("full_transcript", ""))
        words = checkpoint.get("words") or []
    except (TypeError, ValueError, OverflowError):
        raise _not_found("the checkpoint is malformed") from None
    if last_audio_ms < 0:
        raise _not_found("the checkpoint is malformed")
    transcript = Transcript.from_text(text, last_audio_ms)
    if words:
        try:
            tail = Transcript.from_json({"words": words})
        except (KeyError, TypeError, ValueError, OverflowError):
            raise _not_found("the checkpoint's word timeline is malformed") from None
        transcript = Transcript.from_text_and_tail(text, tail.words)
    return ResumeState(
        transcript=transcript, last_audio_ms=last_audio_ms, language=resumed_language(checkpoint)
    )
