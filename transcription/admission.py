"""Admission from measured speed: refuse a session the workers could not transcribe in real time.

A live session streaming in real time asks the workers for ``rtf × W / (W − O)`` seconds of
inference per second of wall time: every hop of ``W − O`` seconds it sends one window of ``W``
seconds, and a window costs ``rtf × W`` seconds. The workers supply ``capacity`` such seconds per
second (one per inference slot: ``WSS_WORKER_CONCURRENCY`` in-process, the sum of the
``concurrency`` of the live worker heartbeats with Redis). A new session is admitted only while
the total demand, itself included, stays within ``capacity × headroom``; beyond that the queue
would only grow, so the client is told ``SESSION_LIMIT`` at once (and ``/ready`` turns false)
rather than getting ever later phrases.

Each served model is a pool with figures of its own (``POOLS``): its workers, its speed, its
sessions; a session weighs on the pool of the model that serves it (``modelinfo.route``).

``rtf`` is an EWMA of ``inference_s / audio_s`` from the ``asr.result`` messages. It is measured
under the load it serves, so the slowdown of several inferences sharing the CPU is in it. Until
the first result arrives it is unknown, and only the fixed limits (``WSS_MAX_SESSIONS``) apply:
a cold node has nothing to base a refusal on, and the first windows measure it within seconds.
A session alone on the node is always admitted (a slow model still serves one client).

``AdmissionState`` is sans-IO (numbers in, decisions out); ``admit``/``room_for_one``/
``observe``/``release`` are the thin edge the consumer and readiness call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings

from transcription import metrics
from transcription.auth.keys import KeyIdentity
from transcription.denial import Denial
from transcription.events import ClientError, ErrorCode
from transcription.inference.heartbeat import live_workers
from transcription.inference.messages import JobResult
from transcription.modelinfo import served_models
from transcription.protocol import SpeechConfig
from transcription.registry import NODE

EWMA_ALPHA = 0.2  # weight of the newest window: ~5 windows of memory, smooths one slow outlier
# Overlap beyond half the window buys a session no capacity: it has at most one window in
# flight and the queue serves sessions in turn, so extra overlap only delays that session.
# Without the cap a legal 1000/999 ms config weighed 1000 sessions (docs/PROTOCOL.md
# "Admission").
MAX_SESSION_WEIGHT = 2.0
MAX_SESSION_DEMAND = 1.0  # inference slots: one window in flight at a time


def session_weight(window_ms: int, overlap_ms: int) -> float:
    """Audio seconds a real-time session sends to inference per second: ``W / (W − O)``,
    capped at ``MAX_SESSION_WEIGHT``."""
    hop_ms = max(1, window_ms - overlap_ms)
    return min(window_ms / hop_ms, MAX_SESSION_WEIGHT)


@dataclass(frozen=True)
class Decision:
    """The outcome of one admission check, with the numbers behind it for the refusal text."""

    admitted: bool
    demand: float  # inference seconds per second with the candidate admitted
    budget: float  # capacity × headroom
    rtf: float | None


@dataclass
class AdmissionState:
    """The node's measured speed and the weights of its admitted sessions (no I/O).

    Called on the event loop thread only, like ``registry.NODE``; a check and the reservation
    that follows it happen without an ``await`` in between, so two configs cannot both take the
    last place.
    """

    headroom: float = 0.9
    alpha: float = EWMA_ALPHA
    rtf: float | None = None
    weights: dict[str, float] = field(default_factory=dict)  # reservation key → weight

    def observe(self, inference_s: float, audio_s: float) -> None:
        """Fold one finished window's speed into the EWMA (ignores empty or bogus figures)."""
        if not (audio_s > 0 and inference_s >= 0 and math.isfinite(inference_s)):
            return
        sample = inference_s / audio_s
        self.rtf = sample if self.rtf is None else self.rtf + self.alpha * (sample - self.rtf)

    def demand(self, extra_weight: float = 0.0, *, exclude: str | None = None) -> float:
        """Inference seconds per second the admitted sessions (plus ``extra_weight``) need."""
        if self.rtf is None:
            return 0.0
        weights = [w for key, w in self.weights.items() if key != exclude] + [extra_weight]
        return sum(min(w * self.rtf, MAX_SESSION_DEMAND) for w in weights)

    def decide(self, capacity: float, weight: float, *, key: str | None = None) -> Decision:
        """Would one more session of ``weight`` fit? ``key`` excludes its own earlier
        reservation (a second ``speech.config`` on the same connection)."""
        budget = capacity * self.headroom
        demand = self.demand(weight, exclude=key)
        # A session alone on the node is always admitted: refusing it protects nobody, and a
        # model slower than real time still serves one client (with backpressure) rather than
        # none. Admission protects the live sessions from the next one.
        alone = not any(k != key for k in self.weights)
        admitted = self.headroom <= 0 or self.rtf is None or alone or demand <= budget
        return Decision(admitted=admitted, demand=demand, budget=budget, rtf=self.rtf)

    def reserve(self, key: str, weight: float) -> None:
        self.weights[key] = weight

    def release(self, key: str) -> None:
        self.weights.pop(key, None)


POOLS: dict[str, AdmissionState] = {}  # model id → its pool's figures


