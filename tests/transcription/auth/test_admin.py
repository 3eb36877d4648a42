"""API keys in the Django admin (``transcription/admin.py``), and the promise that no clear
key is left in the database, the logs or any error message."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client

from transcription.auth.keys import KEY_CACHE, create_key, key_digest
from transcription.auth.middleware import HandshakeAuthMiddleware
from transcription.models import APIKey

from .test_middleware import bearer, handshake

KEY_IN_PAGE = re.compile(r"oasr_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}")
CHANGELIST = "/admin/transcription/apikey/"


def all_database_text() -> str:
    """Every value of every row of every table, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from introspection
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.mark.django_db
def test_admin_create_shows_the_key_once_and_stores_its_digest(
    admin_client: Client, configure: Any
) -> None:
    """Create → the key is on the response page only → the row holds the digest → revoke."""
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"name": "web frontend", "notes": "team web", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    keys_shown = KEY_IN_PAGE.findall(response.content.decode())
    assert len(keys_shown) == 1
    key = keys_shown[0]
    row = APIKey.objects.get()
    assert row.name == "web frontend" and key.startswith(f"oasr_{row.prefix}.")
    assert row.secret_hash == key_digest(key)

    # never again: not on the list, the change page, nor in a session or message cookie
    for url in (CHANGELIST, f"{CHANGELIST}{row.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert f"oasr_{row.prefix}" in page
        assert key not in page and key.split(".")[1] not in page
    assert key.split(".")[1] not in str(admin_client.cookies)
    assert key.split(".")[1] not in all_database_text()

    response = admin_client.post(
        CHANGELIST, {"action": "revoke_keys", "_selected_action": [row.pk]}, follow=True
    )
    assert "Revoked 1 key" in response.content.decode()
    assert "ends their live sessions" in response.content.decode()
    row.refresh_from_db()
    assert row.revoked and row.revoked_at is not None


@pytest.mark.django_db
def test_admin_rotate_shows_the_new_key_once(admin_client: Client, configure: Any) -> None:
    """The rotate action makes a successor, shows its key once and starts the grace period."""
    configure(key_rotation_grace_s=3600)
    old, old_key = create_key("batch jobs")
    response = admin_client.post(
        CHANGELIST, {"action": "rotate_keys", "_selected_action": [old.pk]}
    )
    shown = KEY_IN_PAGE.findall(response.content.decode())
    assert len(shown) == 1 and shown[0] != old_key
    new = APIKey.objects.get(rotated_from=old)
    assert new.secret_hash == key_digest(shown[0])
    old.refresh_from_db()
    assert old.status() == "rotating"
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "rotating" in listing and shown[0] not in listing


@pytest.mark.django_db
def test_admin_rotate_of_a_revoked_key_warns(admin_client: Client, configure: Any) -> None:
    """Rotating a revoked key makes nothing and says why."""
    row, _ = create_key("old")
    admin_client.post(CHANGELIST, {"action": "revoke_keys", "_selected_action": [row.pk]})
    response = admin_client.post(
        CHANGELIST, {"action": "rotate_keys", "_selected_action": [row.pk]}, follow=True
    )
    assert "only active keys can be rotated" in response.content.decode()
    assert APIKey.objects.count() == 1


@pytest.mark.django_db
def test_admin_search_and_filter(admin_client: Client, configure: Any) -> None:
    """The list searches names, notes and prefixes and filters on revocation."""
    a, _ = create_key("alpha", notes="billing team")
    create_key("beta")
    assert "alpha" in admin_client.get(CHANGELIST, {"q": "billing"}).content.decode()
    assert "beta" not in admin_client.get(CHANGELIST, {"q": "billing"}).content.decode()
    assert "alpha" in admin_client.get(CHANGELIST, {"q": a.prefix}).content.decode()
    assert admin_client.get(CHANGELIST, {"revoked__exact": "1"}).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_no_clear_key_in_database_logs_or_errors(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Create, use, refuse, expire and revoke keys: no secret in any row, log line or body."""
    caplog.set_level(logging.DEBUG)
    row, key = await sync_to_async(create_key)("audited")
    wrong = key.split(".")[0] + "." + "B" * 43
    secret = key.split(".")[1]
    outcomes = [
        await handshake(bearer(key)),
        await handshake(subprotocols=[f"openasr.bearer.{key}", "openasr"]),
        await handshake(bearer(wrong)),
        await handshake(bearer("x" * 40)),
    ]
    await APIKey.objects.filter(pk=row.pk).aupdate(revoked=True)
    KEY_CACHE.clear()
    outcomes.append(await handshake(bearer(key)))
    assert [o.status for o in outcomes] == [101, 101, 401, 401, 401]

    texts = [repr(o) for o in outcomes]
    texts.append(caplog.text)
    texts.extend(repr(r.__dict__) for r in caplog.records)
    texts.append(await sync_to_async(all_database_text)())
    everything = "\n".join(texts)
    for needle in (key, secret, wrong.split(".")[1], "x" * 40):
        assert needle not in everything
    assert HandshakeAuthMiddleware  # the same middleware daphne runs
