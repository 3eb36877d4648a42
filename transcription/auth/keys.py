"""API keys: format, digest, lifecycle (create, revoke, rotate) and the cached lookup the
handshake uses. Normative: docs/PROTOCOL.md "Transport and auth".

A database key is ``oasr_<prefix>.<secret>``: 48 random bits of public prefix (the lookup index,
and what people see in the admin) and 256 random bits of secret. The database stores only
``salted_hmac`` of the whole key. A slow password hash (PBKDF2) would buy nothing for 256-bit
random secrets and would cost a hash per connect; the digest is checked against
``[SECRET_KEY, *SECRET_KEY_FALLBACKS]`` so the server secret can be rotated like Django's own
signatures. The single ``WSS_API_KEY`` env key is compared in constant time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from transcription.models import APIKey

log = logging.getLogger(__name__)

KEY_PREFIX = "oasr_"
PREFIX_BYTES = 6  # 12 hex characters: collisions are retried, guessing one gains nothing
SECRET_BYTES = 32  # 256 bits
MAX_KEY_CHARS = 512  # anything longer is not a key: refuse before hashing it
LAST_USED_EVERY_S = 60.0
# How often a live session asks ``akey_active`` (the consumer's poll): with the cache period it
# bounds how long a revoked key's sessions go on (``revocation_delay_s``).
KEY_CHECK_EVERY_S = 1.0
_DIGEST_SALT = "openasr.apikey"
_KEY_RE = re.compile(r"^oasr_([0-9a-f]{8,32})\.([A-Za-z0-9_-]{16,200})$")
_MAX_CACHED = 10_000
_MAX_ROTATION_CHAIN = 64


class KeyIdentity(TypedDict):
    """What a connection knows about its key: ``scope["openasr.key"]``."""

    id: str  # database id of the first key of its rotation chain, or "env"
    name: str
    max_sessions: int | None
    prefix: str  # public prefix of the key presented ("" for the env key): what ``akey_active``
    # checks, since the old and the new key of a rotation share one ``id``


ENV_IDENTITY = KeyIdentity(id="env", name="env", max_sessions=None, prefix="")


class AuthUnavailable(Exception):
    """The key database cannot be read: the handshake answers 503, not 401."""


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key; ``key`` is shown once and never stored."""

    prefix: str
    key: str


def generate_key() -> NewKey:
    """A new random key ``oasr_<prefix>.<secret>``."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    return NewKey(prefix=prefix, key=f"{KEY_PREFIX}{prefix}.{secrets.token_urlsafe(SECRET_BYTES)}")


def split_key(key: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed database key, else None."""
    match = _KEY_RE.match(key) if len(key) <= MAX_KEY_CHARS else None
    return (match.group(1), match.group(2)) if match else None


def key_digest(key: str, secret: str | None = None) -> str:
    """The stored form of a key: HMAC-SHA256 keyed from the server secret."""
    digest: str = salted_hmac(_DIGEST_SALT, key, secret=secret, algorithm="sha256").hexdigest()
    return digest


def digest_matches(key: str, stored: str) -> bool:
    """Constant-time check of ``key`` against a stored digest, under the current server secret
    or any of ``SECRET_KEY_FALLBACKS``."""
    secrets_to_try = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(key_digest(key, s), stored) for s in secrets_to_try)


# --- lifecycle (admin and ``manage.py apikey``) ---


def _unique_new_key() -> NewKey:
    for _ in range(5):
        new = generate_key()
        if not APIKey.objects.filter(prefix=new.prefix).exists():
            return new
    # 48 random bits colliding five times in a row means the RNG is broken
    raise RuntimeError("could not generate a unique API key prefix")


def create_key(
    name: str,
    *,
    notes: str = "",
    expires_at: datetime | None = None,
    max_sessions: int | None = None,
    rotated_from: APIKey | None = None,
) -> tuple[APIKey, str]:
    """Create and save a key; return ``(APIKey, clear key)``: the only time the key exists."""
    row = APIKey(
        name=name,
        notes=notes,
        expires_at=expires_at,
        max_sessions=max_sessions,
        rotated_from=rotated_from,
    )
    key = fill_new_key(row)
    row.save()
    log.info("API key created: %s (oasr_%s)", name, row.prefix)
    return row, key


