"""docker-compose.yml and k8s/ describe the same deployment: the same roles, the same env
variable names per role, all of them settings the application reads."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    NGINX_CONF,
    OPENASR_ROLES,
    PRIVATE_PATHS,
    PUBLIC_PATHS,
    SECRET_ENV,
    compose,
    compose_env,
    compose_openasr_services,
    configmap_data,
    django_env_names,
    k8s_env_names,
    k8s_workloads,
    setting_env_names,
)

# Variables only k8s sets, and why: not settings, helpers the kubelet expands into one.
K8S_ONLY_ENV = {"POD_IP": "downward API: the pod's IP, expanded into DJANGO_ALLOWED_HOSTS"}

# Where compose and the ConfigMap may differ in value (the names are the same), and why.
COMPOSE_VALUE_DIFFERENCES = {
    "WSS_LOG_FORMAT": "text for a developer's terminal; json in the cluster",
    "WSS_MODEL": "compose follows the built image (build arg); k8s names it explicitly",
}


def test_compose_and_k8s_have_the_same_roles() -> None:
    """server, worker, migrate from the OpenASR image, and Redis, in both."""
    services = compose()["services"]
    workloads = k8s_workloads()
    assert set(compose_openasr_services()) == set(OPENASR_ROLES)
    assert {"server", "worker", "migrate", "redis"} <= set(workloads)
    assert "redis" in services
    for role, service in compose_openasr_services().items():
        container = workloads[role]["spec"]["template"]["spec"]["containers"][0]
        assert service["command"] == container["args"] == [role]


def test_compose_scales_out_like_the_cluster() -> None:
    """Two servers and two workers behind nginx, migrate once before the servers."""
    services = compose()["services"]
    assert services["server"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["server"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["nginx"]["ports"] == ["8080:8080"]
    assert "ports" not in services["server"], "servers are reached through nginx only"


@pytest.mark.parametrize("role", OPENASR_ROLES)
def test_compose_and_k8s_set_the_same_env_names(role: str) -> None:
    """Each role gets the same variable names in compose and in k8s."""
    k8s = k8s_env_names(k8s_workloads()[role]) - set(K8S_ONLY_ENV)
    assert set(compose_env(role)) == k8s


@pytest.mark.parametrize("role", OPENASR_ROLES)
def test_every_env_name_is_read_by_the_application(role: str) -> None:
    """Every variable compose or k8s sets is a SETTINGS entry or read by the Django settings."""
    known = setting_env_names() | django_env_names()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "OPENASR_VAR_DIR"} <= django_env_names()
    names = set(compose_env(role)) | k8s_env_names(k8s_workloads()[role])
    assert names - known - set(K8S_ONLY_ENV) == set()


def test_compose_values_match_the_configmap() -> None:
    """Same values as the ConfigMap, except the documented differences."""
    server = compose_env("server")
    differ = {
        name
        for name, value in configmap_data().items()
        if server[name] != value and name not in COMPOSE_VALUE_DIFFERENCES
    }
    assert differ == set()


def test_compose_secrets_come_from_the_environment() -> None:
    """DJANGO_SECRET_KEY and WSS_API_KEY must be exported: compose stops if they are not."""
    server = compose_env("server")
    for name in ("DJANGO_SECRET_KEY", "WSS_API_KEY"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", server[name]), name
    assert SECRET_ENV <= set(server)


def test_compose_images_are_pinned_and_hardened() -> None:
    """Third-party images carry exact versions; OpenASR containers are read-only, no caps."""
    for name, service in compose()["services"].items():
        image = service["image"]
        if image.startswith("openasr:"):
            assert service["read_only"] is True
            assert service["cap_drop"] == ["ALL"]
            assert "/tmp" in service["tmpfs"]
        else:
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.]+)?", image), f"{name}: {image}"


def test_compose_stop_grace_covers_the_drain() -> None:
    """docker stop waits longer than WSS_SHUTDOWN_GRACE_S before SIGKILL."""
    grace_s = float(compose_env("server")["WSS_SHUTDOWN_GRACE_S"])
    period = compose()["services"]["server"]["stop_grace_period"]
    assert float(period.rstrip("s")) > grace_s


def nginx_routes(conf: str) -> list[tuple[str, str, str]]:
    """(modifier, path, body) of each ``location`` block ("=" for exact, "" for a prefix)."""
    found = []
    for match in re.finditer(r"location\s+(?:(=)\s+)?(\S+)\s*\{(.*?)\n        \}", conf, re.S):
        found.append((match.group(1) or "", match.group(2), match.group(3)))
    return found


def nginx_proxies(conf: str, path: str) -> bool:
    """Whether nginx passes ``path`` to a server: an exact match first, else the longest
    prefix (nginx's rule for locations without regexes); a block without proxy_pass denies."""
    routes = nginx_routes(conf)
    exact = [body for mod, loc, body in routes if mod == "=" and loc == path]
    if exact:
        return "proxy_pass" in exact[0]
    prefixes = [(loc, body) for mod, loc, body in routes if mod == "" and path.startswith(loc)]
    if not prefixes:
        return False
    return "proxy_pass" in max(prefixes, key=lambda item: len(item[0]))[1]


def test_nginx_proxies_websockets_and_hides_the_ops_endpoints() -> None:
    """Upgrade headers and hour-long timeouts on /transcribe; everything else 404s."""
    conf = NGINX_CONF.read_text()
    transcribe = conf.split("location = /transcribe", 1)[1].split("}", 1)[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in transcribe
    assert "proxy_set_header Connection $connection_upgrade;" in transcribe
    assert "proxy_read_timeout 3600s;" in transcribe
    assert "proxy_send_timeout 3600s;" in transcribe
    fallback = conf.split("location / {", 1)[1].split("}", 1)[0]
    assert "return 404;" in fallback
    assert "proxy_http_version 1.1;" in conf


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_nginx_routes_the_captions_page_and_the_websocket(path: str) -> None:
    """GET / (the captions page), its scripts and /transcribe reach a server."""
    assert nginx_proxies(NGINX_CONF.read_text(), path)


@pytest.mark.parametrize("path", PRIVATE_PATHS)
def test_nginx_never_routes_the_admin_or_the_ops_endpoints(path: str) -> None:
    """/admin/, /metrics, /health, /ready and anything unlisted end at the 404 block."""
    assert not nginx_proxies(NGINX_CONF.read_text(), path)


def test_nginx_route_check_is_live() -> None:
    """The matcher above reads nginx's rules: a catch-all proxy location is caught."""
    conf = NGINX_CONF.read_text().replace("return 404;", "proxy_pass $openasr;")
    assert nginx_proxies(conf, "/admin/")
