"""Tests for benchmarks/compare.py: the paired bootstrap of two runs' WER."""

from __future__ import annotations

import json
from pathlib import Path

from compare import compare, hypotheses

LONG = ["red", "green", "blue", "cat", "dog"] * 20
REFS = [" ".join(LONG), "the cat sat on the mat"]


def test_the_same_hypotheses_differ_by_nothing() -> None:
    """Two runs with the same words: difference 0, interval 0..0, never worse."""
    r = compare(REFS, REFS, REFS, size=20)
    assert r["diff_pct"] == 0 and r["ci95_pct"] == [0.0, 0.0] and r["b_worse_share"] == 0
    assert r["stretches"] == 5 + 1


def test_errors_spread_over_the_text_are_told_apart_and_one_error_is_not() -> None:
    """B misses one word in every stretch of the long reference: worse in every resample.
    B misses a single word: a positive difference whose interval still holds 0."""
    worse = [" ".join(w for i, w in enumerate(LONG) if i % 10), REFS[1]]
    r = compare(REFS, REFS, worse, size=20)
    assert r["wer_b_pct"] > r["wer_a_pct"] == 0
    assert r["ci95_pct"][0] > 0 and r["b_worse_share"] == 1
    one = [REFS[0], "the cat on the mat"]
    r = compare(REFS, REFS, one, size=20)
    assert r["diff_pct"] > 0 and r["ci95_pct"][0] == 0


def test_a_run_is_read_from_a_file_or_a_dotted_path_whose_keys_hold_dots(tmp_path: Path) -> None:
    """``pareto.json:candidates.tiny.en auto b1.quality.stream_5000``: keys may contain dots."""
    path = tmp_path / "run.json"
    inner = {"quality": {"stream_5000": {"hypotheses": ["a b"]}}}
    path.write_text(json.dumps({"hypotheses": ["x"], "candidates": {"tiny.en auto b1": inner}}))
    assert hypotheses(str(path)) == ["x"]
    assert hypotheses(f"{path}:candidates.tiny.en auto b1.quality.stream_5000") == ["a b"]