def fill_new_key(row: APIKey) -> str:
    """Give an unsaved ``APIKey`` (admin add form) a fresh prefix and digest; return the key."""
    new = _unique_new_key()
    row.prefix = new.prefix
    row.secret_hash = key_digest(new.key)
    return new.key


def revoke_key(row: APIKey) -> bool:
    """Revoke a key; False if it already was. Within ``WSS_API_KEY_CACHE_S`` every node refuses
    it at the handshake and ends its live sessions (``akey_active``)."""
    now = timezone.now()
    # A conditional UPDATE: a stale ``row`` (another admin revoked it meanwhile) is a no-op.
    if not APIKey.objects.filter(pk=row.pk, revoked=False).update(revoked=True, revoked_at=now):
        return False
    row.revoked, row.revoked_at = True, now
    log.info("API key revoked: %s (oasr_%s)", row.name, row.prefix)
    return True


def revocation_delay_s() -> float:
    """The most seconds between revoking a key (or its expiry, or the end of its rotation grace)
    and every node refusing it and ending its live sessions: what operators are told."""
    return float(settings.OPENASR.api_key_cache_s) + KEY_CHECK_EVERY_S


class RotationError(ValueError):
    """The key cannot be rotated (revoked, expired, or already rotated)."""


def rotate_key(row: APIKey, grace_s: int | None = None) -> tuple[APIKey, str]:
    """Replace a key: a new key with the same name and limits, and the old one valid for
    ``grace_s`` more seconds (``WSS_KEY_ROTATION_GRACE_S``). Returns ``(new APIKey, key)``."""
    if grace_s is None:
        grace_s = settings.OPENASR.key_rotation_grace_s
    with transaction.atomic():
        # Locked and re-read: two admins rotating at once must not make two successors.
        row = APIKey.objects.select_for_update().get(pk=row.pk)
        status = row.status()
        if status != "active":
            raise RotationError(
                f"key oasr_{row.prefix} is {status}: only active keys can be rotated"
            )
        new_row, key = create_key(
            row.name,
            notes=row.notes,
            expires_at=row.expires_at,
            max_sessions=row.max_sessions,
            rotated_from=row,
        )
        row.grace_until = timezone.now() + timedelta(seconds=grace_s)
        row.save(update_fields=["grace_until"])
    log.info("API key rotated: oasr_%s → oasr_%s (grace %d s)", row.prefix, new_row.prefix, grace_s)
    return new_row, key


# --- lookup at the handshake ---


@dataclass(frozen=True)
class KeySnapshot:
    """A key row as the handshake needs it; cached for ``WSS_API_KEY_CACHE_S``."""

    pk: int
    prefix: str
    identity_id: str
    name: str
    secret_hash: str
    revoked: bool
    expires_at: datetime | None
    grace_until: datetime | None
    max_sessions: int | None

    def refusal(self, now: datetime) -> str | None:
        """Why this key does not authenticate at ``now``, or None when it does."""
        if self.revoked:
            return "API key revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "API key expired"
        if self.grace_until is not None and self.grace_until <= now:
            return "API key was rotated and its grace period is over"
        return None

    def identity(self) -> KeyIdentity:
        """What a connection authenticated with this key carries in its scope."""
        return KeyIdentity(
            id=self.identity_id, name=self.name, max_sessions=self.max_sessions, prefix=self.prefix
        )


@dataclass(frozen=True)
class AuthResult:
    """Outcome of checking one presented key: an identity, or a reason safe to show."""

    identity: KeyIdentity | None = None
    reason: str = ""


