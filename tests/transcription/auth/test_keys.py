"""API keys: format, digest, lifecycle and the cached lookup (``transcription/auth/keys.py``)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import DatabaseError
from django.utils import timezone
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from transcription.auth import keys
from transcription.auth.keys import (
    KEY_CACHE,
    AuthUnavailable,
    RotationError,
    akey_active,
    check_auth_configuration,
    create_key,
    digest_matches,
    generate_key,
    key_digest,
    revoke_key,
    rotate_key,
    split_key,
)
from transcription.models import APIKey

KEY_RE = re.compile(r"^oasr_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$")

db = pytest.mark.django_db
async_db = pytest.mark.django_db(transaction=True)


# --- format and digest ---


def test_generated_keys_have_the_documented_format_and_256_bit_secrets() -> None:
    """A key is oasr_<12 hex>.<43 url-safe chars> (32 random bytes of secret)."""
    new = generate_key()
    assert KEY_RE.match(new.key)
    assert new.key.startswith(f"oasr_{new.prefix}.")
    assert len(new.key.split(".", 1)[1]) == 43


def test_generated_keys_are_unique() -> None:
    """Two hundred generated keys have two hundred prefixes and secrets."""
    made = [generate_key() for _ in range(200)]
    assert len({m.prefix for m in made}) == 200
    assert len({m.key.split(".")[1] for m in made}) == 200


@pytest.mark.parametrize(
    "text",
    [
        "",
        "oasr_",
        "oasr_abc.def",
        "sk_1234567890ab.xxxxxxxxxxxxxxxxxxxx",
        "oasr_ZZZZZZZZZZZZ." + "a" * 43,
    ],
)
def test_split_key_rejects_malformed_keys(text: str) -> None:
    """Anything not shaped like a database key has no prefix to look up."""
    assert split_key(text) is None


def test_split_key_refuses_oversized_input() -> None:
    """Huge presented keys are refused before any regex or hashing work."""
    assert split_key("oasr_0123456789ab." + "a" * 5000) is None


def test_digest_is_keyed_by_the_server_secret(settings: Any) -> None:
    """Same key, same secret: same digest; another SECRET_KEY gives another digest."""
    key = generate_key().key
    first = key_digest(key)
    assert first == key_digest(key)
    assert key not in first and len(first) == 64
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert key_digest(key) != first


def test_digest_survives_server_secret_rotation_via_fallbacks(settings: Any) -> None:
    """A digest made under the old SECRET_KEY verifies while it is in SECRET_KEY_FALLBACKS."""
    key = generate_key().key
    stored = key_digest(key)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "rotated-server-secret-0123456789-abcdefghijklmnop"
    assert not digest_matches(key, stored)
    settings.SECRET_KEY_FALLBACKS = [old]
    assert digest_matches(key, stored)
    assert not digest_matches(key + "x", stored)
    assert key_digest(key) != stored  # new digests are made with the current secret only


@async_db
async def test_database_keys_survive_secret_rotation_with_fallbacks(
    configure: Any, settings: Any
) -> None:
    """A key created before DJANGO_SECRET_KEY changed authenticates while the old secret is in
    DJANGO_SECRET_KEY_FALLBACKS, and not after it is dropped."""
    _, key = await _acreate("rotating-secret")
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "rotated-server-secret-0123456789-abcdefghijklmnop"
    settings.SECRET_KEY_FALLBACKS = [old]
    assert (await KEY_CACHE.authenticate(key)).identity is not None
    settings.SECRET_KEY_FALLBACKS = []
    assert (await KEY_CACHE.authenticate(key)).reason == "invalid API key"


@hsettings(max_examples=50)
@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_character_fails_verification(position: int, replacement: str) -> None:
    """A key verifies against its own digest; changing any one character makes it fail."""
    key = generate_key().key
    stored = key_digest(key)
    assert digest_matches(key, stored)
    i = position % len(key)
    assume(key[i] != replacement)
    assert not digest_matches(key[:i] + replacement + key[i + 1 :], stored)


# --- lifecycle ---


@db
def test_create_key_stores_only_prefix_and_digest(configure: Any) -> None:
    """The clear key is returned once; the row holds the prefix and the digest."""
    row, key = create_key("alice", notes="team a", max_sessions=3)
    stored = APIKey.objects.get(pk=row.pk)
    assert key.startswith(f"oasr_{stored.prefix}.")
    assert stored.secret_hash == key_digest(key)
    assert key.split(".")[1] not in stored.secret_hash
    assert stored.status() == "active" and stored.max_sessions == 3


@db
def test_revoke_key_is_idempotent(configure: Any) -> None:
    """Revoking sets revoked_at once; a second revoke reports False."""
    row, _ = create_key("bob")
    assert revoke_key(row) is True
    assert row.revoked_at is not None
    assert revoke_key(row) is False
    assert APIKey.objects.get(pk=row.pk).status() == "revoked"


@db
def test_rotate_key_links_the_new_key_and_sets_the_grace(configure: Any) -> None:
    """Rotation makes a successor with the same name and limits; the old key gets a deadline."""
    old, _ = create_key("carol", max_sessions=2)
    new, key = rotate_key(old, grace_s=600)
    old.refresh_from_db()
    assert new.rotated_from_id == old.pk and new.name == "carol" and new.max_sessions == 2
    assert KEY_RE.match(key) and new.prefix != old.prefix
    assert old.grace_until is not None
    assert timedelta(seconds=590) < old.grace_until - timezone.now() <= timedelta(seconds=600)
    assert old.status() == "rotating"


@db
def test_rotate_refuses_revoked_and_already_rotated_keys(configure: Any) -> None:
    """Only an active key can be rotated (no forks of a rotation chain)."""
    row, _ = create_key("dave")
    rotate_key(row, grace_s=60)
    with pytest.raises(RotationError, match="rotating"):
        rotate_key(row, grace_s=60)
    gone, _ = create_key("erin")
    revoke_key(gone)
    with pytest.raises(RotationError, match="revoked"):
        rotate_key(gone)


@db
def test_rotate_uses_the_configured_grace_by_default(configure: Any) -> None:
    """Without --grace-s the grace is WSS_KEY_ROTATION_GRACE_S."""
    configure(key_rotation_grace_s=120)
    row, _ = create_key("frank")
    rotate_key(row)
    row.refresh_from_db()
    assert row.grace_until is not None
    assert timedelta(seconds=110) < row.grace_until - timezone.now() <= timedelta(seconds=120)


# --- lookup (what the handshake calls) ---


@async_db
async def test_authenticate_accepts_a_valid_key_and_records_use(configure: Any) -> None:
    """A valid database key yields its identity, and last_used_at is written."""
    row, key = await _acreate("grace", max_sessions=4)
    result = await KEY_CACHE.authenticate(key)
    assert result.identity == {
        "id": str(row.pk),
        "name": "grace",
        "max_sessions": 4,
        "prefix": row.prefix,
    }
    assert (await APIKey.objects.aget(pk=row.pk)).last_used_at is not None


@async_db
async def test_last_used_is_written_at_most_once_a_minute(configure: Any) -> None:
    """Many connects in a minute write last_used_at once."""
    row, key = await _acreate("heidi")
    await KEY_CACHE.authenticate(key)
    first = (await APIKey.objects.aget(pk=row.pk)).last_used_at
    await APIKey.objects.filter(pk=row.pk).aupdate(last_used_at=None)
    await KEY_CACHE.authenticate(key)
    assert first is not None
    assert (await APIKey.objects.aget(pk=row.pk)).last_used_at is None


@async_db
@pytest.mark.parametrize(
    "presented",
    ["", "nonsense", "oasr_000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
)
async def test_authenticate_refuses_unknown_keys(configure: Any, presented: str) -> None:
    """Empty, malformed or unknown keys are refused with a reason that names no key."""
    await _acreate("ivan")
    result = await KEY_CACHE.authenticate(presented)
    assert result.identity is None
    assert result.reason in {"empty API key", "invalid API key"}


@async_db
async def test_authenticate_refuses_a_wrong_secret_for_a_known_prefix(configure: Any) -> None:
    """The right prefix with another secret is just an invalid key."""
    _, key = await _acreate("judy")
    forged = key.split(".")[0] + "." + "A" * 43
    result = await KEY_CACHE.authenticate(forged)
    assert result.identity is None and result.reason == "invalid API key"


@async_db
async def test_expired_key_is_refused(configure: Any) -> None:
    """A key past expires_at is refused and says so (only to the holder of the secret)."""
    row, key = await _acreate("ken")
    await APIKey.objects.filter(pk=row.pk).aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    assert (await KEY_CACHE.authenticate(key)).reason == "API key expired"


@async_db
async def test_key_with_future_expiry_is_accepted(configure: Any) -> None:
    """A key that expires tomorrow works today."""
    row, key = await _acreate("lena")
    await APIKey.objects.filter(pk=row.pk).aupdate(expires_at=timezone.now() + timedelta(days=1))
    assert (await KEY_CACHE.authenticate(key)).identity is not None


@async_db
async def test_revoked_key_is_refused(configure: Any) -> None:
    """A revoked key is refused."""
    row, key = await _acreate("mallory")
    await APIKey.objects.filter(pk=row.pk).aupdate(revoked=True, revoked_at=timezone.now())
    assert (await KEY_CACHE.authenticate(key)).reason == "API key revoked"


@async_db
async def test_revocation_takes_effect_when_the_cache_entry_expires(configure: Any) -> None:
    """Within WSS_API_KEY_CACHE_S a cached key still works; after it, revocation bites."""
    import asyncio

    configure(api_key_cache_s=0.3)
    row, key = await _acreate("nina")
    assert (await KEY_CACHE.authenticate(key)).identity is not None
    await APIKey.objects.filter(pk=row.pk).aupdate(revoked=True)
    assert (await KEY_CACHE.authenticate(key)).identity is not None  # cached
    await asyncio.sleep(0.35)
    assert (await KEY_CACHE.authenticate(key)).reason == "API key revoked"


@async_db
async def test_rotation_grace_keeps_both_keys_then_only_the_new_one(configure: Any) -> None:
    """During the grace both keys work with one identity; after it only the new key."""
    from asgiref.sync import sync_to_async

    old, old_key = await _acreate("olga")
    new, new_key = await sync_to_async(rotate_key)(old, 3600)
    a = await KEY_CACHE.authenticate(old_key)
    b = await KEY_CACHE.authenticate(new_key)
    assert a.identity is not None and b.identity is not None
    # one identity across the rotation: checkpoints of the old key resume with the new one
    assert a.identity["id"] == b.identity["id"] == str(old.pk)
    await APIKey.objects.filter(pk=old.pk).aupdate(grace_until=timezone.now())
    assert "grace period is over" in (await KEY_CACHE.authenticate(old_key)).reason
    assert (await KEY_CACHE.authenticate(new_key)).identity is not None


@async_db
async def test_env_key_is_compared_and_named_env(configure: Any) -> None:
    """WSS_API_KEY authenticates as {"id": "env", "name": "env"}."""
    configure(api_key="a3f1b9c7e8d2f4a6b0c5e7d9f1a3b5c7")
    ok = await KEY_CACHE.authenticate("a3f1b9c7e8d2f4a6b0c5e7d9f1a3b5c7")
    assert ok.identity == {"id": "env", "name": "env", "max_sessions": None, "prefix": ""}
    assert (await KEY_CACHE.authenticate("a3f1b9c7e8d2f4a6b0c5e7d9f1a3b5c8")).identity is None


@async_db
async def test_auth_required_follows_the_keys(configure: Any) -> None:
    """Dev mode while no key exists; any key row (even revoked) ends it; env/require too."""
    assert await KEY_CACHE.auth_required() is False
    row, _ = await _acreate("pat")
    assert await KEY_CACHE.auth_required() is True
    await APIKey.objects.filter(pk=row.pk).aupdate(revoked=True)
    KEY_CACHE.clear()
    assert await KEY_CACHE.auth_required() is True  # revoking the last key never opens
    await APIKey.objects.all().adelete()
    KEY_CACHE.clear()
    assert await KEY_CACHE.auth_required() is False
    configure(require_auth=True)
    assert await KEY_CACHE.auth_required() is True
    configure(api_key="x" * 32)
    assert await KEY_CACHE.auth_required() is True


@async_db
async def test_database_errors_become_auth_unavailable(
    configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database failure during lookup is AuthUnavailable (503), never a silent pass."""

    def broken(prefix: str) -> None:
        raise DatabaseError("db down")

    monkeypatch.setattr(keys, "_load_snapshot", broken)
    with pytest.raises(AuthUnavailable):
        await KEY_CACHE.authenticate(generate_key().key)


