"""Tests for transcription/casing.py: the first word after a window join continues the
sentence case of the committed transcript, and a window cut at a short pause does not close a
sentence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transcription.casing import SENTENCE_PAUSE_MS, continue_case, continue_sentence
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


def closed(texts: list[str], pause_ms: int | None, heard: str = "") -> list[str]:
    """``texts`` (a window cut at a pause) as committed, ``heard`` the words of an interim pass
    over the same audio start, timed a second later (pass and window times drift apart)."""
    passed = [Word(t, 1000 + 300 * i, 1250 + 300 * i, 0.9) for i, t in enumerate(heard.split())]
    return [x.text for x in continue_sentence([w(t) for t in texts], pause_ms, passed)]


def test_a_short_pause_takes_back_the_period_whisper_put_at_the_cut() -> None:
    """ "terrible news. | and great sadness": a 200 ms breath is no sentence end, so "news."
    reads "news" and the next window's "And" is written "and" (continue_case)."""
    assert closed(["terrible", "news."], 200) == ["terrible", "news"]
    assert closed(["terrible", "news", "."], 200) == ["terrible", "news"]
    assert first("news", "And") == "and"


def test_a_long_or_unknown_pause_keeps_the_period() -> None:
    """A pause of SENTENCE_PAUSE_MS or more may end the sentence; a pause still going on when
    the window's result comes back (None) is not known to be short."""
    assert closed(["news."], SENTENCE_PAUSE_MS) == ["news."]
    assert closed(["news."], None) == ["news."]


def test_questions_exclamations_ellipses_and_abbreviations_stay() -> None:
    """Only a plain period is taken back: "?", "!", "..." and "Dr." or "U.S." stay."""
    for text in ("why?", "now!", "well...", "Dr.", "U.S.", "I.", 'said."'):
        assert closed(["so", text], 100) == ["so", text]


def test_a_pass_that_heard_the_sentence_go_on_takes_the_period_back_whatever_the_pause() -> None:
    """ "terrible news. | and great sadness" after a pause of a second: an interim pass that
    heard past the cut wrote "news and great", so the period goes; its comma replaces it
    ("My fellow Americans, this day")."""
    assert closed(["terrible", "news."], 1000, "terrible news and great") == ["terrible", "news"]
    assert closed(["terrible", "news."], None, "terrible news and great") == ["terrible", "news"]
    assert closed(["fellow", "Americans."], 1000, "fellow Americans, this") == [
        "fellow",
        "Americans,",
    ]
    assert closed(["news", "."], 1000, "news, and") == ["news,"]


def test_a_pass_that_heard_a_sentence_end_keeps_the_period_after_a_breath() -> None:
    """ "grieving families. | May God": the pass ends the sentence there too, so a 200 ms pause
    does not take the period back."""
    assert closed(["grieving", "families."], 200, "grieving families. May God") == [
        "grieving",
        "families.",
    ]
    assert closed(["families."], 200, "families . May") == ["families."]


def test_a_pass_that_stopped_at_the_word_or_heard_other_words_says_nothing() -> None:
    """A pass that ends at the window's last word put its period where its audio stopped, and
    one whose words do not contain that word cannot be read: the pause decides."""
    assert closed(["terrible", "news."], 200, "terrible news.") == ["terrible", "news"]
    assert closed(["terrible", "news."], 1000, "terrible news.") == ["terrible", "news."]
    assert closed(["terrible", "news."], 1000, "horrible noise and great") == [
        "terrible",
        "news.",
    ]


@given(
    st.lists(st.text(max_size=8), max_size=5),
    st.integers(0, 2000) | st.none(),
    st.lists(st.text(max_size=8), max_size=6),
)
def test_continue_sentence_never_changes_a_spoken_word(
    texts: list[str], pause: int | None, heard: list[str]
) -> None:
    """Only punctuation ever goes: the WER normaliser sees the same words."""
    passed = [Word(t, 100 * i, 100 * i + 90, 0.9) for i, t in enumerate(heard)]
    out = continue_sentence([w(t) for t in texts], pause, passed)
    spoken = [normalize(t) for t in texts if normalize(t)]
    assert [normalize(x.text) for x in out if normalize(x.text)] == spoken
