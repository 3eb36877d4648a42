"""Tests for benchmarks/languages.py: how WER and detection are pooled per language."""

from __future__ import annotations

from typing import Any

from languages import pooled, rows_of

from tests.support.multi import Clip


def _clip(name: str, language: str, reference: str) -> Clip:
    return Clip(name, language, reference, b"\0\0" * 16000)


def _streamed(text: str, language: str, languages: list[str]) -> dict[str, Any]:
    return {"text": text, "language": language, "language_probability": 0.9,
            "phrase_languages": languages}  # fmt: skip


def test_wer_is_pooled_over_words_after_the_basic_normaliser() -> None:
    """Case and punctuation are not errors; errors and words add up over clips."""
    figures = pooled([("Hallo Welt", "hallo, welt!"), ("eins zwei", "eins drei")])
    assert (figures["errors"], figures["ref_words"], figures["wer_pct"]) == (1, 4, 25.0)


def test_a_clip_counts_as_detected_right_only_if_every_phrase_had_its_language() -> None:
    """A session whose last phrase says de but an earlier one said nl is not locked right."""
    clips = [_clip("a", "de", "ja nein"), _clip("b", "de", "gut")]
    result = {
        "offline": ["ja nein", "gut"],
        "given": [_streamed("ja nein", "de", ["de"]), _streamed("gut", "de", ["de"])],
        "auto": [_streamed("ja nein", "de", ["de"]), _streamed("gut", "de", ["de", "nl"])],
    }
    rows = rows_of(result, clips)
    assert [r["auto locked right"] for r in rows] == ["1/2", "1/2"]
    assert rows[0]["language"].startswith("de (2 clips") and rows[1]["language"].startswith("all")
    assert rows[0]["auto Δ"] == 0.0
