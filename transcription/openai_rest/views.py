"""The HTTP edge of the OpenAI-compatible API: ``POST /v1/audio/transcriptions``,
``GET /v1/models[/<id>]``, and OpenAI-shaped 404s under ``/v1/``.

A request is admitted like a WebSocket session (README "Capacity and admission"): the same API
keys (``Authorization: Bearer``; open in dev mode), the auth-failure limit, the per-key session
start rate, ``WSS_MAX_SESSIONS`` and the key's ``max_sessions``, and a reservation of measured
inference capacity. It is then one session in ``/health``, in ``openasr_api_sessions_total``
(``api="openai_rest"``) and in the log lines. Every refusal is an ``OpenAIError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from openasr_site.logconfig import key_name_var, session_id_var
from transcription import admission, metrics
from transcription.auth.keys import KEY_CACHE, AuthUnavailable, KeyIdentity
from transcription.auth.ratelimit import check_new_session, client_ip, get_limiter
from transcription.events import ClientError, Phrase
from transcription.inference.types import Word
from transcription.modelinfo import ModelInfo, find_model, route, served_models
from transcription.openai_rest import bodylimit, formats
from transcription.openai_rest.audiofile import AudioFile
from transcription.openai_rest.errors import OpenAIError, invalid
from transcription.openai_rest.filejob import FileJob, Finished, check_language, file_config
from transcription.openai_rest.params import TranscriptionParams, parse_params
from transcription.registry import NODE
from transcription.transcript import Transcript
from transcription.worker import ensure_inprocess_worker

log = logging.getLogger(__name__)

API = "openai_rest"  # label of openasr_api_sessions_total
RETRY_AFTER_S = 5
MULTIPART = "multipart/form-data"


# --- auth and admission ---


async def authenticate(request: HttpRequest) -> KeyIdentity | None:
    """The request's API key identity (None in dev mode), or a 401 (429 after too many
    failures from the address, 503 when the key database is down): the WebSocket rules."""
    try:
        if not await KEY_CACHE.auth_required():
            return None
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            reason = "You didn't provide an API key: send Authorization: Bearer <key>"
        else:
            result = await KEY_CACHE.authenticate(token.strip())
            if result.identity is not None:
                return result.identity
            reason = f"Incorrect API key provided ({result.reason})"
    except AuthUnavailable:
        log.warning("request refused: key database unavailable", exc_info=True)
        raise OpenAIError(
            503, "Authentication is temporarily unavailable", retry_after_s=RETRY_AFTER_S
        ) from None
    cfg = settings.OPENASR
    forwarded = request.headers.get("X-Forwarded-For")
    ip = client_ip(
        request.META.get("REMOTE_ADDR"), [forwarded] if forwarded else [], cfg.trusted_proxies
    )
    verdict = await get_limiter().record_failure(ip)
    metrics.CONNECTIONS_REJECTED_AUTH.inc()
    if verdict.blocked:
        log.info("request refused from %s: too many auth failures (%d)", ip, verdict.count)
        raise OpenAIError(
            429,
            f"Too many failed authentication attempts; retry after {verdict.retry_after_s} s",
            code="rate_limit_exceeded",
            retry_after_s=verdict.retry_after_s,
        )
    log.info("request refused from %s: %s", ip, reason)
    raise OpenAIError(401, reason, code="invalid_api_key")


async def admit(key: KeyIdentity | None, reservation: str, language: str, model: ModelInfo) -> None:
    """Admit a file job like a session: 429 for the key's limits (start rate, max_sessions),
    503 when the node is full, draining or out of measured capacity."""
    verdict = await check_new_session(key["id"] if key else None)
    if not verdict.allowed:
        raise OpenAIError(
            429,
            f"Too many new sessions for this API key ({verdict.count} > {verdict.limit} per "
            "minute); try again later",
            code="rate_limit_exceeded",
            retry_after_s=max(1, verdict.retry_after_s),
        )
    try:
        await admission.check_session_caps(key)
    except ClientError as exc:
        limit = key.get("max_sessions") if key else None
        per_key = key is not None and limit is not None and NODE.sessions_of_key(key["id"]) >= limit
        if per_key:
            raise OpenAIError(
                429, exc.message, code="rate_limit_exceeded", retry_after_s=RETRY_AFTER_S
            ) from None
        raise OpenAIError(
            503, exc.message, code="service_unavailable", retry_after_s=RETRY_AFTER_S
        ) from None
    try:
        await admission.admit(reservation, file_config(language, model), model.model_id)
    except ClientError as exc:
        raise OpenAIError(
            503, exc.message, code="service_unavailable", retry_after_s=RETRY_AFTER_S
        ) from None


@dataclass
class Admitted:
    """What an admitted request holds until it ends; ``release`` is idempotent."""

    session_id: str
    reservation: str
    key: KeyIdentity | None
    started: float
    released: bool = False

    def release(self, outcome: str) -> None:
        if self.released:
            return
        self.released = True
        admission.release(self.reservation)
        NODE.session_ended(self.session_id)
        metrics.SESSIONS_DESTROYED.inc()
        log.info("session closed (%s, %.2f s)", outcome, time.monotonic() - self.started)


# --- the form ---


@dataclass(frozen=True)
class Upload:
    """The parsed request: fields and the file."""

    params: TranscriptionParams
    file: UploadedFile


def _read_form(request: HttpRequest) -> tuple[dict[str, list[str]], UploadedFile | None]:
    """On a thread: Django's multipart parser (it reads and may write temporary files)."""
    try:
        fields = {name: request.POST.getlist(name) for name in request.POST}
        files = request.FILES.getlist("file")
    except RequestDataTooBig:
        raise OpenAIError(413, "The form fields are too large", code="request_too_large") from None
    except (MultiPartParserError, TooManyFieldsSent, SuspiciousOperation) as exc:
        raise invalid(f"Malformed multipart/form-data body: {exc}") from None
    if len(files) > 1:
        raise invalid("Send one 'file'", "file")
    return fields, files[0] if files else None


