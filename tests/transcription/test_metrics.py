"""``transcription/metrics.py``: the seed's metrics exactly, worker figures recorded once (from
``asr.result``, in the server process), and multiprocess mode summing without a ``pid`` label."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django_prometheus.testutils import assert_metric_diff, save_registry
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from transcription import metrics
from transcription.inference.messages import JobResult
from transcription.inference.types import Segment

REPO = Path(__file__).resolve().parents[2]

# The C++ seed's README, "Prometheus Metrics": sample name → (type, help, buckets).
SEED_GAUGES = {
    "openasr_active_sessions": "Current number of transcription sessions",
    "openasr_active_connections": "Current WebSocket connections",
    "openasr_inference_queue_depth": "Inference jobs waiting in queue",
}
SEED_COUNTERS = {
    "openasr_connections_total": "Total WebSocket connections",
    "openasr_connections_rejected_auth_total": "Connections rejected (401 Unauthorized)",
    "openasr_connections_rejected_limit_total": "Connections rejected (limit reached)",
    "openasr_sessions_created_total": "Sessions created",
    "openasr_sessions_destroyed_total": "Sessions destroyed",
    "openasr_audio_bytes_received_total": "Audio data received (bytes)",
    "openasr_audio_chunks_received_total": "Binary WebSocket frames received",
    "openasr_inference_jobs_submitted_total": "Inference jobs submitted to thread pool",
    "openasr_inference_jobs_completed_total": "Inference jobs completed successfully",
    "openasr_inference_jobs_dropped_total": "Inference jobs dropped (queue full)",
    "openasr_transcription_segments_total": "Transcription segments produced",
    "openasr_errors_total": "Errors sent to clients",
    "openasr_backpressure_events_total": "Backpressure signals sent",
}
SEED_HISTOGRAMS = {
    "openasr_inference_duration_seconds": (
        "Per-window inference time",
        (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    ),
    "openasr_audio_window_duration_seconds": ("Audio window size", (1, 2, 5, 10, 20, 30, 60)),
}


def families(text: str) -> dict[str, Any]:
    """Parsed exposition text by family name (counters lose ``_total`` in the parser)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def unlabelled(text: str) -> dict[str, float]:
    """Every sample without labels, by sample name."""
    return {s.name: s.value for f in families(text).values() for s in f.samples if not s.labels}


def test_every_seed_metric_has_the_seed_name_type_help_and_buckets() -> None:
    """Gauges, counters and histograms exactly as the seed lists them."""
    found = families(generate_latest(REGISTRY).decode())
    for name, help_text in SEED_GAUGES.items():
        assert (found[name].type, found[name].documentation) == ("gauge", help_text)
    for name, help_text in SEED_COUNTERS.items():
        family = found[name.removesuffix("_total")]
        assert (family.type, family.documentation) == ("counter", help_text)
    for name, (help_text, buckets) in SEED_HISTOGRAMS.items():
        family = found[name]
        assert (family.type, family.documentation) == ("histogram", help_text)
        bounds = [float(s.labels["le"]) for s in family.samples if s.name == f"{name}_bucket"]
        assert bounds == [float(b) for b in buckets] + [float("inf")]


def test_seed_series_are_unlabelled_with_exactly_the_seed_sample_names() -> None:
    """``openasr_errors_total 0.0``-style samples, and no ``_created`` companions."""
    text = generate_latest(REGISTRY).decode()
    samples = unlabelled(text)
    for name in [*SEED_GAUGES, *SEED_COUNTERS]:
        assert name in samples, name
    for name in SEED_HISTOGRAMS:
        assert f"{name}_count" in samples and f"{name}_sum" in samples
    names = {s.name for f in families(text).values() for s in f.samples}
    assert not [n for n in names if n.startswith("openasr_") and n.endswith("_created")]


def result(**overrides: Any) -> JobResult:
    fields: dict[str, Any] = {
        "session_id": "s",
        "window_index": 0,
        "attempt": 0,
        "ok": True,
        "segments": (Segment("a", 0, 100), Segment("b", 100, 200)),
        "inference_s": 0.3,
        "queue_wait_s": 0.02,
        "audio_s": 5.0,
        "model_id": "whisper-base",
    }
    fields.update(overrides)
    return JobResult(**fields)


