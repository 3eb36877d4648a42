"""Tests for benchmarks/delay.py: how a word's delays are read from a timed session."""

from __future__ import annotations

from typing import Any

from common import TimedSession
from delay import stats, word_delays


def _word(text: str, start: int, end: int) -> dict[str, Any]:
    return {"text": text, "offset": start, "duration": end - start, "confidence": 0.9}


def _event(kind: str, words: list[dict[str, Any]], status: str = "Success") -> dict[str, Any]:
    payload: dict[str, Any] = {"text": " ".join(w["text"] for w in words), "words": words}
    if kind == "speech.phrase":
        payload["status"] = status
    return {"type": kind, "payload": payload}


def _session(events: list[tuple[float, dict[str, Any]]], frames: int = 50) -> TimedSession:
    return TimedSession(events=events, sent=[0.2 * i for i in range(frames)])


def test_final_delay_counts_from_the_chunk_holding_the_word_end() -> None:
    """A word ending at 1.05 s lies in chunk 5, sent at 1.0 s; its phrase at 3.0 s is 2 s late."""
    session = _session([(3.0, _event("speech.phrase", [_word("Hello", 600, 1050)]))])
    [delay] = word_delays(session)
    assert delay.final_s == 3.0 - 1.0
    assert delay.first_shown_s == delay.final_s


def test_first_shown_is_the_earliest_hypothesis_showing_the_word() -> None:
    """A hypothesis with the same word near the same time counts as its first showing."""
    session = _session(
        [
            (1.5, _event("speech.hypothesis", [_word("hello,", 700, 1100)])),
            (2.0, _event("speech.hypothesis", [_word("hello", 650, 1080)])),
            (4.0, _event("speech.phrase", [_word("Hello", 600, 1050)])),
        ]
    )
    [delay] = word_delays(session)
    assert delay.first_shown_s == 1.5 - 1.0
    assert delay.final_s == 4.0 - 1.0


def test_a_hypothesis_of_another_word_or_time_does_not_count() -> None:
    """Different text, or the same text seconds away, is not a showing of the word."""
    session = _session(
        [
            (1.2, _event("speech.hypothesis", [_word("yellow", 600, 1050)])),
            (1.3, _event("speech.hypothesis", [_word("hello", 4000, 4400)])),
            (3.0, _event("speech.phrase", [_word("Hello", 600, 1050)])),
        ]
    )
    [delay] = word_delays(session)
    assert delay.first_shown_s == delay.final_s == 2.0


def test_end_of_stream_phrase_commits_nothing_new() -> None:
    """Only Success phrases commit words; the EndOfStream summary is not counted again."""
    session = _session(
        [
            (3.0, _event("speech.phrase", [_word("Hello", 600, 1050)])),
            (5.0, _event("speech.phrase", [], status="EndOfStream")),
        ]
    )
    assert len(word_delays(session)) == 1


def test_stats_give_average_percentiles_and_max() -> None:
    """avg, nearest-rank p50/p95 and max of the delays."""
    figures = stats([1.0, 2.0, 3.0, 4.0])
    assert figures == {"n": 4, "avg": 2.5, "p50": 2.0, "p95": 4.0, "max": 4.0}
