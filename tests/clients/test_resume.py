"""``openasr_client.resume``: which audio is re-sent and which phrases are not yielded twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openasr_client import Checkpoint, Phrase, ResumeError, ResumeState, Word

RATE = 16000
BPMS = RATE * 2 // 1000  # bytes per ms at 16 kHz


def checkpoint(ms: int) -> Checkpoint:
    raw = {"session_id": "s", "last_audio_ms": ms, "full_transcript": ""}
    return Checkpoint("s", ms, "", raw)


def phrase(*spans: tuple[str, int, int]) -> Phrase:
    words = tuple(Word(t, a, b - a, 0.9) for t, a, b in spans)
    return Phrase(
        "s", " ".join(w.text for w in words), spans[0][1], spans[-1][2] - spans[0][1], 0.9, words
    )


def test_without_checkpoint_everything_is_replayed() -> None:
    """Before the first checkpoint a reconnect must re-send the stream from its start."""
    state = ResumeState(RATE)
    state.record_sent(b"a" * 100)
    state.record_sent(b"b" * 100)
    assert state.replay() == b"a" * 100 + b"b" * 100


def test_checkpoint_trims_audio_before_last_audio_ms() -> None:
    """After a checkpoint only the audio from its last_audio_ms on is kept and replayed."""
    state = ResumeState(RATE)
    audio = bytes(range(256)) * (BPMS * 1000 // 256 + 1)
    audio = audio[: BPMS * 1000]
    for i in range(0, len(audio), 640):
        state.record_sent(audio[i : i + 640])
    state.on_checkpoint(checkpoint(300))
    assert state.replay() == audio[300 * BPMS :]
    assert state.unconfirmed_ms == 700
    assert state.checkpoint == {"session_id": "s", "last_audio_ms": 300, "full_transcript": ""}


@given(
    sizes=st.lists(st.integers(1, 2000).map(lambda n: n * 2), min_size=1, max_size=30),
    cp_frac=st.floats(0, 1),
)
def test_replay_is_always_the_stream_suffix_from_the_checkpoint(
    sizes: list[int], cp_frac: float
) -> None:
    """Any chunking and any checkpoint position: replay() is exactly stream[position:]."""
    stream = bytes(i % 251 for i in range(sum(sizes)))
    state = ResumeState(RATE)
    pos = 0
    for size in sizes:
        state.record_sent(stream[pos : pos + size])
        pos += size
    cp_ms = int(len(stream) // BPMS * cp_frac)
    state.on_checkpoint(checkpoint(cp_ms))
    assert state.replay() == stream[cp_ms * BPMS :]


def test_retention_is_bounded_and_overflow_fails_loudly() -> None:
    """Beyond the bound the oldest audio is dropped, and a resume then raises ResumeError."""
    state = ResumeState(RATE, max_retained_ms=1000)
    for _ in range(30):
        state.record_sent(b"\0" * (100 * BPMS))  # 3 s in 100 ms chunks
    with pytest.raises(ResumeError, match="2000 ms"):
        state.replay()
    state.on_checkpoint(checkpoint(2500))
    assert len(state.replay()) == 500 * BPMS


def test_reconnect_restarts_the_stream_at_the_checkpoint() -> None:
    """on_reconnected() moves the stream position back to the checkpoint for the re-send."""
    state = ResumeState(RATE)
    state.record_sent(b"\0" * (2000 * BPMS))
    state.on_checkpoint(checkpoint(1500))
    data = state.replay()
    state.on_reconnected()
    assert state.sent_ms == 1500
    state.record_sent(data)
    assert state.sent_ms == 2000 and state.replay() == data


def test_phrases_pass_through_without_a_reconnect() -> None:
    """Without a reconnect every phrase is yielded unchanged."""
    state = ResumeState(RATE)
    first = phrase(("a", 0, 400), ("b", 500, 900))
    assert state.filter_phrase(first) is first
    assert state.filter_phrase(first) is first  # duplicates are the server's business here


def test_after_reconnect_repeated_words_are_dropped_by_time() -> None:
    """After a reconnect, words whose centre lies before the last yielded end are dropped."""
    state = ResumeState(RATE)
    state.filter_phrase(phrase(("a", 0, 400), ("b", 500, 900)))
    state.on_reconnected()
    assert state.filter_phrase(phrase(("a", 60, 460), ("b", 580, 980))) is None
    trimmed = state.filter_phrase(phrase(("b", 560, 960), ("c", 1000, 1400)))
    assert trimmed is not None
    assert (trimmed.text, trimmed.offset, trimmed.duration) == ("c", 1000, 400)
    assert [w.text for w in trimmed.words] == ["c"]
    again = phrase(("a", 0, 400))
    assert state.filter_phrase(again) is again  # suppression ends after the first new phrase


def test_after_reconnect_seed_phrases_without_words_use_their_span() -> None:
    """Without word times, a re-sent phrase is dropped when its middle was already yielded."""
    state = ResumeState(RATE)
    state.filter_phrase(Phrase("s", "one two", 0, 2000))
    state.on_reconnected()
    assert state.filter_phrase(Phrase("s", "one two", 100, 1900)) is None
    new = Phrase("s", "three", 2100, 800)
    assert state.filter_phrase(new) is new
