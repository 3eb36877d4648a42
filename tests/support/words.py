"""Hand-made word timelines for the merge, transcript and policy tests."""

from __future__ import annotations

from transcription.inference.types import Word


def timeline(text: str, start_ms: int = 0, word_ms: int = 300, gap_ms: int = 100) -> list[Word]:
    """Words of ``text`` spoken back to back from ``start_ms``."""
    words, at = [], start_ms
    for token in text.split():
        words.append(Word(token, at, at + word_ms, 0.9))
        at += word_ms + gap_ms
    return words
