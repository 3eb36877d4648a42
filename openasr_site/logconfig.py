"""Log configuration: ``WSS_LOG_LEVEL`` and ``WSS_LOG_FORMAT=text|json``.

JSON lines carry ``level``, ``message``, ``timestamp`` (as the C++ seed) plus ``logger`` and,
inside a session, ``session_id`` and ``key_name`` taken from context variables the consumer sets.
Audio and API keys are never logged: log calls pass ids and sizes only.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

session_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "openasr_session_id", default=None
)
key_name_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "openasr_key_name", default=None
)

_LEVELS = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
}


def _in_plain_loop_callback() -> bool:
    """True in an event-loop callback that is not a task (daphne's twisted reactor work).

    ``loop.call_soon``/``call_later`` run a callback in the context that was current when it
    was scheduled, so reactor calls scheduled from a consumer task carry that session's context
    variables into unrelated work (another connection's handshake, the server's shutdown)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # a thread (``asyncio.to_thread`` copies the context on purpose)
    return asyncio.current_task() is None


class ContextFilter(logging.Filter):
    """Adds the current session id and key name to every record (None outside a session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        outside = _in_plain_loop_callback()
        if not hasattr(record, "session_id"):
            record.session_id = None if outside else session_id_var.get()
        if not hasattr(record, "key_name"):
            record.key_name = None if outside else key_name_var.get()
        return True


class DropExpected503(logging.Filter):
    """``/ready`` answers 503 by design while not ready; Django would log each as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "timestamp": ts.replace("+00:00", "Z"),
            "logger": record.name,
        }
        for attr in ("session_id", "key_name"):
            value = getattr(record, attr, None)
            if value:
                out[attr] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable line with the session id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        sid = getattr(record, "session_id", None)
        return f"{line} [session={sid}]" if sid else line


def build_logging_config(level: str, fmt: str) -> dict[str, Any]:
    """The ``dictConfig`` for this process."""
    formatter = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"()": TextFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}, "no503": {"()": DropExpected503}},
        "formatters": {"main": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["context", "no503"],
            }
        },
        "root": {"handlers": ["console"], "level": _LEVELS[level]},
        "loggers": {
            "django": {"level": "INFO"},
            "daphne": {"level": "WARNING"},
            "twisted": {"level": "WARNING"},
        },
    }