def pool(model_id: str) -> AdmissionState:
    """The admission figures of ``model_id``'s pool (created empty on first use)."""
    state = POOLS.get(model_id)
    if state is None:
        state = POOLS[model_id] = AdmissionState()
    return state


def _default_model_id() -> str:
    return served_models(settings.OPENASR)[0].model_id


# --- the thin async edge ---


def _headroom() -> float:
    return float(settings.OPENASR.admission_headroom)


async def worker_capacity(model_id: str = "") -> float:
    """Inference slots serving ``model_id``'s pool (default: the default model's): its
    in-process worker's, or those of the live Redis workers serving that model (a heartbeat
    without a model, from a worker older than pools, serves the default model)."""
    cfg = settings.OPENASR
    if not cfg.redis_url:
        return float(cfg.worker_concurrency)
    default = _default_model_id()
    wanted = model_id or default
    workers = await live_workers(cfg.redis_url)
    return float(
        sum(int(w.get("concurrency", 1)) for w in workers if (w.get("model") or default) == wanted)
    )


RETRY_AFTER_S = 5


def refuse_connection(key: KeyIdentity | None) -> Denial | None:
    """Called on the upgrade: HTTP 503 when the node is full or draining, 429 when the key
    already holds ``WSS_MAX_CONNECTIONS_PER_KEY`` connections here; None to accept."""
    cfg = settings.OPENASR
    if NODE.connections >= cfg.max_connections or NODE.draining:
        metrics.CONNECTIONS_REJECTED_LIMIT.inc()
        busy = "server full or draining: try again later"
        return Denial.retry_later(503, "busy", busy, RETRY_AFTER_S)
    per_key = cfg.max_connections_per_key
    if key and per_key and NODE.connections_of_key(key["id"]) >= per_key:
        metrics.CONNECTIONS_REJECTED_LIMIT.inc()
        held = f"this API key already holds {per_key} connections on this node"
        return Denial.retry_later(429, "too_many", held, RETRY_AFTER_S)
    return None


async def check_session_caps(key: KeyIdentity | None) -> None:
    """Called on ``speech.config``: the fixed caps (node, API key: ``SESSION_LIMIT``) and the
    key's session-start rate (``RATE_LIMITED``)."""
    cfg = settings.OPENASR
    if NODE.active_sessions >= cfg.max_sessions or NODE.draining:
        metrics.CONNECTIONS_REJECTED_LIMIT.inc()
        raise ClientError(
            ErrorCode.SESSION_LIMIT,
            f"Maximum concurrent sessions reached ({cfg.max_sessions}); try again later",
        )
    key_limit = key.get("max_sessions") if key else None
    if key and key_limit is not None and NODE.sessions_of_key(key["id"]) >= key_limit:
        metrics.CONNECTIONS_REJECTED_LIMIT.inc()
        raise ClientError(
            ErrorCode.SESSION_LIMIT,
            f"Maximum concurrent sessions for this API key reached ({key_limit}); try again later",
        )


async def admit(key: str, config: SpeechConfig, model_id: str = "") -> None:
    """Called on ``speech.config`` after the caps: reserve a share of the measured capacity
    of the serving model's pool or raise ``SESSION_LIMIT``."""
    model_id = model_id or _default_model_id()
    weight = session_weight(config.window_duration_ms, config.overlap_duration_ms)
    capacity = await worker_capacity(model_id)
    # No await from here on: the check and the reservation are one step on the loop.
    release(key)  # a second speech.config may pick another pool
    state = pool(model_id)
    state.headroom = _headroom()
    decision = state.decide(capacity, weight, key=key)
    if not decision.admitted:
        metrics.CONNECTIONS_REJECTED_LIMIT.inc()
        raise ClientError(
            ErrorCode.SESSION_LIMIT,
            f"Inference capacity reached: the sessions would need {decision.demand:.2f} s of "
            f"inference per second (measured real-time factor {decision.rtf:.3f}) and the "
            f"workers of {model_id} supply {decision.budget:.2f}; try again later",
        )
    state.reserve(key, weight)


async def room_for_one(window_ms: int, overlap_ms: int, model_id: str = "") -> bool:
    """For ``/ready``: would a session with the default window be admitted now by
    ``model_id``'s pool (default: the default model's)?

    One client alone never makes a node unready (docs/PROTOCOL.md "Admission"): a node
    leaves the Service when several sessions fill it, not because one client picked an
    expensive window."""
    state = pool(model_id or _default_model_id())
    if len(state.weights) <= 1:
        return True
    state.headroom = _headroom()
    capacity = await worker_capacity(model_id)
    return state.decide(capacity, session_weight(window_ms, overlap_ms)).admitted


def observe(result: JobResult, window_ms: int = 0, overlap_ms: int = 0, model_id: str = "") -> None:
    """Called with each successful ``asr.result``: update the measured speed. Windows of a
    session whose overlap exceeds half its window (weight capped, see ``MAX_SESSION_WEIGHT``)
    are not measured: with the full encoder context a 1 s window costs as much as a 20 s one,
    and one such client would make the node look twenty times slower to everyone else."""
    if window_ms and window_ms / max(1, window_ms - overlap_ms) > MAX_SESSION_WEIGHT:
        return
    pool(model_id or _default_model_id()).observe(result.inference_s, result.audio_s)


def release(key: str) -> None:
    """Called when the connection closes: its session no longer needs inference."""
    for state in POOLS.values():
        state.release(key)
