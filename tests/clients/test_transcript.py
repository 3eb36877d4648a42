"""``openasr_client.transcript``: Transcript from events; text, JSON, SRT and WebVTT output."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from openasr_client import EndOfStream, Hypothesis, Phrase, Transcript, Word, render
from openasr_client.transcript import MAX_CUE_CHARS, cues, to_srt, to_vtt

from tests.clients.subtitles import assert_monotone, parse_srt, parse_vtt


def make_phrase(text: str, offset: int, word_ms: int = 400) -> Phrase:
    words = tuple(
        Word(t, offset + i * word_ms, word_ms - 50, 0.9) for i, t in enumerate(text.split())
    )
    return Phrase("s", text, offset, len(words) * word_ms - 50, 0.9, words)


PHRASES = [
    make_phrase("Hello there, this is a test.", 300),
    make_phrase("Fish & chips <b>cost</b> less.", 4000),
    make_phrase("Short.", 6500),
]


def test_transcript_from_events_uses_phrases_and_final_text() -> None:
    """Phrases (not hypotheses) make the transcript; EndOfStream's text is the full text."""
    events = [
        Hypothesis("s", "Hello there", 300, 800),
        *PHRASES,
        EndOfStream("s", "Hello there, this is a test. Fish & chips cost less. Short.", 0, 7000),
    ]
    transcript = Transcript.from_events(events)
    assert len(transcript.phrases) == 3
    assert transcript.text.startswith("Hello there, this is a test.")
    assert transcript.words[0] == Word("Hello", 300, 350, 0.9)
    assert transcript.duration_ms == 7000 and transcript.session_id == "s"


def test_text_falls_back_to_joined_phrases() -> None:
    """Without EndOfStream (a seed server that died) the text is the phrases joined."""
    transcript = Transcript.from_events(PHRASES[:2])
    assert transcript.text == "Hello there, this is a test. Fish & chips <b>cost</b> less."


def test_json_round_trips_phrases_and_words() -> None:
    """The JSON format has text, phrases and their words with ms times."""
    data = json.loads(render(Transcript.from_events(PHRASES), "json"))
    assert data["phrases"][0]["words"][0] == {
        "text": "Hello",
        "offset": 300,
        "duration": 350,
        "confidence": 0.9,
    }
    assert [p["offset"] for p in data["phrases"]] == [300, 4000, 6500]


def test_srt_is_parseable_numbered_and_monotone() -> None:
    """SRT cues are numbered from 1 with HH:MM:SS,mmm times that never go backwards."""
    srt = to_srt(Transcript.from_events(PHRASES))
    parsed = parse_srt(srt)
    assert_monotone(parsed)
    assert parsed[0][:2] == (300, 300 + 6 * 400 - 50)
    assert srt.startswith("1\n00:00:00,300 --> 00:00:02,650\nHello there, this is a test.\n")


def test_vtt_escapes_markup_and_is_monotone() -> None:
    """WebVTT has the header, HH:MM:SS.mmm times, and & < > escaped in cue text."""
    vtt = to_vtt(Transcript.from_events(PHRASES))
    parsed = parse_vtt(vtt)
    assert_monotone(parsed)
    assert "Fish &amp; chips &lt;b&gt;cost&lt;/b&gt; less." in vtt
    assert "00:00:04.000 --> " in vtt


def test_overlapping_and_tiny_phrases_become_monotone_cues() -> None:
    """Phrases that overlap or last 0 ms still give strictly ordered, non-overlapping cues."""
    phrases = [
        Phrase("s", "a", 1000, 0),
        Phrase("s", "b", 900, 300),
        Phrase("s", "c", 1100, 50),
        Phrase("s", "d", 5000, 100),
    ]
    out = cues(phrases)
    assert_monotone([(c.start, c.end, c.text) for c in out])
    assert out[-1].start == 5000 and out[-1].end == 5500  # stretched to the minimum


def test_long_phrase_is_split_at_word_boundaries() -> None:
    """A phrase longer than two subtitle lines is split into cues by its word times."""
    long = make_phrase(" ".join(f"word{i}" for i in range(40)), 0)
    out = cues([long])
    assert len(out) > 1
    assert all(len(c.text) <= MAX_CUE_CHARS for c in out)
    assert " ".join(c.text for c in out) == long.text
    assert_monotone([(c.start, c.end, c.text) for c in out])
    lines = to_srt(Transcript("", (long,))).split("\n\n")[0].split("\n")[2:]
    assert len(lines) == 2 and all(len(line) <= MAX_CUE_CHARS // 2 + 10 for line in lines)


@given(
    st.lists(
        st.tuples(st.integers(0, 100_000), st.integers(0, 20_000), st.text(min_size=1)),
        max_size=25,
    )
)
def test_any_phrases_give_parseable_monotone_subtitles(
    spans: list[tuple[int, int, str]],
) -> None:
    """Any phrase times and texts: SRT and WebVTT parse and their cues are monotone."""
    phrases = tuple(Phrase("s", text, offset, duration) for offset, duration, text in spans)
    transcript = Transcript("", phrases)
    srt, vtt = parse_srt(to_srt(transcript)), parse_vtt(to_vtt(transcript))
    assert_monotone(srt)
    assert_monotone(vtt)
    assert len(srt) == len(vtt) == len([p for p in phrases if p.text.strip()])
