"""Tests for the WER and duplicate-word helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.wer import (
    errors_per_word,
    normalize,
    repeated_bigrams,
    style_differences,
    wer,
    word_errors,
    words_lost_at_joins,
)

_WORDS = st.lists(st.sampled_from(["red", "green", "blue", "cat", "dog"]), max_size=8)


def test_normalize_lowercases_and_strips_punctuation() -> None:
    """normalize applies Whisper's English normaliser and splits into words."""
    assert normalize("Hello, World!  The colour is BLUE.") == [
        "hello",
        "world",
        "the",
        "color",
        "is",
        "blue",
    ]


def test_identical_text_has_zero_wer() -> None:
    """Case and punctuation differences are not errors."""
    assert wer("The cat sat on the mat.", "the cat sat on the mat") == 0.0


@pytest.mark.parametrize(
    ("hypothesis", "errors"),
    [
        ("the cat sit on the mat", 1),  # substitution
        ("the cat on the mat", 1),  # deletion
        ("the big cat sat on the mat", 1),  # insertion
        ("cat sat on mat the", 3),
        ("", 6),
    ],
)
def test_word_errors_counts_edits(hypothesis: str, errors: int) -> None:
    """word_errors is the word-level edit distance."""
    assert word_errors("the cat sat on the mat", hypothesis) == errors


def test_wer_divides_by_reference_length() -> None:
    """wer is errors over reference words and may exceed one."""
    assert wer("red green blue cat", "red green glue cat") == pytest.approx(0.25)
    assert wer("hello", "hello there my friend") == pytest.approx(3.0)


def test_empty_reference() -> None:
    """An empty reference scores 0 for silence and the inserted-word count otherwise."""
    assert wer("", "") == 0.0
    assert wer("", "thank you") == 2.0


@given(_WORDS, _WORDS)
def test_wer_is_symmetric_in_edit_count(a: list[str], b: list[str]) -> None:
    """The edit distance is symmetric and zero only for equal word lists."""
    ref, hyp = " ".join(a), " ".join(b)
    assert word_errors(ref, hyp) == word_errors(hyp, ref)
    assert (word_errors(ref, hyp) == 0) == (a == b)
    assert word_errors(ref, hyp) <= max(len(a), len(b))


def test_repeated_bigrams_counts_duplicated_phrase() -> None:
    """A phrase repeated at a window join counts once per duplicated pair."""
    ref = "bring the blue folder to the meeting tomorrow"
    hyp = "bring the blue folder to the meeting to the meeting tomorrow"
    assert repeated_bigrams(hyp, ref) == 2


def test_repeated_bigrams_counts_doubled_word() -> None:
    """A single doubled word counts as one repeated pair."""
    assert repeated_bigrams("the meeting meeting tomorrow", "the meeting tomorrow") == 1


def test_repeated_bigrams_ignores_misrecognitions() -> None:
    """Wrong words alone are not duplicates."""
    ref = "she sells seashells by the seashore"
    assert repeated_bigrams("she sells sea shells by the sea shore", ref) == 0
    assert repeated_bigrams(ref, ref) == 0


def test_repeated_bigrams_respects_reference_repeats() -> None:
    """Pairs the reference itself repeats are only counted beyond the reference's count."""
    ref = "very very good and very very good"
    assert repeated_bigrams(ref, ref) == 0
    assert repeated_bigrams("very very very good and very very good", ref) == 1


def test_a_word_missing_where_two_phrases_meet_is_lost_at_a_join() -> None:
    ref = "the teacher explained the lesson again because nobody understood it"
    phrases = ["the teacher explained the lesson", "because nobody understood it"]
    assert words_lost_at_joins(ref, phrases) == 1  # "again"


def test_a_word_missing_inside_a_phrase_is_not_lost_at_a_join() -> None:
    ref = "the teacher explained the lesson again because nobody understood it"
    phrases = ["the teacher the lesson again", "because nobody understood it"]
    assert words_lost_at_joins(ref, phrases) == 0  # "explained" is a model error, not a join


def test_misheard_words_at_a_join_are_not_lost() -> None:
    ref = "one two three four five six"
    assert words_lost_at_joins(ref, ["one two three", "for five six"]) == 0
    assert words_lost_at_joins(ref, ["one two three four five six"]) == 0


def test_words_the_offline_transcript_also_drops_are_not_lost_at_a_join() -> None:
    ref = "and here are some more words words words and that is all"
    phrases = ["and here are some more words", "and that is all"]
    assert words_lost_at_joins(ref, phrases) == 2
    assert (
        words_lost_at_joins(ref, phrases, offline="and here are some more words and that is all")
        == 0
    )


def test_style_differences_count_a_sentence_broken_at_a_join() -> None:
    """ "Ask not. What your" against the offline "Ask not what your": one word capitalised
    and one sentence end the offline transcript lacks; misheard words are not compared."""
    offline = "Ask not what your country can do for you."
    streamed = "Ask not. What your county can do for you."
    assert style_differences(offline, streamed) == {"case": 1, "sentence_ends": 1}
    assert style_differences(offline, offline) == {"case": 0, "sentence_ends": 0}


def test_errors_per_word_charges_each_error_to_the_reference_word_it_touches() -> None:
    """ "the cat sat" heard as "the bat sat down": the substitution on "cat", the insertion
    on "sat", the word before it."""
    assert errors_per_word("the cat sat", "the bat sat down") == [0, 1, 1]
    assert errors_per_word("", "hello") == [1]


@given(_WORDS, _WORDS)
def test_errors_per_word_sum_to_the_edit_distance(ref: list[str], hyp: list[str]) -> None:
    """Charged errors add up to ``word_errors``, one slot per reference word."""
    charged = errors_per_word(" ".join(ref), " ".join(hyp))
    assert sum(charged) == word_errors(" ".join(ref), " ".join(hyp))
    assert len(charged) == max(1, len(ref))