def test_a_successful_result_records_the_worker_figures() -> None:
    """One ``ok`` result: one completed job, its segments, one observation per histogram."""
    before = save_registry()
    metrics.observe_result(result())
    assert_metric_diff(before, 1, "openasr_inference_jobs_completed_total")
    assert_metric_diff(before, 2, "openasr_transcription_segments_total")
    assert_metric_diff(before, 0, "openasr_inference_jobs_dropped_total")
    assert_metric_diff(before, 1, "openasr_inference_duration_seconds_count")
    assert_metric_diff(before, 1, "openasr_inference_duration_seconds_bucket", le="0.5")
    assert_metric_diff(before, 0, "openasr_inference_duration_seconds_bucket", le="0.25")
    assert_metric_diff(before, 1, "openasr_audio_window_duration_seconds_bucket", le="5.0")
    assert_metric_diff(before, 0, "openasr_audio_window_duration_seconds_bucket", le="2.0")
    rtf = "openasr_inference_real_time_factor_bucket"
    assert_metric_diff(before, 1, rtf, le="0.1", model="whisper-base")
    assert_metric_diff(before, 0, rtf, le="0.05", model="whisper-base")
    assert_metric_diff(
        before, 1, "openasr_inference_queue_wait_seconds_count", model="whisper-base"
    )


def test_a_failed_result_is_a_dropped_job_and_nothing_else() -> None:
    """A failed result (the worker caught an exception) counts as dropped, not completed."""
    before = save_registry()
    metrics.observe_result(result(ok=False, error="boom", segments=()))
    assert_metric_diff(before, 1, "openasr_inference_jobs_dropped_total")
    assert_metric_diff(before, 0, "openasr_inference_jobs_completed_total")
    assert_metric_diff(before, 0, "openasr_inference_duration_seconds_count")


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_bogus_figures_are_not_observed(bad: float) -> None:
    """A result without usable timings still completes a job but skips the histograms."""
    before = save_registry()
    metrics.observe_result(result(inference_s=bad, audio_s=bad, queue_wait_s=bad))
    assert_metric_diff(before, 1, "openasr_inference_jobs_completed_total")
    for name in (
        "openasr_inference_duration_seconds_count",
        "openasr_audio_window_duration_seconds_count",
    ):
        assert_metric_diff(before, 0, name)
    for name in (
        "openasr_inference_real_time_factor_count",
        "openasr_inference_queue_wait_seconds_count",
    ):
        assert_metric_diff(before, 0, name, model="whisper-base")


CHILD = """
from transcription import metrics
metrics.ERRORS.inc({n})
metrics.ACTIVE_SESSIONS.set({n})
metrics.INFERENCE_DURATION.observe(0.3)
"""

EXPORT = """
import django
django.setup()
from django.test import RequestFactory
from django_prometheus.exports import ExportToDjangoView
print(ExportToDjangoView(RequestFactory().get("/metrics")).content.decode())
"""


def test_multiprocess_mode_sums_the_processes_without_a_pid_label(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics's view adds up every process of the node:
    counters and histograms summed, livesum gauges summed, no ``pid`` label anywhere."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "openasr_site.settings",
    }
    env = {k: v for k, v in env.items() if not k.startswith("WSS_") and k != "REDIS_URL"}
    for n in (1, 2):
        subprocess.run(
            [sys.executable, "-c", CHILD.format(n=n)], cwd=REPO, env=env, check=True, timeout=60
        )
    out = subprocess.run(
        [sys.executable, "-c", EXPORT],
        cwd=REPO,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    samples = unlabelled(out)
    assert samples["openasr_errors_total"] == 3
    # livesum counts the files of processes not yet marked dead (the entrypoint clears them
    # at start); here both children's files are still there.
    assert samples["openasr_active_sessions"] == 3
    assert samples["openasr_inference_duration_seconds_count"] == 2
    assert "pid=" not in out
    for name in [*SEED_GAUGES, *SEED_COUNTERS]:
        assert name in samples, name