async def read_upload(request: HttpRequest) -> Upload:
    """415 for a body that is no form, 413 beyond ``WSS_MAX_UPLOAD_BYTES``, 400 for bad fields."""
    max_bytes = settings.OPENASR.max_upload_bytes
    if request.content_type != MULTIPART:
        raise OpenAIError(
            415,
            f"Unsupported Content-Type {request.content_type!r}: send the file as "
            f"{MULTIPART} (the 'file' field)",
            code="unsupported_media_type",
        )
    too_large = bodylimit.too_large()
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > bodylimit.body_limit():
        raise too_large
    fields, file = await asyncio.to_thread(_read_form, request)
    if file is None:
        raise invalid("'file' is required: the audio file, as a multipart file field", "file")
    if file.size is not None and file.size > max_bytes:
        raise too_large
    return Upload(parse_params(fields), file)


def open_audio(file: UploadedFile, max_s: int) -> AudioFile:
    """On a thread: open the upload for decoding (from disk when Django spooled it there)."""
    temporary = getattr(file, "temporary_file_path", None)
    if temporary is not None:
        return AudioFile(temporary(), max_s=max_s)
    file.seek(0)
    return AudioFile(file.file, max_s=max_s)


# --- views ---


@csrf_exempt
async def transcriptions(request: HttpRequest) -> HttpResponseBase:
    """POST /v1/audio/transcriptions: a file in, its transcript in ``response_format`` (or
    server-sent events with ``stream=true``)."""
    if request.method != "POST":
        return OpenAIError(405, "Use POST for /v1/audio/transcriptions").response()
    cfg = settings.OPENASR
    session_id_var.set(None)
    audio: AudioFile | None = None
    admitted: Admitted | None = None
    try:
        key = await authenticate(request)
        key_name_var.set(key["name"] if key else None)
        upload = await read_upload(request)
        params = upload.params
        language = params.language or cfg.language
        # ``model`` picks the pool (whisper-1 and other unknown ids: the default model)
        model = route(cfg, params.model, language)
        check_language(language, model)
        audio = await asyncio.to_thread(open_audio, upload.file, cfg.max_upload_s)
        session_id = secrets.token_hex(16)
        reservation = f"openai-file:{session_id}"
        await admit(key, reservation, language, model)
        admitted = Admitted(session_id, reservation, key, time.monotonic())
        session_id_var.set(session_id)
        NODE.session_started(session_id, reservation, key["id"] if key else None)
        metrics.SESSIONS_CREATED.inc()
        metrics.API_SESSIONS.labels(api=API).inc()
        if key:
            metrics.KEY_SESSIONS.labels(key_name=key["name"]).inc()
        log.info(
            "session created: openai_rest file of %s bytes, format=%s stream=%s language=%s",
            upload.file.size,
            params.response_format,
            params.stream,
            language,
        )
        ensure_inprocess_worker()
        job = FileJob(
            audio,
            session_id=session_id,
            language=language,
            prompt=params.prompt,
            model=model,
            channel_layer=get_channel_layer(),
        )
        if params.stream:
            events = _stream(job, audio, admitted)
            # A response dropped before its first chunk never runs the generator's cleanup.
            weakref.finalize(events, admitted.release, "client gone")
            weakref.finalize(events, audio.close)
            audio = admitted = None  # the stream owns them now
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
            return response
        text, words, duration_s = await _collect(job)
        body, content_type = formats.render(
            text, words, language=language, duration_s=duration_s, params=params
        )
        admitted.release("ok")
        return HttpResponse(body, content_type=content_type)
    except OpenAIError as exc:
        if admitted is not None:
            admitted.release(f"error {exc.status}")
        log.info("request refused: %d %s", exc.status, exc.message)
        return exc.response()
    except Exception:
        log.exception("unexpected error transcribing a file")
        metrics.INTERNAL_ERRORS.inc()
        return OpenAIError(500, "Internal server error", code="server_error").response()
    finally:
        if admitted is not None:
            admitted.release("cancelled")
        if audio is not None:
            audio.close()


