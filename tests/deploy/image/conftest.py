"""The image tests run only from ``make image-test``, which builds the image first and names it
in OPENASR_IMAGE; ``make test`` and ``pytest tests/deploy`` collect nothing here."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.image.podman import podman

REPO = Path(__file__).resolve().parents[3]
REPORT = REPO / ".make" / "image-test" / "report.json"

if not os.environ.get("OPENASR_IMAGE"):
    collect_ignore_glob = ["test_*.py"]

# What the run measured, printed at the end and kept in .make/image-test/report.json.
MEASURED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def image() -> str:
    """The tag ``make image-test`` built."""
    tag = os.environ["OPENASR_IMAGE"]
    podman("image", "exists", tag)
    return tag


@pytest.fixture(scope="session")
def measured() -> Iterator[dict[str, Any]]:
    yield MEASURED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    build_s = REPO / ".make" / "image-test" / "build_s"
    if build_s.exists():
        MEASURED.setdefault("build_s", int(build_s.read_text()))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(MEASURED, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("image measurements")
    for key, value in sorted(MEASURED.items()):
        terminalreporter.line(f"{key}: {value}")
