"""k8s/: every manifest validates offline (kubernetes-validate strict, or a bundled CRD schema),
the YAML is lint-clean, and the deployment invariants of the issue hold."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

from openasr_site.config import SETTINGS, load_config
from tests.deploy import local_manifest
from tests.deploy.manifests import (
    COMPOSE,
    K8S,
    PRIVATE_PATHS,
    PUBLIC_PATHS,
    REPO,
    SCHEMAS,
    SECRET_ENV,
    WORKLOAD_KINDS,
    configmap_data,
    find,
    k8s_docs,
    k8s_workloads,
    load_yaml_docs,
    manifest_files,
    pod_spec,
)

# The oldest Kubernetes minor we support and the newest schema set kubernetes-validate bundles
# (1.25 ... 1.37 offline in kubernetes-validate 1.37.0).
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())

# Custom resources have no schema in kubernetes-validate: each is checked against a small
# strict schema bundled here instead of being skipped.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}


def validate_manifest(doc: dict[str, Any], version: str) -> None:
    """Raise if ``doc`` is not a valid object for Kubernetes ``version`` (strict: no unknown
    fields). Custom resources use their bundled schema."""
    schema_file = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if schema_file is not None:
        schema = json.loads((SCHEMAS / schema_file).read_text())
        jsonschema.Draft202012Validator(schema).validate(doc)
        return
    kubernetes_validate.validate(doc, version, strict=True)


def _all_docs() -> list[Any]:
    params = []
    for path in manifest_files():
        for index, doc in enumerate(load_yaml_docs(path)):
            rel = path.relative_to(K8S)
            params.append(pytest.param(doc, id=f"{rel}#{index}:{doc['kind']}"))
    return params


def _deployment(replicas: Any = 2, **extra_spec: Any) -> dict[str, Any]:
    labels = {"app": "x"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "x", "image": "x:1.0.0"}]},
            },
            **extra_spec,
        },
    }


# --- schema validation ---


@pytest.mark.parametrize("doc", _all_docs())
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifest_validates_offline(doc: dict[str, Any], version: str) -> None:
    """Every document in k8s/ is a valid object for the supported Kubernetes versions."""
    validate_manifest(doc, version)


def test_validator_accepts_a_minimal_deployment() -> None:
    """The negative tests below fail for their defect, not for a broken base document."""
    validate_manifest(_deployment(), K8S_VERSIONS[-1])


def test_validator_rejects_a_string_replica_count() -> None:
    """`replicas: "two"` is caught: the validator really reads the schemas."""
    with pytest.raises(kubernetes_validate.ValidationError, match="two"):
        validate_manifest(_deployment(replicas="two"), K8S_VERSIONS[-1])


def test_validator_rejects_an_unknown_field_in_strict_mode() -> None:
    """A misspelt field (`replica`) is an error, not silently ignored as kubectl would."""
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        validate_manifest(_deployment(replica=3), K8S_VERSIONS[-1])


def test_crd_schemas_reject_misspelt_fields_and_bad_durations() -> None:
    """The bundled ServiceMonitor/PrometheusRule schemas catch real mistakes too."""
    monitor = copy.deepcopy(find("ServiceMonitor", "openasr-server"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        validate_manifest(monitor, K8S_VERSIONS[-1])
    rules = copy.deepcopy(find("PrometheusRule", "openasr"))
    rules["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError, match="ten minutes"):
        validate_manifest(rules, K8S_VERSIONS[-1])


def test_unknown_kinds_are_not_skipped() -> None:
    """A kind with neither a core nor a bundled schema fails instead of passing unchecked."""
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_manifest(doc, K8S_VERSIONS[-1])


def test_yaml_is_lint_clean() -> None:
    """yamllint (.yamllint) finds nothing in k8s/ and docker-compose.yml."""
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    problems = []
    for path in [*manifest_files(), COMPOSE, REPO / ".yamllint"]:
        for problem in linter.run(path.read_text(), config, str(path)):
            problems.append(f"{path.relative_to(REPO)}:{problem.line}: {problem}")
    assert problems == []


def test_yamllint_config_reports_problems() -> None:
    """The lint config is live: a duplicate key and a long line are reported."""
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    text = "a: 1\na: 2\nb: " + "x" * 130 + "\n"
    rules = {problem.rule for problem in linter.run(text, config)}
    assert {"key-duplicates", "line-length"} <= rules


def test_local_manifest_is_up_to_date() -> None:
    """k8s/local/all-in-one.yaml is what tests/deploy/local_manifest.py renders."""
    assert (K8S / "local" / "all-in-one.yaml").read_text() == local_manifest.render()


# --- pods ---


def _workloads(local: bool) -> list[Any]:
    return [
        pytest.param(doc, id=f"{'local/' if local else ''}{doc['kind']}/{doc['metadata']['name']}")
        for _, doc in k8s_docs(local=local)
        if doc["kind"] in WORKLOAD_KINDS
    ]


@pytest.mark.parametrize("workload", _workloads(False) + _workloads(True))
def test_pods_are_hardened(workload: dict[str, Any]) -> None:
    """Non-root, seccomp RuntimeDefault, read-only root, no capabilities, no token, resources."""
    pod = pod_spec(workload)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert "memory" in resources["limits"]
        image = container["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{image}: pin a tag"
        assert not image.endswith(":latest")


@pytest.mark.parametrize("workload", _workloads(False) + _workloads(True))
def test_openasr_pods_run_as_the_image_user(workload: dict[str, Any]) -> None:
    """OpenASR pods run as UID/GID 10001 (Dockerfile USER) with writable /tmp and var dir."""
    pod = pod_spec(workload)
    if not pod["containers"][0]["image"].split(":")[0].endswith("openasr"):
        return
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsGroup"] == 10001
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"/tmp", "/var/lib/openasr"}


def test_server_probes_and_port_agree_with_the_config() -> None:
    """Liveness /health, readiness /ready, on the port named http = WSS_PORT = Service port."""
    port = int(configmap_data()["WSS_PORT"])
    server = k8s_workloads()["server"]
    container = pod_spec(server)["containers"][0]
    assert container["args"] == ["server"]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    service = find("Service", "openasr-server")
    assert (
        service["spec"]["selector"].items()
        <= server["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_termination_grace_covers_prestop_and_drain() -> None:
    """The kubelet waits longer than the preStop sleep plus WSS_SHUTDOWN_GRACE_S."""
    grace_s = float(configmap_data()["WSS_SHUTDOWN_GRACE_S"])
    pod = pod_spec(k8s_workloads()["server"])
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + grace_s


def test_worker_has_no_port_and_documents_why_no_probe() -> None:
    """The worker exposes nothing and the manifest says why it has no probes."""
    worker = k8s_workloads()["worker"]
    container = pod_spec(worker)["containers"][0]
    assert container["args"] == ["worker"]
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert "No probes, on purpose" in (K8S / "worker.yaml").read_text()
    data = configmap_data()
    cpus = int(data["WSS_INFERENCE_THREADS"]) * int(data["WSS_WORKER_CONCURRENCY"])
    assert float(container["resources"]["requests"]["cpu"]) == cpus


@pytest.mark.parametrize("role", ["server", "worker"])
def test_replicas_spread_and_have_a_disruption_budget(role: str) -> None:
    """Servers and workers spread over nodes and zones, and drains evict one at a time."""
    workload = k8s_workloads()[role]
    keys = {c["topologyKey"] for c in pod_spec(workload)["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    pdb = find("PodDisruptionBudget", f"openasr-{role}")
    assert pdb["spec"]["selector"] == workload["spec"]["selector"]


def test_worker_autoscaler_targets_the_worker_on_cpu() -> None:
    """The HPA scales the worker Deployment on CPU utilisation (its pods request CPU)."""
    hpa = find("HorizontalPodAutoscaler", "openasr-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "openasr-worker"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "openasr_inference_queue_depth" in (K8S / "worker.yaml").read_text()


# --- configuration ---


def test_configmap_holds_every_non_secret_setting() -> None:
    """Every setting of openasr_site/config.py is in the ConfigMap unless it is a secret or
    documented as "Test only" (e.g. the fake backend's speed)."""
    data = configmap_data()
    test_only = {s.env for s in SETTINGS if s.doc.startswith("Test only")}
    expected = {s.env for s in SETTINGS} - SECRET_ENV - test_only
    assert not test_only & set(data), "test-only settings do not belong in a deployment"
    assert expected - set(data) == set(), "add the new settings to k8s/configmap.yaml"
    assert not SECRET_ENV & set(data)


def test_configmap_values_pass_the_config_validation() -> None:
    """The ConfigMap's values load with the server's own validation (no ConfigError)."""
    cfg = load_config(configmap_data())
    assert cfg.require_auth is True
    assert cfg.port == 9090


def test_secret_example_holds_placeholders_only() -> None:
    """The example Secret has exactly the secret keys, each an obvious CHANGE-ME placeholder
    (the Redis password too)."""
    secret = find("Secret", "openasr-secrets")
    assert set(secret["stringData"]) == SECRET_ENV
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert "CHANGE-ME" in find("Secret", "openasr-redis")["stringData"]["REDIS_PASSWORD"]


# --- network exposure ---


def ingress_routes(path: str) -> bool:
    """Whether the Ingress sends ``path`` to a backend (Exact: the whole path; Prefix: whole
    path elements, so /static/openasr matches /static/openasr/x but not /static/openasrx)."""
    for rule in find("Ingress", "openasr")["spec"]["rules"]:
        for route in rule["http"]["paths"]:
            prefix = route["path"]
            if route["pathType"] == "Exact" and path == prefix:
                return True
            if route["pathType"] == "Prefix":
                elements, wanted = path.split("/"), prefix.rstrip("/").split("/")
                if elements[: len(wanted)] == wanted:
                    return True
    return False


def test_ingress_routes_the_websocket_and_the_captions_page_only() -> None:
    """/transcribe, GET / and the page's scripts are routed; nothing reaches /health, /ready,
    /metrics or /admin/; long proxy timeouts; TLS for every host."""
    ingress = find("Ingress", "openasr")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    for path in PUBLIC_PATHS:
        assert ingress_routes(path), path
    for path in PRIVATE_PATHS:
        assert not ingress_routes(path), path
    tls_hosts = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= tls_hosts


def test_server_allowed_hosts_cover_the_ingress_the_service_and_the_pod_ip() -> None:
    """DJANGO_ALLOWED_HOSTS on the servers lists the Ingress host, the Service's DNS names and
    $(POD_IP) from the downward API (the kubelet's probes and Prometheus use the pod IP)."""
    container = pod_spec(k8s_workloads()["server"])["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    names = [item["name"] for item in container["env"]]
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # $(VAR) expands only from variables defined earlier in the list.
    assert names.index("POD_IP") < names.index("DJANGO_ALLOWED_HOSTS")
    hosts = env["DJANGO_ALLOWED_HOSTS"]["value"].split(",")
    ingress_hosts = {rule["host"] for rule in find("Ingress", "openasr")["spec"]["rules"]}
    service = find("Service", "openasr-server")["metadata"]
    dns = f"{service['name']}.{service['namespace']}.svc.cluster.local"
    assert ingress_hosts | {service["name"], dns, "$(POD_IP)"} <= set(hosts)
    assert "*" not in hosts and "DJANGO_ALLOWED_HOSTS" not in configmap_data()


def test_redis_requires_the_password_that_redis_url_carries() -> None:
    """The in-cluster Redis runs with --requirepass from the `openasr-redis` Secret, its probes
    authenticate through REDISCLI_AUTH, and the example REDIS_URL carries a password."""
    redis = pod_spec(k8s_workloads()["redis"])["containers"][0]
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--appendonly") + 1] == "yes"
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in redis["env"]}
    assert env["REDIS_PASSWORD"] == env["REDISCLI_AUTH"]
    assert env["REDIS_PASSWORD"]["name"] == "openasr-redis"
    assert find("Secret", "openasr-redis")["stringData"].keys() == {"REDIS_PASSWORD"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert "PONG" in " ".join(redis[probe]["exec"]["command"])
    url = find("Secret", "openasr-secrets")["stringData"]["REDIS_URL"]
    assert re.fullmatch(r"rediss?://:[^@]+@redis:6379/\d+", url), url
    local_url = find("Secret", "openasr-secrets", local=True)["stringData"]["REDIS_URL"]
    local_password = find("Secret", "openasr-redis", local=True)["stringData"]["REDIS_PASSWORD"]
    assert local_url == f"redis://:{local_password}@redis:6379/0"


def _policies() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == "NetworkPolicy"}


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {port["port"] for rule in rules for port in rule["ports"]}


def test_network_policies_deny_by_default_and_allow_only_the_listed_flows() -> None:
    """Default deny both ways; server:9090 in, redis:6379 from server/worker, postgres out."""
    policies = _policies()
    deny = policies["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert _ports(policies["server-ingress"]["spec"]["ingress"]) == {9090}
    assert _ports(policies["server-egress"]["spec"]["egress"]) == {6379, 5432}
    assert _ports(policies["worker-egress"]["spec"]["egress"]) == {6379}
    assert _ports(policies["migrate-egress"]["spec"]["egress"]) == {5432}
    redis_from = policies["redis-ingress"]["spec"]["ingress"][0]["from"]
    allowed = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in redis_from
    }
    assert allowed == {"server", "worker"}
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress from anywhere"


def test_service_monitor_scrapes_the_server_service() -> None:
    """The ServiceMonitor selects the server Service and scrapes its http port at /metrics."""
    monitor = find("ServiceMonitor", "openasr-server")
    service = find("Service", "openasr-server")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_local_manifest_keeps_the_production_pods_and_drops_the_placeholders() -> None:
    """all-in-one: same roles and env as production, a usable Secret, local images."""
    local = k8s_workloads(local=True)
    assert set(local) == {"server", "worker", "migrate", "redis", "postgres"}
    secret = find("Secret", "openasr-secrets", local=True)
    assert not any("CHANGE-ME" in v for v in secret["stringData"].values())
    for role in ("server", "worker", "migrate"):
        container = pod_spec(local[role])["containers"][0]
        production = pod_spec(k8s_workloads()[role])["containers"][0]
        assert container["image"] == "openasr:local"
        # the same variables; only the server's host list differs (localhost for
        # port-forward, no Ingress host)
        local_env = {e["name"]: e for e in container.get("env", [])}
        production_env = {e["name"]: e for e in production.get("env", [])}
        assert local_env.keys() == production_env.keys()
        for name, item in local_env.items():
            if name != "DJANGO_ALLOWED_HOSTS":
                assert item == production_env[name], name
        assert container["securityContext"] == production["securityContext"]
    hosts = {e["name"]: e for e in pod_spec(local["server"])["containers"][0]["env"]}
    assert {"localhost", "$(POD_IP)"} <= set(hosts["DJANGO_ALLOWED_HOSTS"]["value"].split(","))


def test_every_manifest_file_is_listed_in_the_apply_order() -> None:
    """docs/DEPLOYING.md names every production manifest in its apply order."""
    doc = (REPO / "docs" / "DEPLOYING.md").read_text()
    for path in manifest_files():
        assert str(Path("k8s") / path.relative_to(K8S)) in doc, path