def _load_snapshot(prefix: str) -> KeySnapshot | None:
    row = APIKey.objects.filter(prefix=prefix).first()
    if row is None:
        return None
    # Checkpoints are owned by the key id: a rotated key keeps the id of the first key of its
    # chain so sessions stored under the old key can resume with the new one.
    root_id, parent_id = row.pk, row.rotated_from_id
    for _ in range(_MAX_ROTATION_CHAIN):
        if parent_id is None:
            break
        root_id = parent_id
        parent_id = (
            APIKey.objects.filter(pk=parent_id).values_list("rotated_from_id", flat=True).first()
        )
    return KeySnapshot(
        pk=row.pk,
        prefix=row.prefix,
        identity_id=str(root_id),
        name=row.name,
        secret_hash=row.secret_hash,
        revoked=row.revoked,
        expires_at=row.expires_at,
        grace_until=row.grace_until,
        max_sessions=row.max_sessions,
    )


def _any_key_exists() -> bool:
    return bool(APIKey.objects.exists())


def _touch(pk: int, when: datetime) -> None:
    APIKey.objects.filter(pk=pk).update(last_used_at=when)


class KeyCache:
    """In-process cache of key rows by prefix, so a connect costs a dict lookup and one HMAC,
    and the revocation poll of every live session costs one query per key per period.

    Entries live ``WSS_API_KEY_CACHE_S`` seconds: that is how long a revocation can take to
    reach this process. Concurrent misses for one prefix share one query. Used on the event
    loop thread only, like ``registry.NODE``.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[float, KeySnapshot | None]] = {}
        self._loading: dict[str, asyncio.Task[KeySnapshot | None]] = {}
        self._any: tuple[float, bool] | None = None
        self._touched: dict[int, float] = {}
        self._poll_unavailable_until = 0.0

    def clear(self) -> None:
        """Forget everything (tests; a management command changing keys in-process)."""
        self._rows.clear()
        self._loading.clear()
        self._any = None
        self._touched.clear()
        self._poll_unavailable_until = 0.0

    @staticmethod
    def _ttl_s() -> float:
        return float(settings.OPENASR.api_key_cache_s)

    async def snapshot(self, prefix: str) -> KeySnapshot | None:
        """The key row with this prefix (None: no such key), at most ``TTL`` seconds old."""
        now = time.monotonic()
        hit = self._rows.get(prefix)
        if hit is not None and now - hit[0] < self._ttl_s():
            return hit[1]
        task = self._loading.get(prefix)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._load(prefix, now))
            self._loading[prefix] = task
            task.add_done_callback(lambda done: self._loaded(prefix, done))
        # Shielded: one waiter cancelled (its connection closed) must not cancel the query the
        # other waiters share.
        return await asyncio.shield(task)

    async def _load(self, prefix: str, now: float) -> KeySnapshot | None:
        try:
            snap: KeySnapshot | None = await database_sync_to_async(_load_snapshot)(prefix)
        except DatabaseError as exc:
            raise AuthUnavailable("API key database unavailable") from exc
        if len(self._rows) >= _MAX_CACHED:  # unknown prefixes are attacker-chosen: stay bounded
            self._rows.clear()
        self._rows[prefix] = (now, snap)
        return snap

    def _loaded(self, prefix: str, task: asyncio.Task[KeySnapshot | None]) -> None:
        if self._loading.get(prefix) is task:
            del self._loading[prefix]
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone

    async def auth_required(self) -> bool:
        """Whether connections need a key: ``WSS_REQUIRE_AUTH``, ``WSS_API_KEY``, or any key
        row in the database (revoked and expired ones included, so revoking the last key never
        opens the server; deleting every row returns to dev mode)."""
        cfg = settings.OPENASR
        if cfg.require_auth or cfg.api_key:
            return True
        now = time.monotonic()
        if self._any is not None and self._any[1] and now - self._any[0] < self._ttl_s():
            return True
        # "No keys" is never cached: the first key created must close dev mode at once.
        try:
            exists: bool = await database_sync_to_async(_any_key_exists)()
        except DatabaseError as exc:
            raise AuthUnavailable("API key database unavailable") from exc
        self._any = (now, exists)
        return exists

    async def touch(self, pk: int) -> None:
        """Record use of a key, at most once a minute per key and process."""
        now = time.monotonic()
        last = self._touched.get(pk)
        if last is not None and now - last < LAST_USED_EVERY_S:
            return
        self._touched[pk] = now  # before the await: concurrent connects write once
        try:
            await database_sync_to_async(_touch)(pk, timezone.now())
        except DatabaseError:
            # Bookkeeping only: a key that verified must not be refused for it.
            log.warning("could not record API key use", exc_info=True)

    async def authenticate(self, presented: str) -> AuthResult:
        """Check a presented key (env key first, then the database)."""
        if not presented:
            return AuthResult(reason="empty API key")
        env_key = settings.OPENASR.api_key
        if env_key and constant_time_compare(presented, env_key):
            return AuthResult(identity=ENV_IDENTITY)
        parts = split_key(presented)
        if parts is None:
            return AuthResult(reason="invalid API key")
        snap = await self.snapshot(parts[0])
        if snap is None or not digest_matches(presented, snap.secret_hash):
            return AuthResult(reason="invalid API key")
        # Only the holder of the right secret learns that the key expired or was revoked.
        refusal = snap.refusal(timezone.now())
        if refusal is not None:
            return AuthResult(reason=refusal)
        await self.touch(snap.pk)
        return AuthResult(identity=snap.identity())

    async def key_active(self, identity: KeyIdentity | None) -> bool:
        """Whether a live session authenticated as ``identity`` may go on (see ``akey_active``)."""
        if identity is None:
            return True  # dev mode: the connection presented no key
        if identity["id"] == ENV_IDENTITY["id"]:
            return bool(settings.OPENASR.api_key)
        now = time.monotonic()
        if now < self._poll_unavailable_until:
            return True
        try:
            snap = await self.snapshot(identity["prefix"])
        except AuthUnavailable:
            # Fail open: a database outage must not end every live session. Ask again after
            # one cache period, not once per session per poll.
            self._poll_unavailable_until = now + self._ttl_s()
            log.warning("cannot check API keys of live sessions: database unavailable")
            return True
        return snap is not None and snap.refusal(timezone.now()) is None


KEY_CACHE = KeyCache()


async def akey_active(identity: KeyIdentity | None) -> bool:
    """Whether a live session authenticated as ``identity`` (``scope["openasr.key"]``) may go
    on; the consumer polls it about once a second and, on False, sends ``speech.error``
    ``UNAUTHORIZED`` and closes with 4001 (docs/PROTOCOL.md "Close codes").

    True for None (dev mode) and for the env key while ``WSS_API_KEY`` is set. For a database
    key, False once it is revoked, expired, deleted, or rotated and past its grace. Answers come
    from ``KEY_CACHE`` (at most one query per key per ``WSS_API_KEY_CACHE_S`` on this node, however
    many sessions ask), so a change takes effect within that period. A database error counts as
    active (logged; asked again after one period): an outage must not end every session.
    """
    return await KEY_CACHE.key_active(identity)


def check_auth_configuration() -> None:
    """At start-up: refuse to run with ``WSS_REQUIRE_AUTH=true`` and no usable key, and say
    which auth mode the server runs in. Raises ``ImproperlyConfigured``."""
    cfg = settings.OPENASR
    try:
        usable = APIKey.objects.usable().count()
        any_rows = APIKey.objects.exists()
    except DatabaseError as exc:
        raise ImproperlyConfigured(
            "cannot read the API key table (is the database reachable and migrated? run "
            f"`python manage.py migrate`): {type(exc).__name__}"
        ) from exc
    if cfg.require_auth and not cfg.api_key and not usable:
        raise ImproperlyConfigured(
            "WSS_REQUIRE_AUTH=true but no API key is configured: set WSS_API_KEY or create a "
            "key with `python manage.py apikey create NAME` (or in the admin)"
        )
    if not (cfg.require_auth or cfg.api_key or any_rows):
        log.warning(
            "dev mode: no API key configured and WSS_REQUIRE_AUTH is false: /transcribe is "
            "open to anyone"
        )
    else:
        log.info(
            "auth: %s env key, %d usable database key(s)",
            "with" if cfg.api_key else "no",
            usable,
        )
