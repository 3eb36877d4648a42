"""``manage.py apikey create NAME [--expires-days N] [--max-sessions N] [--notes TEXT]``,
``apikey list``, ``apikey revoke PREFIX``, ``apikey rotate PREFIX [--grace-s N]``.

``create`` and ``rotate`` print the new key once, alone on stdout (so scripts can capture it);
everything else goes to stderr. Nothing prints a stored key: only its public prefix exists.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from transcription.auth.keys import (
    KEY_PREFIX,
    RotationError,
    create_key,
    revocation_delay_s,
    revoke_key,
    rotate_key,
)
from transcription.models import APIKey


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


class Command(BaseCommand):
    help = "Create, list, revoke and rotate OpenASR API keys."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it once")
        create.add_argument("name")
        create.add_argument("--expires-days", type=_positive_int, default=None)
        create.add_argument("--max-sessions", type=_positive_int, default=None)
        create.add_argument("--notes", default="")
        sub.add_parser("list", help="list keys (prefix, status, dates; never the secret)")
        revoke = sub.add_parser("revoke", help="revoke a key")
        revoke.add_argument("prefix")
        rotate = sub.add_parser(
            "rotate", help="replace a key; the old one works for a grace period"
        )
        rotate.add_argument("prefix")
        rotate.add_argument(
            "--grace-s",
            type=_non_negative_int,
            default=None,
            help="seconds the old key keeps working (default: WSS_KEY_ROTATION_GRACE_S)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            expires_days = options["expires_days"]
            expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
            row, key = create_key(
                options["name"],
                notes=options["notes"],
                expires_at=expires_at,
                max_sessions=options["max_sessions"],
            )
            self._print_key(row, key)
        elif action == "list":
            self._list()
        elif action == "revoke":
            row = self._find(options["prefix"])
            if not revoke_key(row):
                raise CommandError(f"key {KEY_PREFIX}{row.prefix} was already revoked")
            self.stderr.write(
                f"revoked {row}: every server refuses it and ends its live sessions within "
                f"{revocation_delay_s():g} s"
            )
        elif action == "rotate":
            old = self._find(options["prefix"])
            try:
                row, key = rotate_key(old, options["grace_s"])
            except RotationError as exc:
                raise CommandError(str(exc)) from None
            old.refresh_from_db()
            self.stderr.write(
                f"rotated {old}: it keeps working until {old.grace_until:%c} UTC; its live "
                f"sessions end within {revocation_delay_s():g} s after that"
            )
            self._print_key(row, key)

    def _print_key(self, row: APIKey, key: str) -> None:
        self.stderr.write(
            f"API key for {row.name!r} (id {row.pk}, prefix {KEY_PREFIX}{row.prefix}); "
            "store it now, it cannot be shown again:"
        )
        self.stdout.write(key)

    def _find(self, prefix: str) -> APIKey:
        # Accept "oasr_<prefix>", "<prefix>" or a pasted whole key ("<prefix>.<secret>").
        bare = prefix.removeprefix(KEY_PREFIX).split(".", 1)[0]
        row: APIKey | None = APIKey.objects.filter(prefix=bare).first()
        if row is None:
            raise CommandError(f"no API key with prefix {bare!r} (see `manage.py apikey list`)")
        return row

    def _list(self) -> None:
        now = timezone.now()
        rows = APIKey.objects.all()
        self.stdout.write(
            f"{'id':>5}  {'key':<19}  {'status':<9}  {'created':<16}  {'last used':<16}  "
            f"{'expires':<16}  {'max':>4}  name"
        )

        def fmt(value: Any) -> str:
            return f"{value:%Y-%m-%d %H:%M}" if value else "-"

        for row in rows:
            until = row.grace_until if row.status(now) == "rotating" else row.expires_at
            self.stdout.write(
                f"{row.pk:>5}  {KEY_PREFIX + row.prefix:<19}  {row.status(now):<9}  "
                f"{fmt(row.created_at):<16}  {fmt(row.last_used_at):<16}  {fmt(until):<16}  "
                f"{row.max_sessions or '-':>4}  {row.name}"
            )
