"""Render ``k8s/local/all-in-one.yaml`` (kind, minikube) from the production manifests in ``k8s/``.

One source of truth: the local file is the production namespace, ConfigMap, Redis, migrate Job,
server and worker with local images, small requests, a throw-away Secret and an in-cluster
PostgreSQL. ``test_local_manifest_is_up_to_date`` fails when it drifts; regenerate with::

    .venv/bin/python -m tests.deploy.local_manifest > k8s/local/all-in-one.yaml
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
LOCAL_IMAGE = "openasr:local"
POSTGRES_IMAGE = "postgres:16.4-alpine"

HEADER = """\
# OpenASR on a local cluster (kind, minikube): GENERATED from k8s/*.yaml by
# tests/deploy/local_manifest.py; do not edit by hand, regenerate with
#   .venv/bin/python -m tests.deploy.local_manifest > k8s/local/all-in-one.yaml
#
#   docker build -t openasr:local .
#   kind load docker-image openasr:local        # or: minikube image load openasr:local
#   kubectl apply -f k8s/local/all-in-one.yaml
#   kubectl -n openasr port-forward svc/openasr-server 9090:9090
#   # ws://localhost:9090/transcribe with the header
#   #   Authorization: Bearer local-dev-only-api-key-not-for-production
#
# LOCAL USE ONLY: the Secret below holds publicly known values, Redis and PostgreSQL keep their
# data in emptyDir volumes, and there is no Ingress, NetworkPolicy, HPA or monitoring (see
# docs/DEPLOYING.md for production).
"""

LOCAL_HOSTS = "localhost,127.0.0.1"
LOCAL_CLUSTER_HOSTS = "openasr-server,openasr-server.openasr.svc.cluster.local,$(POD_IP)"
LOCAL_REDIS_PASSWORD = "local-dev-only-redis-password"
LOCAL_SECRETS = {
    "DJANGO_SECRET_KEY": "local-dev-only-django-secret-key-not-for-production",
    "WSS_API_KEY": "local-dev-only-api-key-not-for-production",
    "REDIS_URL": f"redis://:{LOCAL_REDIS_PASSWORD}@redis:6379/0",
    "DATABASE_URL": "postgres://openasr:local-dev-only@postgres:5432/openasr",
}


def load_docs(name: str) -> list[dict[str, Any]]:
    """The YAML documents of ``k8s/<name>`` (empty documents dropped)."""
    text = (K8S / name).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(doc for doc in docs if doc["kind"] == kind))


def _localise_pod(pod: dict[str, Any], requests: dict[str, str], limits: dict[str, str]) -> None:
    for container in pod["containers"]:
        if container["image"].startswith("registry.example.com/"):
            container["image"] = LOCAL_IMAGE
        container["resources"] = {"requests": requests, "limits": limits}


def _postgres() -> list[dict[str, Any]]:
    labels = {
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/component": "postgres",
        "app.kubernetes.io/part-of": "openasr",
    }
    selector = {k: v for k, v in labels.items() if k != "app.kubernetes.io/part-of"}
    meta = {"name": "postgres", "namespace": "openasr", "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        # the `postgres` user of the Alpine image
                        "runAsUser": 70,
                        "runAsGroup": 70,
                        "fsGroup": 70,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "postgres",
                            "image": POSTGRES_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "POSTGRES_DB", "value": "openasr"},
                                {"name": "POSTGRES_USER", "value": "openasr"},
                                {"name": "POSTGRES_PASSWORD", "value": "local-dev-only"},
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                            ],
                            "ports": [{"name": "postgres", "containerPort": 5432}],
                            "readinessProbe": {
                                "exec": {"command": ["pg_isready", "-U", "openasr"]},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                {"name": "run", "mountPath": "/var/run/postgresql"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "run", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": selector,
            "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}],
        },
    }
    return [deployment, service]


def build() -> list[dict[str, Any]]:
    """The local documents, in apply order."""
    namespace = load_docs("namespace.yaml")[0]
    config = load_docs("configmap.yaml")[0]
    config["data"]["WSS_LOG_FORMAT"] = "text"
    secrets = {doc["metadata"]["name"]: doc for doc in load_docs("secret.example.yaml")}
    secret = secrets["openasr-secrets"]
    secret["stringData"] = dict(LOCAL_SECRETS)
    redis_secret = secrets["openasr-redis"]
    redis_secret["stringData"] = {"REDIS_PASSWORD": LOCAL_REDIS_PASSWORD}

    redis_docs = load_docs("redis.yaml")
    redis = _by_kind(redis_docs, "StatefulSet")
    del redis["spec"]["volumeClaimTemplates"]
    redis["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    redis_service = _by_kind(redis_docs, "Service")

    migrate = load_docs("migrate-job.yaml")[0]
    _localise_pod(
        migrate["spec"]["template"]["spec"],
        {"cpu": "100m", "memory": "256Mi"},
        {"memory": "512Mi"},
    )
    # PostgreSQL starts at the same time: retry until it accepts connections.
    migrate["spec"]["backoffLimit"] = 10

    server_docs = load_docs("server.yaml")
    server = _by_kind(server_docs, "Deployment")
    _localise_pod(
        server["spec"]["template"]["spec"],
        {"cpu": "250m", "memory": "384Mi"},
        {"memory": "1Gi"},
    )
    server_service = _by_kind(server_docs, "Service")
    # `kubectl port-forward` reaches the server as localhost; there is no Ingress host.
    for item in server["spec"]["template"]["spec"]["containers"][0]["env"]:
        if item["name"] == "DJANGO_ALLOWED_HOSTS":
            item["value"] = f"{LOCAL_HOSTS},{LOCAL_CLUSTER_HOSTS}"

    worker = _by_kind(load_docs("worker.yaml"), "Deployment")
    worker["spec"]["replicas"] = 1
    _localise_pod(
        worker["spec"]["template"]["spec"],
        {"cpu": "500m", "memory": "640Mi"},
        {"memory": "640Mi"},
    )
    return [
        namespace,
        config,
        secret,
        redis_secret,
        redis,
        redis_service,
        *_postgres(),
        migrate,
        server,
        server_service,
        worker,
    ]


def render() -> str:
    """The text of ``k8s/local/all-in-one.yaml``."""
    body = yaml.safe_dump_all(build(), sort_keys=False, width=100, explicit_start=True)
    return HEADER + body


if __name__ == "__main__":
    print(render(), end="")
