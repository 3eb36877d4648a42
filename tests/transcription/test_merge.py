"""Tests for transcription/merge.py: which words of a new window are new."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.support.words import timeline
from transcription.inference.types import Word
from transcription.merge import merge
from transcription.transcript import normalize

VOCABULARY = (
    "might be prudently to consider whether the river crossing should wait until morning "
    "because travellers often underestimate how quickly weather changes across open water "
    "while local guides recommend patience careful planning and sturdy boots for every "
    "journey north beyond village bridges mountains forests"
).split()


def shifted(words: Sequence[Word], offset_ms: int) -> list[Word]:
    return [w.shifted(offset_ms) for w in words]


def texts(words: Sequence[Word]) -> list[str]:
    return [w.text for w in words]


def merge_window(committed: Sequence[Word], new: Sequence[Word], start_ms: int) -> list[Word]:
    end_ms = max((w.end_ms for w in committed), default=0)
    return merge(committed, new, overlap_start_ms=start_ms, overlap_end_ms=end_ms)


# --- merge on hand-made timelines ---


def test_overlap_with_agreement_emits_only_the_words_after_the_committed_tail() -> None:
    """Words the window heard again in the overlap are dropped; the rest is new."""
    truth = timeline("might be prudently to consider whether")
    committed = truth[:3]  # "might be prudently", ends 1100
    window = truth[1:]  # the window starts in the overlap, at "be"
    assert texts(merge_window(committed, window, 400)) == ["to", "consider", "whether"]


def test_committed_words_win_when_the_window_disagrees_in_the_overlap() -> None:
    """A different reading of committed words in the overlap is never emitted."""
    committed = timeline("the cat sat on the")
    window = [
        Word("cats", 420, 700, 0.8),
        Word("at", 800, 1100, 0.8),
        Word("on", 1200, 1500, 0.9),
        Word("a", 1600, 1900, 0.9),
        Word("mat", 2000, 2300, 0.9),
    ]
    assert texts(merge_window(committed, window, 400)) == ["mat"]


def test_a_disagreeing_last_committed_word_consumes_its_counterpart() -> None:
    """Committed "the" heard again as "a" is not emitted as an extra word."""
    committed = timeline("we sat on the")
    window = shifted(timeline("sat on a mat"), 400)
    assert texts(merge_window(committed, window, 400)) == ["mat"]


def test_a_word_straddling_the_window_start_comes_back_partial_and_is_dropped() -> None:
    """The window's first word, a fragment of a committed word, is not emitted."""
    committed = timeline("might be prudently")  # "prudently" 800-1100
    window = [
        Word("ently", 950, 1100, 0.4),
        Word("to", 1200, 1500, 0.9),
        Word("consider", 1600, 1900, 0.9),
    ]
    assert texts(merge_window(committed, window, 950)) == ["to", "consider"]


def test_a_fragment_committed_before_is_matched_by_the_whole_word() -> None:
    """A cut word that slipped through as a fragment is not followed by its whole form."""
    committed = [*timeline("might be"), Word("pru", 800, 1000, 0.3)]
    window = shifted(timeline("be prudently to"), 400)
    assert texts(merge_window(committed, window, 400)) == ["to"]


@pytest.mark.parametrize("jitter_ms", [-300, -150, 150, 300])
def test_timestamp_jitter_of_300_ms_neither_repeats_nor_loses_a_word(jitter_ms: int) -> None:
    """The same words reported up to 300 ms earlier or later still align."""
    truth = timeline("might be prudently to consider whether", word_ms=200, gap_ms=50)
    committed = truth[:4]
    window = shifted(truth[2:], jitter_ms)
    assert texts(merge_window(committed, window, 500)) == ["consider", "whether"]


def test_repeated_words_align_on_the_longest_agreeing_run() -> None:
    """With "very very" at the join, the committed "is very" anchors the second "very"."""
    truth = timeline("it is very very good")
    committed = truth[:3]  # "it is very"
    window = truth[1:]
    assert texts(merge_window(committed, window, 400)) == ["very", "good"]


def test_an_empty_window_adds_nothing() -> None:
    """No words in, no words out."""
    assert merge_window(timeline("hello world"), [], 0) == []


