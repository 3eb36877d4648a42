"""Loaders shared by the deployment checks: k8s documents, compose services, env names per role."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
NGINX_CONF = REPO / "docker" / "nginx.conf"

# The Secret's keys (k8s/secret.example.yaml); every other setting belongs in the ConfigMap.
SECRET_ENV = frozenset({"DJANGO_SECRET_KEY", "WSS_API_KEY", "REDIS_URL", "DATABASE_URL"})
# Roles of the one image, as k8s components and compose services.
OPENASR_ROLES = ("server", "worker", "migrate")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "Job"})

# Requests the public proxy must pass to a server, and those it must never pass.
PUBLIC_PATHS = ("/", "/transcribe", "/static/openasr/demo.js", "/static/openasr/pcm-worklet.js")
PRIVATE_PATHS = (
    "/admin/",
    "/admin/login/",
    "/metrics",
    "/health",
    "/ready",
    "/demo",
    "/static/admin/css/base.css",
    "/transcribe/x",
    "/static/openasrx",
)


def manifest_files() -> list[Path]:
    """Every YAML file under k8s/, the local all-in-one included."""
    return sorted(K8S.rglob("*.yaml"))


@cache
def load_yaml_docs(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def k8s_docs(*, local: bool = False) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, document) for the production manifests, or for k8s/local/ only."""
    for path in manifest_files():
        if (path.parent.name == "local") == local:
            for doc in load_yaml_docs(path):
                yield path, doc


def find(kind: str, name: str, *, local: bool = False) -> dict[str, Any]:
    for _, doc in k8s_docs(local=local):
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise LookupError(f"no {kind} {name} in k8s/{'local/' if local else ''}")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def component(doc: dict[str, Any]) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def k8s_workloads(*, local: bool = False) -> dict[str, dict[str, Any]]:
    """Workloads by component label (server, worker, migrate, redis, postgres)."""
    found: dict[str, dict[str, Any]] = {}
    for _, doc in k8s_docs(local=local):
        if doc["kind"] in WORKLOAD_KINDS:
            found[component(doc) or doc["metadata"]["name"]] = doc
    return found


def configmap_data(*, local: bool = False) -> dict[str, str]:
    return dict(find("ConfigMap", "openasr-config", local=local)["data"])


def k8s_env_names(workload: dict[str, Any], *, local: bool = False) -> set[str]:
    """Env names the first container of ``workload`` gets: envFrom ConfigMaps plus env."""
    container = pod_spec(workload)["containers"][0]
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, "only ConfigMaps are used with envFrom (secrets are listed)"
        names |= set(find("ConfigMap", ref["name"], local=local)["data"])
    return names


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_env(service: str) -> dict[str, str]:
    env = compose()["services"][service].get("environment", {})
    assert isinstance(env, dict), f"compose service {service}: use the mapping form of environment"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_openasr_services() -> dict[str, dict[str, Any]]:
    """Compose services running the OpenASR image, by role (their command's first word)."""
    return {
        svc["command"][0]: svc
        for svc in compose()["services"].values()
        if svc.get("image", "").startswith("openasr:")
    }


def django_env_names() -> set[str]:
    """Environment variables read by ``openasr_site/settings.py`` (its ``os.environ.get`` calls)."""
    import openasr_site.settings as settings_module

    source = inspect.getsource(settings_module)
    return set(re.findall(r"""os\.environ\.get\(\s*["']([A-Z0-9_]+)["']""", source))


def setting_env_names() -> set[str]:
    from openasr_site.config import SETTINGS

    return {setting.env for setting in SETTINGS}
