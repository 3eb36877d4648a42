from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from transcription.inference.words import RawToken, build_segment, read_segments

EOT = 50256


def tok(
    text: str | bytes, t0: int, t1: int, p: float = 0.9, id: int = 1, t_dtw: int = -1
) -> RawToken:
    data = text.encode() if isinstance(text, str) else text
    return RawToken(id=id, text=data, t0=t0, t1=t1, p=p, t_dtw=t_dtw)


def special(t0: int = 0) -> RawToken:
    return RawToken(id=EOT + 5, text=b"[_TT_50]", t0=t0, t1=t0, p=1.0)


@dataclass
class FakeReader:
    segments: list[tuple[int, int, list[RawToken]]]
    no_speech: list[float] = field(default_factory=list)

    def eot(self) -> int:
        return EOT

    def n_segments(self) -> int:
        return len(self.segments)

    def segment_span(self, i: int) -> tuple[int, int]:
        return self.segments[i][0], self.segments[i][1]

    def n_tokens(self, i: int) -> int:
        return len(self.segments[i][2])

    def token(self, i: int, j: int) -> RawToken:
        return self.segments[i][2][j]

    def no_speech_prob(self, i: int) -> float:
        return self.no_speech[i] if self.no_speech else 0.0


def test_tokens_with_leading_space_start_words_and_punctuation_stays_attached() -> None:
    """A token starting with a space starts a word; punctuation joins the word before it."""
    tokens = [
        special(),
        tok(" Hello", 0, 40),
        tok(",", 40, 45),
        tok(" wor", 50, 70),
        tok("ld", 70, 90),
        tok(".", 90, 95),
        special(95),
    ]
    seg = build_segment(tokens, start_ms=0, end_ms=1000, eot=EOT, audio_ms=5000)
    assert seg is not None
    assert [w.text for w in seg.words] == ["Hello,", "world."]
    assert seg.text == "Hello, world."


@pytest.mark.parametrize(
    "tokens",
    [
        [tok(" a", 10, 20), tok("b", 20, 30), tok(" c", 35, 50)],  # DTW off
        [tok(" a", 10, 20, t_dtw=30), tok(" b", 35, 50)],  # a word DTW skipped
    ],
    ids=["dtw-off", "dtw-skipped-word"],
)
def test_word_times_come_from_token_times_in_10ms_units(tokens: list[RawToken]) -> None:
    """Without a t_dtw a word spans its first token's t0 to its last token's t1, times 10 ms:
    with DTW off, and for a word DTW skipped (here after "a", which ends at its t_dtw)."""
    seg = build_segment(tokens, start_ms=0, end_ms=1000, eot=EOT, audio_ms=5000)
    assert seg is not None
    assert [(w.start_ms, w.end_ms) for w in seg.words] == [(100, 300), (350, 500)]


def test_dtw_times_end_each_word_and_the_next_word_starts_there() -> None:
    """With DTW token times a word ends at its last spoken token's t_dtw (punctuation's late
    t_dtw ignored) and starts where the word before it ended; the first keeps its t0."""
    seg = build_segment(
        [
            special(),
            tok(" The", 18, 24, t_dtw=40),
            tok(" hos", 24, 60, t_dtw=70),
            tok("pital", 60, 87, t_dtw=95),
            tok(",", 87, 87, t_dtw=180),
            tok(" has", 87, 111, t_dtw=130),
            special(111),
        ],
        start_ms=0,
        end_ms=2000,
        eot=EOT,
        audio_ms=5000,
    )
    assert seg is not None
    assert [(w.text, w.start_ms, w.end_ms) for w in seg.words] == [
        ("The", 180, 400),
        ("hospital,", 400, 950),
        ("has", 950, 1300),
    ]


def test_word_probability_is_mean_of_token_probabilities() -> None:
    """A word's probability is the mean of its tokens' p."""
    seg = build_segment(
        [tok(" ab", 0, 1, p=0.5), tok("c", 1, 2, p=1.0)],
        start_ms=0,
        end_ms=100,
        eot=EOT,
        audio_ms=5000,
    )
    assert seg is not None
    assert seg.words[0].probability == pytest.approx(0.75)


def test_times_are_made_monotone_and_clamped_to_the_segment() -> None:
    """Overlapping or out-of-range token times give a monotone timeline inside the segment."""
    tokens = [tok(" one", 5, 60), tok(" two", 40, 50), tok(" three", 200, 400)]
    seg = build_segment(tokens, start_ms=100, end_ms=1500, eot=EOT, audio_ms=5000)
    assert seg is not None
    spans = [(w.start_ms, w.end_ms) for w in seg.words]
    assert spans == [(100, 600), (600, 600), (1500, 1500)]


def test_segment_end_is_clamped_to_the_audio_length() -> None:
    """A segment reported past the end of the audio is cut at the audio's end."""
    seg = build_segment([tok(" hi", 0, 3000)], start_ms=0, end_ms=30000, eot=EOT, audio_ms=2000)
    assert seg is not None
    assert seg.end_ms == 2000 and seg.words[0].end_ms == 2000


def test_unknown_token_times_fall_back_to_the_previous_word_end() -> None:
    """Tokens with t0/t1 of -1 get times from the word before them."""
    seg = build_segment(
        [tok(" a", 10, 20), tok(" b", -1, -1)], start_ms=0, end_ms=1000, eot=EOT, audio_ms=5000
    )
    assert seg is not None
    assert (seg.words[1].start_ms, seg.words[1].end_ms) == (200, 200)


def test_multibyte_character_split_across_tokens_decodes_whole() -> None:
    """UTF-8 bytes split over two tokens are joined before decoding."""
    e_acute = "é".encode()
    seg = build_segment(
        [tok(b" caf" + e_acute[:1], 0, 10), tok(e_acute[1:], 10, 20)],
        start_ms=0,
        end_ms=1000,
        eot=EOT,
        audio_ms=5000,
    )
    assert seg is not None
    assert seg.text == "café"


def test_segment_of_only_special_tokens_is_none() -> None:
    """A segment without text tokens produces no Segment."""
    assert (
        build_segment([special(), special(10)], start_ms=0, end_ms=100, eot=EOT, audio_ms=5000)
        is None
    )


def test_read_segments_reads_every_segment_with_its_no_speech_probability() -> None:
    """read_segments converts each reader segment and carries no_speech_prob."""
    reader = FakeReader(
        segments=[(0, 100, [tok(" first", 0, 100)]), (100, 200, [tok(" second", 100, 200)])],
        no_speech=[0.1, 0.2],
    )
    segments = read_segments(reader, audio_ms=5000)
    assert [(s.text, s.start_ms, s.end_ms, s.no_speech_prob) for s in segments] == [
        ("first", 0, 1000, pytest.approx(0.1)),
        ("second", 1000, 2000, pytest.approx(0.2)),
    ]
