"""Django admin for API keys: create (the key is shown once), revoke, rotate.

The new key is rendered straight into the response of the request that made it, not passed
through ``django.contrib.messages``: message storage is a readable cookie or a session row, and
the key must not be stored anywhere in clear.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from transcription.auth.keys import (
    RotationError,
    fill_new_key,
    revocation_delay_s,
    revoke_key,
    rotate_key,
)
from transcription.models import APIKey

SHOWN_TEMPLATE = "admin/transcription/apikey/key_shown.html"


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """List, search and filter keys; create shows the key once; revoke and rotate actions."""

    list_display = (
        "name",
        "key_prefix",
        "key_status",
        "created_at",
        "last_used_at",
        "expires_at",
        "max_sessions",
    )
    list_filter = ("revoked", "created_at", "expires_at", "last_used_at")
    search_fields = ("name", "notes", "prefix")
    readonly_fields = (
        "key_prefix",
        "key_status",
        "created_at",
        "last_used_at",
        "revoked_at",
        "rotated_from",
        "grace_until",
    )
    actions = ("revoke_keys", "rotate_keys")

    def get_fields(self, request: HttpRequest, obj: APIKey | None = None) -> list[str]:
        editable = ["name", "notes", "expires_at", "max_sessions"]
        return editable if obj is None else [*editable, *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: APIKey | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: APIKey) -> str:
        return f"oasr_{obj.prefix}…"

    @admin.display(description="status")
    def key_status(self, obj: APIKey) -> str:
        return obj.status()

    def save_model(self, request: HttpRequest, obj: APIKey, form: Any, change: bool) -> None:
        """On add, generate the key; it lives on the request until the response shows it."""
        if not change:
            request._openasr_new_keys = [(obj, fill_new_key(obj))]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: APIKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        new_keys = getattr(request, "_openasr_new_keys", None)
        if not new_keys:
            return super().response_add(request, obj, post_url_continue)
        return self._show_keys(request, new_keys, "API key created")

    def _show_keys(
        self, request: HttpRequest, new_keys: list[tuple[APIKey, str]], title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "new_keys": new_keys,
            "changelist_url": reverse("admin:transcription_apikey_changelist"),
        }
        response = TemplateResponse(request, SHOWN_TEMPLATE, context)
        # The page holds a secret: no cache may keep it, and no "back" may show it again.
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[APIKey]) -> None:
        revoked = sum(revoke_key(row) for row in queryset)
        self.message_user(
            request,
            f"Revoked {revoked} key(s). Within {revocation_delay_s():g} s every server refuses "
            "them and ends their live sessions.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Rotate selected keys (old key keeps working for the grace period)",
        permissions=["change"],
    )
    def rotate_keys(
        self, request: HttpRequest, queryset: QuerySet[APIKey]
    ) -> TemplateResponse | None:
        grace_s = settings.OPENASR.key_rotation_grace_s
        new_keys: list[tuple[APIKey, str]] = []
        for row in queryset:
            try:
                new_keys.append(rotate_key(row, grace_s))
            except RotationError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if not new_keys:
            return None
        return self._show_keys(
            request,
            new_keys,
            f"API key(s) rotated: the old key(s) keep working for {grace_s} s, then their live "
            f"sessions end within {revocation_delay_s():g} s",
        )