# --- live sessions: akey_active ---


async def _identity(key: str) -> keys.KeyIdentity:
    identity = (await KEY_CACHE.authenticate(key)).identity
    assert identity is not None
    return identity


@async_db
async def test_dev_mode_and_env_key_sessions_stay_active(configure: Any) -> None:
    """No key (dev mode) is always active; the env key while WSS_API_KEY is still set."""
    assert await akey_active(None)
    configure(api_key="e" * 32)
    assert await akey_active(keys.ENV_IDENTITY)
    configure(api_key="")
    assert not await akey_active(keys.ENV_IDENTITY)


@async_db
async def test_revoked_expired_deleted_keys_end_their_sessions(configure: Any) -> None:
    """A database key's sessions stay active until it is revoked, expires or is deleted."""
    rows = [await _acreate(name) for name in ("rev", "exp", "del", "ok")]
    (revoked, k1), (expiring, k2), (deleted, k3), (_, k4) = rows
    identities = [await _identity(k) for k in (k1, k2, k3, k4)]
    assert [await akey_active(i) for i in identities] == [True, True, True, True]
    await sync_to_async(revoke_key)(revoked)
    await APIKey.objects.filter(pk=expiring.pk).aupdate(expires_at=timezone.now())
    await APIKey.objects.filter(pk=deleted.pk).adelete()
    assert [await akey_active(i) for i in identities] == [False, False, False, True]


