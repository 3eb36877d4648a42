"""Database models: the API keys of docs/PROTOCOL.md "Transport and auth".

A key is ``oasr_<prefix>.<secret>``. Only the prefix (public, for lookup and for people to tell
keys apart) and a salted digest of the whole key are stored; the key itself is shown once, when
it is created (``transcription.auth.keys``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone


class APIKeyQuerySet(models.QuerySet["APIKey"]):
    """Key queries that depend on the clock."""

    def usable(self, now: datetime | None = None) -> APIKeyQuerySet:
        """Keys that authenticate at ``now``: not revoked, not expired, not past their grace."""
        now = now or timezone.now()
        usable: APIKeyQuerySet = (
            self.filter(revoked=False).exclude(expires_at__lte=now).exclude(grace_until__lte=now)
        )
        return usable


class APIKey(models.Model):
    """One API key; rotation makes a new row and leaves the old one valid until ``grace_until``."""

    name = models.CharField(max_length=100, help_text="Who or what uses this key")
    notes = models.TextField(blank=True, help_text="Owner, contact, purpose")
    prefix = models.CharField(
        max_length=32, unique=True, editable=False, help_text="Public part of the key"
    )
    secret_hash = models.CharField(max_length=128, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires (UTC)")
    revoked = models.BooleanField(default=False, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    max_sessions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Concurrent sessions per server node; empty: no limit"
    )
    rotated_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="rotated_to",
        help_text="The key this one replaced",
    )
    grace_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set when this key was rotated: it keeps working until then",
    )

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (oasr_{self.prefix}…)"

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``rotating`` (old key in its grace period), ``expired`` or ``revoked``."""
        now = now or timezone.now()
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.grace_until is not None:
            return "rotating" if self.grace_until > now else "expired"
        return "active"
