"""Tests for transcription/casing.py: the first word after a window join continues the
sentence case of the committed transcript."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transcription.casing import continue_case
from transcription.inference.types import Word
from transcription.transcript import normalize


def w(text: str) -> Word:
    return Word(text, 0, 100, 0.9)


def first(previous: str | None, text: str) -> str:
    return continue_case(w(previous) if previous else None, [w(text), w("next")])[0].text


def test_a_common_word_inside_a_sentence_is_lower_case() -> None:
    """In "the Middle Ages | When the craftsmen", "When" reads "when"; "Ask not | What", "what"."""
    assert first("not", "What") == "what"
    assert first("folder,", "And") == "and"


def test_after_a_sentence_end_the_first_word_is_left_alone() -> None:
    """After "continue." the next window's "mankind" stays: the period is often one Whisper
    put at the cut, which the offline transcript lacks (capitalising there was measured worse:
    docs/STREAMING.md)."""
    assert first("continue.", "mankind") == "mankind"
    assert first("not.", "What") == "What"


def test_names_and_i_keep_their_capital() -> None:
    """Only common words are lowered: a proper noun or "I" is written as Whisper heard it."""
    assert first("said", "Gutenberg") == "Gutenberg"
    assert first("and", "I") == "I"
    assert first("the", "NASA") == "NASA"


def test_the_first_words_of_a_session_are_left_alone() -> None:
    """No committed word before: nothing to continue."""
    assert first(None, "What") == "What"


@given(st.text(max_size=12), st.text(min_size=1, max_size=12))
def test_only_the_case_of_the_first_word_ever_changes(previous: str, text: str) -> None:
    """Casing never changes the words themselves (the WER normaliser sees the same words)."""
    words = continue_case(w(previous) if previous else None, [w(text), w("Next")])
    assert [normalize(x.text) for x in words] == [normalize(text), "next"]
    assert words[1].text == "Next"
