"""Tests for benchmarks/corpus.py: the benchmark speech sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from corpus import HARD_SCRIPTS, SAMPLE_RATE_HZ, load, real_corpus


def test_absent_real_sets_are_empty(tmp_path: Path) -> None:
    """Without the shared speech folder the real sets give no recording, not an error."""
    assert real_corpus(tmp_path / "missing", "long") == []
    assert load(["clips", "long"], tmp_path / "missing") == []


def test_hard_scripts_pause_mid_sentence_for_one_to_four_seconds() -> None:
    """Every hard script has pauses of 1-4 s after fragments that do not end a sentence."""
    for _name, _voice, script in HARD_SCRIPTS:
        mid = [pause for text, pause in script[:-1] if not text.endswith((".", "?", "!"))]
        assert any(pause >= 1000 for pause in mid) and max(mid) <= 4000
    assert any(pause >= 3000 for *_, script in HARD_SCRIPTS for _, pause in script)


def test_hard_recording_holds_its_pauses_as_silence() -> None:
    """The generated hard-pauses recording is speech with seconds of near-silence in it."""
    [rec, *_] = load(["hard"])
    assert rec.set == "hard" and rec.text.startswith("When we arrived")
    frame = SAMPLE_RATE_HZ // 10
    loud = [np.abs(rec.audio[i : i + frame]).max() > 0.02 for i in range(0, len(rec.audio), frame)]
    longest_quiet = max(len(run) for run in "".join("x" if x else "." for x in loud).split("x"))
    assert longest_quiet >= 35  # the 4 s pause, in 100 ms frames