def test_the_first_window_keeps_everything() -> None:
    """With nothing committed, every word of the window is new."""
    words = timeline("hello world")
    assert merge([], words, overlap_start_ms=0, overlap_end_ms=0) == words


def test_a_window_that_only_repeats_the_committed_tail_adds_nothing() -> None:
    """A window covering only committed speech (times jittered) emits nothing."""
    committed = timeline("thank you for listening")
    assert merge_window(committed, shifted(committed, 120), 0) == []


def test_a_window_echoing_the_committed_tail_as_new_speech_drops_the_echo() -> None:
    """Whisper writing its prompt again at the window start does not repeat it."""
    committed = timeline("and that is the end of the story")  # ends 3100
    echo = timeline("end of the story and then", start_ms=5000)
    assert texts(merge_window(committed, echo, 4800)) == ["and", "then"]


def test_a_window_after_the_committed_tail_keeps_a_jittered_first_word() -> None:
    """When no committed word reaches into the window, nothing in it is taken for old."""
    committed = timeline("hello there")  # ends 700
    window = [Word("general", 1050, 1400, 0.9)]  # starts before its window (jitter)
    assert texts(merge(committed, window, overlap_start_ms=1200, overlap_end_ms=700)) == ["general"]


def test_a_window_starting_in_a_pause_after_the_committed_tail_has_no_old_words() -> None:
    """After a cut in a pause, a first word Whisper places on the committed tail's last words
    ("the" of "… leave the office tonight.") is still new speech."""
    committed = timeline("leave the office tonight.")  # "the" 400-700, ends 1500
    window = [Word("The", 1500, 1880, 0.9), Word("museum", 2580, 2640, 0.9)]
    merged = merge(committed, window, overlap_start_ms=1510, overlap_end_ms=1500, heard_again=False)
    assert texts(merged) == ["The", "museum"]


def test_a_window_starting_in_a_pause_still_drops_a_prompt_echo() -> None:
    """Whisper writing its prompt again after a pause is not new speech."""
    committed = timeline("and that is the end of the story")  # ends 3100
    echo = timeline("end of the story and then", start_ms=3200)
    merged = merge(committed, echo, overlap_start_ms=3200, overlap_end_ms=3100, heard_again=False)
    assert texts(merged) == ["and", "then"]


def test_equal_joins_call_as_many_words_old_as_the_overlap_holds() -> None:
    """After "… corpus. I", a window hearing "I have a cold so I probably" with times 400 ms
    off has two "I" as close as each other; joining at the second would drop "have a cold so"."""
    committed = [Word("corpus.", 2850, 4230, 0.9), Word("I", 4230, 4300, 0.9)]
    window = [
        Word("I", 3810, 3860, 0.9),
        Word("have", 3860, 4100, 0.9),
        Word("a", 4100, 4160, 0.9),
        Word("cold", 4160, 4400, 0.9),
        Word("so", 4400, 4520, 0.9),
        Word("I", 4520, 4580, 0.9),
        Word("probably", 4580, 5050, 0.9),
    ]
    assert texts(merge_window(committed, window, 3800)) == [
        "have",
        "a",
        "cold",
        "so",
        "I",
        "probably",
    ]


def test_without_an_agreeing_word_time_decides() -> None:
    """A window that agrees on no word keeps only the words centred after the committed end."""
    committed = timeline("alpha beta gamma")  # ends 1100
    window = [Word("delta", 500, 900, 0.5), Word("epsilon", 1200, 1500, 0.9)]
    assert texts(merge_window(committed, window, 400)) == ["epsilon"]


def test_words_held_back_by_the_last_window_start_the_new_ones_when_times_disagree() -> None:
    """A window cut mid-speech held "including" back; the next window, starting inside the
    committed tail, hears its start as "and" and squeezes its times a second early. Nothing
    agrees with the committed tail, and time alone would call "including separating the" old:
    the held-back word, found again by its text, starts the new words."""
    committed = timeline("infection control", start_ms=2700, word_ms=700)  # ends 4100
    held_back = [Word("including", 4350, 4920, 0.8)]
    window = timeline("and including separating the patient from others", start_ms=3000)
    fresh = merge(committed, window, overlap_start_ms=3000, overlap_end_ms=4100, pending=held_back)
    assert texts(fresh) == "including separating the patient from others".split()
    without = merge(committed, window, overlap_start_ms=3000, overlap_end_ms=4100)
    assert texts(without) == "the patient from others".split()


