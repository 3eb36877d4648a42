"""The worker contract: typed channel-layer messages between a session and an inference worker.

Each served model is a pool with channels of its own (``inference_channel``: live windows to
``asr.inference.<model_id>``, file chunks to ``asr.inference.<model_id>.batch``, interim passes
for ``speech.hypothesis`` to ``asr.inference.<model_id>.interim``). A session sends a
``TranscribeJob`` to the channel of its model and priority; the worker that takes it answers
``JobAccepted`` when it starts and ``JobResult`` (success or failure) when it ends, on the job's
``reply_channel``. A worker takes a batch or interim job only when no live job waits
(``worker.py``), so file transcription and interim text never queue ahead of a live window; an
interim job older than ``INTERIM_TTL_S`` is dropped unheard (its sender has moved on).

Channels delivery is at-most-once, so the sender owns timeouts and retries
(``inference/client.py``); ``window_index`` and ``attempt`` make duplicates recognisable.
Each type converts itself with ``to_message()`` / ``from_message()`` (msgpack-friendly: bytes,
str, int, float, lists); nothing else builds or reads these dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.inference.types import InferenceRequest, Segment, Word

Priority = Literal["live", "batch", "interim"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
# The name ``runworker`` is given (``manage.py runworker asr.inference``: the worker serves the
# model its settings name) and the prefix of every pool's channels.
INFERENCE_CHANNEL = "asr.inference"
BATCH_SUFFIX = ".batch"  # file chunks: taken only when no live window waits
BATCH_CHANNEL = INFERENCE_CHANNEL + BATCH_SUFFIX  # the batch channel of the unnamed pool
INTERIM_SUFFIX = ".interim"  # hypothesis-only passes: taken only by an idle slot, never queued
INTERIM_CHANNEL = INFERENCE_CHANNEL + INTERIM_SUFFIX
# An interim job not started this long after it was sent is dropped by the worker, and its
# sender may send the next one: interim text that old is of no use to a caption reader.
INTERIM_TTL_S = 1.5
_CHANNEL_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def inference_channel(priority: Priority, model_id: str = "") -> str:
    """The channel a job of ``priority`` for ``model_id``'s pool is sent to: the one place the
    names are built. ``model_id`` "" is the unnamed pool (``asr.inference``), for tests."""
    live = INFERENCE_CHANNEL
    if model_id:
        # channels accepts only [a-zA-Z0-9_.-] in a channel name
        live = f"{INFERENCE_CHANNEL}.{_CHANNEL_UNSAFE.sub('_', model_id)}"
    if priority == "batch":
        return live + BATCH_SUFFIX
    return live + INTERIM_SUFFIX if priority == "interim" else live


class MessageError(ValueError):
    """A channel-layer message does not have the shape of the contract."""


def encode_samples(samples: np.ndarray) -> bytes:
    """16 kHz float32 → s16le bytes: half the size on Redis, no audible loss."""
    return bytes((np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())


def decode_samples(data: bytes) -> np.ndarray:
    """s16le bytes → 16 kHz float32 samples."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def max_tokens_for(seconds: float) -> int:
    """Tokens one segment may take: fast speech is ~4 tokens/s; more is a decoding loop."""
    return 32 + int(8 * seconds)


