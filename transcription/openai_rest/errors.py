"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP
status OpenAI uses for the same failure, so the ``openai`` SDK raises its usual exception
(``AuthenticationError`` for 401, ``RateLimitError`` for 429, ...).

``OpenAIError`` is the one error funnel of this package: raise it anywhere under a view and the
view answers with ``response()``.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

# OpenAI's ``type`` per status (its own API answers these).
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class OpenAIError(Exception):
    """A refusal with its HTTP status; ``retry_after_s`` adds ``Retry-After`` (429, 503)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        """The JSON object OpenAI answers (also sent as the last event of a broken stream)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> HttpResponse:
        response = HttpResponse(
            json.dumps(self.body()), status=self.status, content_type="application/json"
        )
        if self.retry_after_s is not None:
            response["Retry-After"] = str(self.retry_after_s)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="openasr"'
        return response


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 naming the field and the rule."""
    return OpenAIError(400, message, param=param, code=code)