def test_a_held_back_word_heard_twice_starts_the_new_words_once() -> None:
    """The last window of a stream heard "All right, thanks." as "Thanks. Thanks.": the
    held-back "thanks" anchors on its last repeat, so it is sent once."""
    committed = timeline("good all right", start_ms=2000)  # ends 2300 + 800 = 3100
    held_back = [Word("thanks.", 3100, 3700, 0.8)]
    window = [Word("Thanks.", 2000, 4000, 0.5), Word("Thanks.", 4000, 4000, 0.5)]
    fresh = merge(committed, window, overlap_start_ms=2000, overlap_end_ms=3100, pending=held_back)
    assert texts(fresh) == ["Thanks."]


def test_a_short_held_back_word_alone_is_no_anchor() -> None:
    """A lone held-back word under four letters ("the") occurs anywhere: time decides."""
    committed = timeline("alpha beta gamma")  # ends 1100
    window = [Word("the", 500, 700, 0.5), Word("delta", 800, 1000, 0.5)]
    window.append(Word("epsilon", 1200, 1500, 0.9))
    held_back = [Word("the", 1200, 1300, 0.8)]
    fresh = merge(committed, window, overlap_start_ms=400, overlap_end_ms=1100, pending=held_back)
    assert texts(fresh) == ["epsilon"]


def test_annotations_on_silence_and_noise_never_become_text() -> None:
    """[BLANK_AUDIO], (water running) and music notes are dropped."""
    window = [
        Word("[BLANK_AUDIO]", 0, 900, 0.9),
        Word("(water", 1000, 1200, 0.5),
        Word("running)", 1200, 1500, 0.5),
        Word("♪", 1600, 1700, 0.5),
        Word("hi", 1800, 1900, 0.9),
    ]
    assert texts(merge([], window, overlap_start_ms=0, overlap_end_ms=0)) == ["hi"]


# --- merge properties ---


@st.composite
def overlapping_windows(draw: st.DrawFn) -> tuple[list[Word], list[Word], int, list[str], bool]:
    """A committed timeline and a window re-hearing its end, with jitter and misreadings.

    The last item says whether the window heard the last committed word as it was committed.
    """
    tokens = draw(st.lists(st.sampled_from(VOCABULARY), min_size=2, max_size=20, unique=True))
    truth = timeline(" ".join(tokens), word_ms=draw(st.integers(150, 600)))
    split = draw(st.integers(1, len(truth) - 1))
    back = draw(st.integers(0, split))
    start_ms = truth[split - back].start_ms - 100
    committed = truth[:split]
    window = []
    anchor_heard = back > 0
    for i, word in enumerate(truth[split - back :]):
        jitter = draw(st.integers(-300, 300))
        text = word.text
        if i < back and draw(st.booleans()):
            text = draw(st.sampled_from(["uh", "a", text[: len(text) // 2] or "x", text + "s"]))
            anchor_heard = anchor_heard and i < back - 1
        # Whisper never places a word before the start of the audio it was given.
        start, end = max(start_ms, word.start_ms + jitter), max(start_ms, word.end_ms + jitter)
        window.append(Word(text, start, end, 0.8))
    return committed, window, start_ms, tokens[split:], anchor_heard


@settings(max_examples=300, deadline=None)
@given(overlapping_windows())
def test_merging_windows_never_repeats_a_committed_word(
    case: tuple[list[Word], list[Word], int, list[str], bool],
) -> None:
    """Whatever the window heard in the overlap, no committed word comes back."""
    committed, window, start_ms, _, _ = case
    committed_words = {normalize(w.text) for w in committed}
    fresh = merge_window(committed, window, start_ms)
    assert not committed_words & {normalize(w.text) for w in fresh}


@settings(max_examples=300, deadline=None)
@given(overlapping_windows())
def test_merging_a_window_that_re_hears_the_last_committed_word_loses_nothing(
    case: tuple[list[Word], list[Word], int, list[str], bool],
) -> None:
    """When the window agrees on the last committed word, every later word comes out once."""
    committed, window, start_ms, after, anchor_heard = case
    assume(anchor_heard)
    fresh = texts(merge_window(committed, window, start_ms))
    assert fresh == after
