"""The README stays accurate for a newcomer: the two commands first, every setting documented."""

from __future__ import annotations

from pathlib import Path

from openasr_site.config import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_quick_start_is_make_run_and_make_test() -> None:
    """The quick start names exactly the two set-up commands."""
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick and "make test" in quick


def test_every_setting_is_documented() -> None:
    """Every environment variable the server reads has a row in the README."""
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in README]
    assert missing == []