@async_db
async def test_rotated_key_sessions_end_after_the_grace_only(configure: Any) -> None:
    """The old key of a rotation stays active during its grace, then its sessions end; the new
    key's sessions (same identity id) go on."""
    old, old_key = await _acreate("rot")
    _, new_key = await sync_to_async(rotate_key)(old, 3600)
    old_identity, new_identity = await _identity(old_key), await _identity(new_key)
    assert old_identity["id"] == new_identity["id"]
    assert await akey_active(old_identity) and await akey_active(new_identity)
    await APIKey.objects.filter(pk=old.pk).aupdate(grace_until=timezone.now())
    assert not await akey_active(old_identity)
    assert await akey_active(new_identity)


@async_db
async def test_key_checks_cost_one_query_per_key_per_cache_period(
    configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many sessions poll at once, a node reads a key once per WSS_API_KEY_CACHE_S;
    a revocation takes effect when that period ends."""
    configure(api_key_cache_s=0.5)
    row, key = await _acreate("busy")
    identity = await _identity(key)
    KEY_CACHE.clear()
    loads: list[str] = []
    real = keys._load_snapshot

    def counting(prefix: str) -> keys.KeySnapshot | None:
        loads.append(prefix)
        return real(prefix)

    monkeypatch.setattr(keys, "_load_snapshot", counting)
    assert all(await asyncio.gather(*(akey_active(identity) for _ in range(100))))
    assert loads == [row.prefix]
    await sync_to_async(revoke_key)(row)
    assert await akey_active(identity)  # cached: still active within the period
    assert len(loads) == 1
    await asyncio.sleep(0.55)
    assert not any(await asyncio.gather(*(akey_active(identity) for _ in range(100))))
    assert len(loads) == 2


@async_db
async def test_key_check_fails_open_on_a_database_error(
    configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database outage does not end live sessions, and is retried once per cache period,
    not once per session."""
    configure(api_key_cache_s=60)
    _, key = await _acreate("outage")
    identity = await _identity(key)
    KEY_CACHE.clear()
    calls: list[str] = []

    def broken(prefix: str) -> None:
        calls.append(prefix)
        raise DatabaseError("db down")

    monkeypatch.setattr(keys, "_load_snapshot", broken)
    assert all([await akey_active(identity) for _ in range(10)])
    assert len(calls) == 1


# --- start-up check ---


@db
def test_require_auth_without_any_key_refuses_to_start(configure: Any) -> None:
    """WSS_REQUIRE_AUTH=true, no env key, no usable DB key: ImproperlyConfigured."""
    configure(require_auth=True)
    with pytest.raises(ImproperlyConfigured, match="WSS_REQUIRE_AUTH=true"):
        check_auth_configuration()
    row, _ = create_key("quinn")
    revoke_key(row)
    with pytest.raises(ImproperlyConfigured, match="no API key"):
        check_auth_configuration()


@db
def test_require_auth_with_a_key_starts(configure: Any) -> None:
    """An env key or one usable database key satisfies WSS_REQUIRE_AUTH."""
    configure(require_auth=True, api_key="k" * 32)
    check_auth_configuration()
    configure(require_auth=True)
    create_key("rita")
    check_auth_configuration()


@db
def test_dev_mode_starts_with_a_warning(configure: Any, caplog: pytest.LogCaptureFixture) -> None:
    """No key and no WSS_REQUIRE_AUTH: start, but warn that /transcribe is open."""
    check_auth_configuration()
    assert "dev mode" in caplog.text


# --- manage.py apikey ---


@db
def test_command_create_prints_the_key_once_and_list_never(configure: Any) -> None:
    """create prints the key alone on stdout; list shows the prefix, never the secret."""
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "apikey",
        "create",
        "svc",
        "--expires-days",
        "2",
        "--max-sessions",
        "5",
        stdout=out,
        stderr=err,
    )
    key = out.getvalue().strip()
    assert KEY_RE.match(key)
    assert "cannot be shown again" in err.getvalue()
    row = APIKey.objects.get()
    assert row.max_sessions == 5 and row.expires_at is not None
    listing = io.StringIO()
    call_command("apikey", "list", stdout=listing)
    assert f"oasr_{row.prefix}" in listing.getvalue()
    assert key.split(".")[1] not in listing.getvalue()


