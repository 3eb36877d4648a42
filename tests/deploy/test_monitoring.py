"""k8s/grafana-dashboard.json and k8s/prometheus-rules.yaml query only metrics that
transcription/metrics.py declares, and cover what the observability issue asks for."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.manifests import K8S, find

METRIC_RE = re.compile(r"\bopenasr_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def declared_samples() -> set[str]:
    """Sample names /metrics can expose: each metric of transcription.metrics with the
    suffixes of its type (Counter ``_total``, Histogram ``_bucket``/``_sum``/``_count``)."""
    from transcription import metrics

    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            names |= {value._name + suffix for suffix in SUFFIXES[value._type]}
    return names


def dashboard() -> dict[str, Any]:
    return json.loads((K8S / "grafana-dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


def rule_list() -> list[dict[str, Any]]:
    rules = find("PrometheusRule", "openasr")
    return [rule for group in rules["spec"]["groups"] for rule in group["rules"]]


def test_declared_samples_include_the_seed_names() -> None:
    """The helper sees the seed's sample names (guards the checks below against vacuity)."""
    samples = declared_samples()
    assert {
        "openasr_errors_total",
        "openasr_active_sessions",
        "openasr_inference_duration_seconds_bucket",
    } <= samples


def test_dashboard_queries_only_declared_metrics() -> None:
    """Every openasr_* series in the dashboard is exposed by the server."""
    used = {name for expr in dashboard_exprs() for name in METRIC_RE.findall(expr)}
    assert used - declared_samples() == set()


def test_dashboard_covers_the_observability_panels() -> None:
    """Sessions, connections, inference p50/p95, window p95, RTF, queue, errors, backpressure,
    VAD-skipped windows and auth rejections each have a query."""
    text = "\n".join(dashboard_exprs())
    for quantile in ("0.5", "0.95"):
        assert (
            f"histogram_quantile({quantile}, sum by (le) (rate(openasr_inference_duration" in text
        )
    assert "histogram_quantile(0.95, sum by (le) (rate(openasr_window_latency_seconds" in text
    for sample in (
        "openasr_active_sessions",
        "openasr_active_connections",
        "openasr_inference_real_time_factor_bucket",
        "openasr_inference_queue_depth",
        "openasr_errors_total",
        "openasr_backpressure_events_total",
        "openasr_vad_skipped_windows_total",
        "openasr_connections_rejected_auth_total",
    ):
        assert sample in text, sample


def test_dashboard_panels_are_well_formed() -> None:
    """Unique panel ids, a datasource variable, and unique refIds within each panel."""
    dash = dashboard()
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["templating"]["list"][0]["type"] == "datasource"
    for panel in dash["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_alert_rules_query_only_declared_metrics() -> None:
    """Every openasr_* series in the alert rules is exposed by the server."""
    used = {name for rule in rule_list() for name in METRIC_RE.findall(rule["expr"])}
    assert used - declared_samples() == set()


def test_alert_rules_cover_the_issue() -> None:
    """Latency p95, error rate, queue saturation, no worker / not ready and Redis errors."""
    alerts = {rule["alert"] for rule in rule_list()}
    assert {
        "OpenASRWindowLatencyHigh",
        "OpenASRInferenceLatencyHigh",
        "OpenASRErrorRateHigh",
        "OpenASRInferenceQueueSaturated",
        "OpenASRNoInferenceWorker",
        "OpenASRNoReadyServer",
        "OpenASRRedisErrors",
    } <= alerts
    for rule in rule_list():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_alert_rules_select_the_scraped_job() -> None:
    """The job label in the rules is the ServiceMonitor's (the Service name)."""
    service = find("Service", "openasr-server")["metadata"]["name"]
    jobs = {job for rule in rule_list() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert jobs == {service}
    dash_jobs = {job for expr in dashboard_exprs() for job in re.findall(r'job="([^"]+)"', expr)}
    assert dash_jobs == {service}
