from __future__ import annotations

import pytest

from transcription.inference.filters import (
    FilterConfig,
    collapse_repeats,
    compression_ratio,
    filter_segments,
    is_non_speech,
    strip_bracketed_words,
)
from transcription.inference.types import Segment, Word


def seg(text: str, *, p: float = 0.9, no_speech: float = 0.0) -> Segment:
    words = tuple(Word(w, i * 300, i * 300 + 250, p) for i, w in enumerate(text.split()))
    end = words[-1].end_ms if words else 0
    return Segment(text=text, start_ms=0, end_ms=end, words=words, no_speech_prob=no_speech)


@pytest.mark.parametrize(
    "text",
    [
        "[BLANK_AUDIO]",
        "(water running)",
        "[Music]",
        "(silence)",
        "*laughs*",
        "♪",
        "♪ la la ♪",
        "[Music] (applause)",
        "",
        "   ",
        "...",
        " - ",
    ],
)
def test_blank_and_bracketed_outputs_are_non_speech(text: str) -> None:
    """Blank text, punctuation and text wholly in brackets, parentheses or stars is non-speech."""
    assert is_non_speech(text)


@pytest.mark.parametrize("text", ["Hello.", "I said (quietly) hello", "[x] marks the spot"])
def test_text_with_words_outside_brackets_is_speech(text: str) -> None:
    """Text with any word outside brackets is kept as speech."""
    assert not is_non_speech(text)


def test_filter_drops_bracketed_segments_and_keeps_speech() -> None:
    """filter_segments drops sound descriptions and keeps normal speech."""
    segments = [seg("[BLANK_AUDIO]"), seg("Hello there."), seg("(water running)")]
    assert [s.text for s in filter_segments(segments)] == ["Hello there."]


def test_bracketed_words_inside_speech_are_removed_from_the_timeline() -> None:
    """A sound description among words is cut out of words and text."""
    out = strip_bracketed_words(seg("Hello (door closes) world [Music]"))
    assert out.text == "Hello world"
    assert [w.text for w in out.words] == ["Hello", "world"]


def test_unclosed_bracket_keeps_its_words() -> None:
    """An opening bracket that never closes removes nothing."""
    original = seg("and (then we left")
    assert strip_bracketed_words(original) == original


def test_high_no_speech_with_low_word_probability_is_dropped() -> None:
    """no_speech_prob above the threshold with unsure words drops the segment."""
    assert filter_segments([seg("Thank you.", p=0.3, no_speech=0.9)]) == []


def test_high_no_speech_with_confident_words_is_kept() -> None:
    """no_speech_prob alone does not drop a segment whisper was sure of."""
    assert len(filter_segments([seg("Thank you.", p=0.95, no_speech=0.9)])) == 1


def test_low_probability_with_low_no_speech_is_kept() -> None:
    """Unsure words in audio that whisper thinks is speech are kept."""
    assert len(filter_segments([seg("mumbled words", p=0.2, no_speech=0.1)])) == 1


def test_no_speech_threshold_is_configurable() -> None:
    """A higher no_speech_threshold keeps what the default would drop."""
    config = FilterConfig(no_speech_threshold=0.95)
    assert len(filter_segments([seg("Thank you.", p=0.3, no_speech=0.9)], config)) == 1


def test_repetition_loop_with_high_compression_ratio_is_dropped() -> None:
    """A segment whose gzip compression ratio exceeds 2.4 is dropped."""
    loop = " ".join(["I'm going to the store and"] * 8)
    assert compression_ratio(loop) > 2.4
    assert filter_segments([seg(loop)]) == []


def test_normal_sentence_has_low_compression_ratio() -> None:
    """Ordinary text stays well under the compression threshold."""
    text = "Please remember to bring the blue folder to the meeting tomorrow morning."
    assert compression_ratio(text) < 2.0
    assert len(filter_segments([seg(text)])) == 1


def test_word_repeated_four_times_collapses_to_one() -> None:
    """A word repeated four or more times in a row collapses to its first occurrence."""
    out = collapse_repeats(seg("I the the the the went home"))
    assert out.text == "I the went home"
    assert [w.start_ms for w in out.words] == [0, 300, 1500, 1800]


def test_repeats_compare_case_and_punctuation_insensitively() -> None:
    """ "No, no, no, no." counts as one word repeated four times."""
    assert collapse_repeats(seg("No, no, no, no. Stop")).text == "No, Stop"


def test_three_repeats_are_kept() -> None:
    """Three in a row is plausible speech and is left alone."""
    original = seg("very very very good")
    assert collapse_repeats(original) == original


def test_repeat_limit_is_configurable() -> None:
    """max_repeats=3 collapses a run of three."""
    out = filter_segments([seg("very very very good")], FilterConfig(max_repeats=3))
    assert out[0].text == "very good"


def test_segments_without_words_are_filtered_by_text() -> None:
    """A word-less segment is kept or dropped by its text alone."""
    blank = Segment(text="[BLANK_AUDIO]", start_ms=0, end_ms=1000)
    speech = Segment(text="hello", start_ms=0, end_ms=1000)
    assert filter_segments([blank, speech]) == [speech]


def test_a_segment_repeating_the_end_of_the_previous_one_is_dropped() -> None:
    """Whisper's whole-sentence loop ("… the station." twice) keeps only the first copy."""
    first = Segment("a lighter color. The train leaves from the station.", 0, 4000)
    again = Segment("The train leaves from the station.", 4000, 6000)
    other = Segment("The train leaves at noon.", 6000, 8000)
    assert [s.text for s in filter_segments([first, again, other])] == [first.text, other.text]
