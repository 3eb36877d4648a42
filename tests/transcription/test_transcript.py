"""Tests for transcription/transcript.py: the committed transcript."""

from __future__ import annotations

import json

import pytest

from tests.support.words import timeline
from transcription.inference.types import Word
from transcription.transcript import Transcript, has_repetition

# --- the transcript ---


def test_text_joins_words_with_single_spaces_and_attaches_bare_punctuation() -> None:
    """Words joined by one space; punctuation Whisper returned alone attaches to its word."""
    transcript = Transcript()
    transcript.commit([Word("Hello", 0, 300, 0.9), Word(",", 300, 310, 0.9)])
    transcript.commit([Word("world.", 400, 700, 0.9)])
    assert transcript.text == "Hello, world."
    assert transcript.char_count == len("Hello, world.")
    assert transcript.last_word_end_ms == 700


def test_json_round_trip_keeps_text_words_and_timeline() -> None:
    """to_json is JSON-safe and from_json restores an equal transcript."""
    transcript = Transcript.from_text("Earlier text.", 4000)
    transcript.commit([Word("Then", 4100, 4300, 0.75), Word("this.", 4400, 4800, 0.5)])
    data = json.loads(json.dumps(transcript.to_json()))
    assert data["words"][0] == {"text": "Then", "start": 4100, "end": 4300, "prob": 0.75}
    restored = Transcript.from_json(data)
    assert restored == transcript
    assert restored.text == "Earlier text. Then this."


def test_from_json_accepts_the_word_list_alone() -> None:
    """A checkpoint's word tail (no text) rebuilds a transcript of those words."""
    words = Transcript(timeline("a b c")).to_json()["words"]
    assert Transcript.from_json({"words": words}).text == "a b c"


@pytest.mark.parametrize(
    "item",
    [
        {"text": 1, "start": 0, "end": 1, "prob": 0.5},
        {"text": "a", "start": True, "end": 1, "prob": 0.5},
        {"text": "a", "start": 0, "end": 1, "prob": 2},
        {"text": "a", "start": 0, "end": 1},
    ],
)
def test_from_json_refuses_malformed_words(item: dict[str, object]) -> None:
    """Wrong types, out-of-range probabilities and missing fields raise."""
    with pytest.raises((KeyError, TypeError, ValueError)):
        Transcript.from_json({"words": [item]})


def test_from_text_is_one_committed_block_ending_at_end_ms() -> None:
    """A text-only checkpoint resumes as committed text with no words, ending at end_ms."""
    transcript = Transcript.from_text("Hello world.", 5000)
    assert (transcript.text, transcript.words, transcript.last_word_end_ms) == (
        "Hello world.",
        [],
        5000,
    )
    transcript.commit([Word("Again.", 5100, 5500, 0.9)])
    assert transcript.text == "Hello world. Again."


def test_from_text_and_tail_keeps_the_full_text_and_the_tail_for_the_merge() -> None:
    """Resuming with text plus its last words restores both; a tail that does not end the
    text is ignored."""
    full = "One two three four"
    tail = timeline("three four", start_ms=800)
    resumed = Transcript.from_text_and_tail(full, tail)
    assert (resumed.text, resumed.words) == (full, tail)
    mismatched = Transcript.from_text_and_tail(full, timeline("five six"))
    assert (mismatched.text, mismatched.words) == (full, [])


def test_tail_prompt_is_the_committed_tail_within_max_chars() -> None:
    """The prompt is the end of the committed text, cut at a word boundary."""
    transcript = Transcript.from_text("Once upon a time there was a river.", 3000)
    transcript.commit(timeline("It flowed north.", start_ms=3100))
    assert transcript.tail_prompt() == "Once upon a time there was a river. It flowed north."
    assert transcript.tail_prompt(max_chars=24) == "river. It flowed north."


def test_tail_prompt_holds_only_words_heard_before_the_window() -> None:
    """With before_ms, words inside the next window are left out of its prompt."""
    transcript = Transcript(timeline("one two three four"))  # "four" ends 1500
    assert transcript.tail_prompt(before_ms=1000) == "one two"


def test_tail_prompt_stops_at_a_long_pause() -> None:
    """Text from before a long pause never conditions the next window."""
    transcript = Transcript(timeline("before the pause"))
    transcript.commit(timeline("after it", start_ms=10_000))
    assert transcript.tail_prompt() == "after it"
    assert transcript.tail_prompt(before_ms=30_000) == ""
    assert Transcript.from_text("old text", 1000).tail_prompt(before_ms=9000) == ""


@pytest.mark.parametrize(
    "text",
    [
        "thank you thank you",
        "no no no",
        "and then we went home and then we went home",
        "the river is wide. I said the river is wide today",
    ],
)
def test_tail_prompt_is_dropped_when_the_tail_repeats_itself(text: str) -> None:
    """A tail holding a repetition loop is not fed back to Whisper."""
    assert has_repetition(text)
    assert Transcript(timeline(text)).tail_prompt() == ""


def test_ordinary_speech_is_not_taken_for_a_loop() -> None:
    """Natural repeats ("very very", a repeated word) keep the prompt."""
    text = "it is very very good and the river is good for the boats"
    assert not has_repetition(text)
    assert Transcript(timeline(text)).tail_prompt() == text


def test_a_committed_word_never_starts_before_the_word_committed_before_it() -> None:
    """Windows and interim passes are separate encodes whose word times drift: a word that
    comes back earlier than the last committed one is moved to its start, so the committed
    words stay one timeline."""
    transcript = Transcript([Word("a", 15_159, 15_289, 0.9), Word("new", 15_289, 15_729, 0.9)])
    committed = transcript.commit(
        [Word("bakery", 14_849, 15_369, 0.9), Word("on", 15_369, 15_539, 0.9)]
    )
    assert [(w.start_ms, w.end_ms) for w in committed] == [(15_289, 15_369), (15_369, 15_539)]
    assert transcript.words[-2:] == committed