def _get(message: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = message.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MessageError(f"{message.get('type')!r} message: {name!r} is missing or invalid")
    return value


def _priority(message: Mapping[str, Any]) -> Priority:
    priority = message.get("priority", "live")
    if priority not in PRIORITIES:
        allowed = ", ".join(PRIORITIES)
        raise MessageError(f"{message.get('type')!r} message: 'priority' must be {allowed}")
    return priority  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class TranscribeJob:
    """One window to transcribe, with everything the reply needs."""

    TYPE: ClassVar[str] = "asr.transcribe"

    reply_channel: str
    session_id: str
    window_index: int
    samples: np.ndarray  # 16 kHz mono float32
    language: str = "en"
    prompt: str = ""
    beam_size: int = 1
    n_threads: int = 1
    audio_ctx: int = 0  # 0: whisper.cpp's padded 30 s context
    attempt: int = 0
    enqueued_at: float = 0.0  # wall clock (time.time()) when sent, for the queue-wait figure
    priority: Priority = "live"
    model_id: str = ""  # the pool: which model transcribes it
    translate: bool = False  # the session's task is "translate": English text

    @property
    def channel(self) -> str:
        """Where this job is sent (``inference_channel`` of its model and priority)."""
        return inference_channel(self.priority, self.model_id)

    @property
    def audio_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ

    def request(self) -> InferenceRequest:
        """What the backend is asked: the one place a job becomes an ``InferenceRequest``."""
        return InferenceRequest(
            language=self.language,
            translate=self.translate,
            prompt=self.prompt,
            beam_size=self.beam_size,
            n_threads=self.n_threads,
            audio_ctx=self.audio_ctx,
            max_tokens=max_tokens_for(self.audio_s),
        )

    def to_message(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "reply_channel": self.reply_channel,
            "session_id": self.session_id,
            "window_index": self.window_index,
            "attempt": self.attempt,
            "audio": encode_samples(self.samples),
            "language": self.language,
            "translate": self.translate,
            "prompt": self.prompt,
            "beam_size": self.beam_size,
            "n_threads": self.n_threads,
            "audio_ctx": self.audio_ctx,
            "enqueued_at": self.enqueued_at,
            "priority": self.priority,
            "model_id": self.model_id,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> TranscribeJob:
        """Raises ``MessageError`` naming the first field that does not fit the contract. A job
        without ``priority`` (a sender from before the field existed) is live; one without
        ``translate`` is transcribed."""
        priority = _priority(message)
        return cls(
            reply_channel=_get(message, "reply_channel", str),
            session_id=_get(message, "session_id", str),
            window_index=_get(message, "window_index", int),
            attempt=_get(message, "attempt", int),
            samples=decode_samples(_get(message, "audio", bytes)),
            language=_get(message, "language", str),
            translate=message.get("translate") is True,
            prompt=_get(message, "prompt", str),
            beam_size=_get(message, "beam_size", int),
            n_threads=_get(message, "n_threads", int),
            audio_ctx=_get(message, "audio_ctx", int),
            enqueued_at=float(_get(message, "enqueued_at", (int, float))),
            priority=priority,
            model_id=str(message.get("model_id", "")),
        )


@dataclass(frozen=True, slots=True)
class JobAccepted:
    """A worker started the job: the sender's deadline now covers the inference only."""

    TYPE: ClassVar[str] = "asr.accepted"

    session_id: str
    window_index: int
    attempt: int
    worker: str = ""  # its heartbeat key (inference/heartbeat.py): the sender watches it

    def to_message(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "session_id": self.session_id,
            "window_index": self.window_index,
            "attempt": self.attempt,
            "worker": self.worker,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> JobAccepted:
        return cls(
            session_id=_get(message, "session_id", str),
            window_index=_get(message, "window_index", int),
            attempt=_get(message, "attempt", int),
            worker=str(message.get("worker", "")),
        )


def _segment_to_wire(s: Segment) -> dict[str, Any]:
    return {
        "text": s.text,
        "start_ms": s.start_ms,
        "end_ms": s.end_ms,
        "no_speech_prob": s.no_speech_prob,
        "words": [[w.text, w.start_ms, w.end_ms, w.probability] for w in s.words],
    }


def _segment_from_wire(s: Mapping[str, Any]) -> Segment:
    try:
        return Segment(
            text=str(s["text"]),
            start_ms=int(s["start_ms"]),
            end_ms=int(s["end_ms"]),
            no_speech_prob=float(s.get("no_speech_prob", 0.0)),
            words=tuple(Word(str(t), int(a), int(b), float(p)) for t, a, b, p in s["words"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"asr.result message: bad segment ({exc})") from None


@dataclass(frozen=True, slots=True)
class JobResult:
    """The end of a job: ``ok`` with segments (times relative to the window), or an error."""

    TYPE: ClassVar[str] = "asr.result"

    session_id: str
    window_index: int
    attempt: int
    ok: bool
    segments: tuple[Segment, ...] = ()
    error: str = ""
    inference_s: float = 0.0
    queue_wait_s: float = 0.0
    audio_s: float = 0.0
    worker: str = ""
    model_id: str = ""  # the model that transcribed it (the metrics' ``model`` label)
    language: str = ""  # the language the window was transcribed in, when it was detected
    language_probability: float = 0.0
    priority: Priority = "live"  # the job's: interim results never measure the node's speed

    @classmethod
    def failure(cls, job: Mapping[str, Any], error: str, worker: str) -> JobResult:
        """The reply to a job that failed, built from whatever of the job was readable."""
        index = job.get("window_index")
        attempt = job.get("attempt")
        session_id = job.get("session_id")
        return cls(
            session_id=session_id if isinstance(session_id, str) else "",
            window_index=index if isinstance(index, int) else -1,
            attempt=attempt if isinstance(attempt, int) else 0,
            ok=False,
            error=error[:500],
            worker=worker,
            model_id=str(job.get("model_id", ""))[:128],
            priority=job["priority"] if job.get("priority") in PRIORITIES else "live",
        )

    def to_message(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "session_id": self.session_id,
            "window_index": self.window_index,
            "attempt": self.attempt,
            "ok": self.ok,
            "segments": [_segment_to_wire(s) for s in self.segments],
            "error": self.error,
            "inference_s": self.inference_s,
            "queue_wait_s": self.queue_wait_s,
            "audio_s": self.audio_s,
            "worker": self.worker,
            "model_id": self.model_id,
            "language": self.language,
            "language_probability": self.language_probability,
            "priority": self.priority,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> JobResult:
        segments = message.get("segments") or []
        if not isinstance(segments, list):
            raise MessageError("asr.result message: 'segments' must be a list")
        return cls(
            session_id=_get(message, "session_id", str),
            window_index=_get(message, "window_index", int),
            attempt=_get(message, "attempt", int),
            ok=bool(message.get("ok")),
            segments=tuple(_segment_from_wire(s) for s in segments),
            error=str(message.get("error", "")),
            inference_s=float(message.get("inference_s", 0.0)),
            queue_wait_s=float(message.get("queue_wait_s", 0.0)),
            audio_s=float(message.get("audio_s", 0.0)),
            worker=str(message.get("worker", "")),
            model_id=str(message.get("model_id", "")),
            language=str(message.get("language", "")),
            language_probability=float(message.get("language_probability", 0.0)),
            priority=_priority(message),
        )