async def _collect(job: FileJob) -> tuple[str, list[Word], float]:
    """The whole transcript: text, committed words, audio seconds."""
    words: list[Word] = []
    async with aclosing(job.phrases()) as phrases:
        async for item in phrases:
            if isinstance(item, Finished):
                return item.text, words, item.duration_s
            words.extend(item.words)
    raise RuntimeError("the file job ended without its final phrase")


async def _stream(job: FileJob, audio: AudioFile, admitted: Admitted) -> AsyncIterator[bytes]:
    """``transcript.text.delta`` per committed phrase (only ever appended: the deltas
    concatenate to the done text), then ``transcript.text.done``; a failure after the
    headers went out is an ``error`` event, as OpenAI's streams carry them."""
    session_id_var.set(admitted.session_id)
    transcript = Transcript()
    outcome = "cancelled"
    try:
        async with aclosing(job.phrases()) as phrases:
            async for item in phrases:
                if isinstance(item, Phrase):
                    before = transcript.text
                    transcript.commit(item.words)
                    delta = transcript.text[len(before) :]
                    if delta:
                        yield formats.sse(formats.delta_event(delta))
                else:
                    yield formats.sse(formats.done_event(transcript.text))
                    outcome = "ok"
    except OpenAIError as exc:
        outcome = f"error {exc.status}"
        yield formats.sse(exc.body())
    except Exception:
        outcome = "error 500"
        log.exception("unexpected error streaming a file transcript")
        metrics.INTERNAL_ERRORS.inc()
        yield formats.sse(OpenAIError(500, "Internal server error").body())
    finally:
        admitted.release(outcome)
        audio.close()


@csrf_exempt
async def models(request: HttpRequest, model_id: str | None = None) -> HttpResponse:
    """GET /v1/models (OpenAI's list shape) and GET /v1/models/<id>: the served models (one
    worker pool each), the default first."""
    try:
        if request.method != "GET":
            raise OpenAIError(405, "Use GET for /v1/models")
        await authenticate(request)
        cfg = settings.OPENASR
        if model_id is None:
            return _json({"object": "list", "data": [_model_object(m) for m in served_models(cfg)]})
        model = find_model(cfg, model_id)
        if model is None or model.model_id != model_id:
            ids = ", ".join(f"'{m.model_id}'" for m in served_models(cfg))
            raise OpenAIError(
                404,
                f"The model '{model_id[:100]}' does not exist: this server serves {ids}",
                param="model",
                code="model_not_found",
            )
        return _json(_model_object(model))
    except OpenAIError as exc:
        return exc.response()


def _model_object(model: ModelInfo) -> dict[str, Any]:
    try:
        created = int(model.path.stat().st_mtime)
    except OSError:
        created = 0
    return {"id": model.model_id, "object": "model", "created": created, "owned_by": "openasr"}


def _json(body: Mapping[str, Any]) -> HttpResponse:
    return HttpResponse(json.dumps(body), content_type="application/json")


@csrf_exempt
async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Anything else under /v1/: OpenAI's 404 shape."""
    return OpenAIError(
        404, f"Unknown request URL: {request.method} {request.path[:200]}", code="unknown_url"
    ).response()


urlpatterns: Sequence[Any] = [
    path("v1/audio/transcriptions", transcriptions, name="openai-transcriptions"),
    path("v1/models", models, name="openai-models"),
    path("v1/models/<path:model_id>", models, name="openai-model"),
    re_path(r"^v1/(?P<rest>.*)$", not_found),
]