@db
def test_command_rotate_and_revoke(configure: Any) -> None:
    """rotate prints a new key and sets the grace; revoke accepts the oasr_ prefix form and
    says when live sessions end."""
    row, _ = create_key("svc")
    out = io.StringIO()
    call_command(
        "apikey", "rotate", row.prefix, "--grace-s", "30", stdout=out, stderr=io.StringIO()
    )
    assert KEY_RE.match(out.getvalue().strip())
    row.refresh_from_db()
    assert row.status() == "rotating"
    err = io.StringIO()
    call_command("apikey", "revoke", f"oasr_{row.prefix}", stderr=err)
    row.refresh_from_db()
    assert row.revoked
    # WSS_API_KEY_CACHE_S (0 in these tests) + the 1 s poll of live sessions
    assert "ends its live sessions within 1 s" in err.getvalue()
    with pytest.raises(CommandError, match="already revoked"):
        call_command("apikey", "revoke", row.prefix, stderr=io.StringIO())
    with pytest.raises(CommandError, match="no API key"):
        call_command("apikey", "revoke", "ffffffffffff", stderr=io.StringIO())


async def _acreate(name: str, **kwargs: Any) -> tuple[APIKey, str]:
    from asgiref.sync import sync_to_async

    return await sync_to_async(create_key)(name, **kwargs)
