"""Every Prometheus metric of the server, declared once.

The ``openasr_*`` names, types, help text and buckets are the C++ seed's ("Prometheus Metrics");
django-prometheus serves them at ``/metrics``: from the default registry, or, when
``PROMETHEUS_MULTIPROC_DIR`` is set (the image sets it), through prometheus_client's
``MultiProcessCollector``, which sums counters and histograms over the node's processes and adds
the ``livesum`` gauges of the live ones, so every seed series stays unlabelled (no ``pid``).
Metrics beyond the seed have names of their own (docs/PROTOCOL.md "Operations", docs/METRICS.md).

What the inference worker measures travels back in each ``asr.result`` and is recorded here, in
the server process, by ``observe_result``: with Redis the workers are other processes (other
pods) that Prometheus does not scrape, and recording on one side only keeps the in-process
deployment from counting a window twice.
"""

from __future__ import annotations

import math

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from transcription.inference.messages import JobResult

# The seed exposes exactly its sample names; the default registry would add an
# ``openasr_*_created`` series per counter and histogram (multiprocess mode never has them).
disable_created_metrics()  # type: ignore[no-untyped-call]

# --- gauges ---
ACTIVE_SESSIONS = Gauge(
    "openasr_active_sessions",
    "Current number of transcription sessions",
    multiprocess_mode="livesum",
)
ACTIVE_CONNECTIONS = Gauge(
    "openasr_active_connections", "Current WebSocket connections", multiprocess_mode="livesum"
)
INFERENCE_QUEUE_DEPTH = Gauge(
    "openasr_inference_queue_depth", "Inference jobs waiting in queue", multiprocess_mode="livesum"
)

# --- counters (prometheus_client appends _total to the sample name) ---
CONNECTIONS = Counter("openasr_connections", "Total WebSocket connections")
CONNECTIONS_REJECTED_AUTH = Counter(
    "openasr_connections_rejected_auth", "Connections rejected (401 Unauthorized)"
)
CONNECTIONS_REJECTED_LIMIT = Counter(
    "openasr_connections_rejected_limit", "Connections rejected (limit reached)"
)
SESSIONS_CREATED = Counter("openasr_sessions_created", "Sessions created")
SESSIONS_DESTROYED = Counter("openasr_sessions_destroyed", "Sessions destroyed")
AUDIO_BYTES_RECEIVED = Counter("openasr_audio_bytes_received", "Audio data received (bytes)")
AUDIO_CHUNKS_RECEIVED = Counter("openasr_audio_chunks_received", "Binary WebSocket frames received")
INFERENCE_JOBS_SUBMITTED = Counter(
    "openasr_inference_jobs_submitted", "Inference jobs submitted to thread pool"
)
INFERENCE_JOBS_COMPLETED = Counter(
    "openasr_inference_jobs_completed", "Inference jobs completed successfully"
)
INFERENCE_JOBS_DROPPED = Counter(
    "openasr_inference_jobs_dropped", "Inference jobs dropped (queue full)"
)
INTERIM_JOBS_EXPIRED = Counter(
    "openasr_interim_jobs_expired",
    "Interim (speech.hypothesis) passes a worker dropped unheard: too old, or lost a tie",
)
INTERIM_PASSES = Counter(
    "openasr_interim_passes", "Interim (speech.hypothesis) passes sent by sessions"
)
TRANSCRIPTION_SEGMENTS = Counter(
    "openasr_transcription_segments", "Transcription segments produced"
)
ERRORS = Counter("openasr_errors", "Errors sent to clients")
BACKPRESSURE_EVENTS = Counter("openasr_backpressure_events", "Backpressure signals sent")

# --- histograms ---
INFERENCE_DURATION = Histogram(
    "openasr_inference_duration_seconds",
    "Per-window inference time",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
AUDIO_WINDOW_DURATION = Histogram(
    "openasr_audio_window_duration_seconds",
    "Audio window size",
    buckets=(1, 2, 5, 10, 20, 30, 60),
)

# --- beyond the seed ---
# The per-window figures below carry the ``model`` that served the window (its pool's id):
# models of one deployment differ several times in speed.
REAL_TIME_FACTOR = Histogram(
    "openasr_inference_real_time_factor",
    "Inference time divided by the audio duration of the window",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
)
WINDOW_LATENCY = Histogram(
    "openasr_window_latency_seconds",
    "End-to-end window latency: window complete to speech.phrase sent",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60),
)
QUEUE_WAIT = Histogram(
    "openasr_inference_queue_wait_seconds",
    "Time a window waited between submission and the start of inference",
    ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INFERENCE_RETRIES = Counter(
    "openasr_inference_retries", "Windows re-sent because their result did not come back in time"
)
VAD_SKIPPED_WINDOWS = Counter(
    "openasr_vad_skipped_windows", "Windows not transcribed because the speech gate found no speech"
)
REDIS_ERRORS = Counter("openasr_redis_errors", "Redis operations that failed", ["operation"])
KEY_SESSIONS = Counter("openasr_key_sessions", "Sessions created per API key name", ["key_name"])
AUDIO_REFUSED_MS = Counter(
    "openasr_audio_refused_ms", "Audio refused because the session buffer was full (ms)"
)
INTERNAL_ERRORS = Counter(
    "openasr_internal_errors", "Unexpected server errors: speech.error INTERNAL_ERROR, close 1011"
)
ERRORS_SUPPRESSED = Counter(
    "openasr_errors_suppressed", "speech.error events held back by the per-connection error budget"
)
CONNECTIONS_CLOSED_POLICY = Counter(
    "openasr_connections_closed_policy",
    "Connections closed with 1008: sustained abuse, or a client that stopped reading",
)
API_SESSIONS = Counter(
    "openasr_api_sessions",
    "Sessions started per wire API (openasr, openai_rest, openai_realtime, deepgram)",
    ["api"],
)
MODEL_SESSIONS = Counter(
    "openasr_model_sessions",
    "Sessions started per serving model (the pool a session's model_id and language chose)",
    ["model"],
)
SESSIONS_REVOKED = Counter(
    "openasr_sessions_revoked", "Live sessions ended because their API key was revoked or expired"
)
FRAME_HANDLE = Histogram(
    "openasr_frame_handle_seconds",
    "Time the consumer spends handling one binary audio frame (decode, buffer, VAD, submit)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


def _figure(value: float) -> float | None:
    """A non-negative finite figure from a result, or None (a bogus value)."""
    return value if math.isfinite(value) and value >= 0 else None


def observe_result(result: JobResult) -> None:
    """Called by the consumer for every ``asr.result`` it receives, current or stale (a retried
    window answered twice was still inferred twice): record the worker's figures."""
    if not result.ok:
        # The worker caught an exception and replied with a failure instead of dying.
        INFERENCE_JOBS_DROPPED.inc()
        return
    INFERENCE_JOBS_COMPLETED.inc()
    TRANSCRIPTION_SEGMENTS.inc(len(result.segments))
    inference_s = _figure(result.inference_s)
    audio_s = _figure(result.audio_s)
    queue_wait_s = _figure(result.queue_wait_s)
    if inference_s is not None:
        INFERENCE_DURATION.observe(inference_s)
    if audio_s:
        AUDIO_WINDOW_DURATION.observe(audio_s)
    if inference_s is not None and audio_s and result.priority != "interim":
        REAL_TIME_FACTOR.labels(model=result.model_id).observe(inference_s / audio_s)
    if queue_wait_s is not None:
        QUEUE_WAIT.labels(model=result.model_id).observe(queue_wait_s)
