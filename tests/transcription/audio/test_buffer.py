"""Tests for transcription/audio/buffer.py (docs/PROTOCOL.md "Flow control and limits")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transcription.audio.buffer import AudioBuffer
from transcription.audio.vad import FRAME_SAMPLES

RATE_HZ = 16000
FRAME_MS = 32
LOUD = 0.5


class LevelVad:
    """A scripted detector for exact tests: a frame is speech when its mean |x| is loud."""

    threshold = 0.5

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate((self._pending, samples))
        n = len(data) // FRAME_SAMPLES
        self._pending = data[n * FRAME_SAMPLES :]
        frames = data[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        return (np.abs(frames).mean(axis=1) > LOUD / 2).astype(np.float32)

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)


def _layout(*parts: tuple[str, int]) -> np.ndarray:
    """Audio made of ("s", frames) speech and ("p", frames) pause parts, frame-aligned."""
    return np.concatenate(
        [np.full(n * FRAME_SAMPLES, LOUD if kind == "s" else 0.0, np.float32) for kind, n in parts]
    )


def _ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 1000 / 1000).astype(np.float32)


# --- capacity and timeline ---


def test_push_accepts_up_to_capacity_and_refuses_the_rest() -> None:
    """Samples beyond capacity_ms are refused (not stored) and the count accepted is returned."""
    buffer = AudioBuffer(capacity_ms=1000)
    assert buffer.push(_ramp(10000)) == 10000
    assert buffer.push(_ramp(10000, 10000)) == 6000
    assert buffer.push(_ramp(5)) == 0
    assert buffer.buffered_ms == 1000 and buffer.fill_ratio == 1.0
    np.testing.assert_array_equal(buffer.window(0, 1000), _ramp(16000))


def test_release_makes_room_again() -> None:
    """After a release the freed capacity accepts new samples, which continue the timeline."""
    buffer = AudioBuffer(capacity_ms=1000)
    buffer.push(_ramp(16000))
    buffer.release(250)
    assert buffer.push(_ramp(8000, 16000)) == 4000
    assert (buffer.start_ms, buffer.end_ms) == (250, 1250)
    np.testing.assert_array_equal(buffer.window(1000, 1250), _ramp(4000, 16000))


def test_timeline_starts_at_timeline_start_ms() -> None:
    """A resumed session's buffer continues the original timeline."""
    buffer = AudioBuffer(timeline_start_ms=5000)
    assert (buffer.start_ms, buffer.end_ms, buffer.buffered_ms) == (5000, 5000, 0)
    buffer.push(_ramp(8000))
    assert (buffer.start_ms, buffer.end_ms, buffer.buffered_ms) == (5000, 5500, 500)
    np.testing.assert_array_equal(buffer.window(5100, 5200), _ramp(1600, 1600))
    buffer.release(5100)
    assert buffer.start_ms == 5100


def test_fill_ratio_is_buffered_over_capacity() -> None:
    """fill_ratio = buffered / capacity."""
    buffer = AudioBuffer(capacity_ms=2000)
    buffer.push(np.zeros(8000, np.float32))
    assert buffer.fill_ratio == pytest.approx(0.25)


def test_window_is_clipped_to_held_audio() -> None:
    """window() returns only what is held, even for a span reaching outside it."""
    buffer = AudioBuffer()
    buffer.push(_ramp(16000))
    buffer.release(500)
    np.testing.assert_array_equal(buffer.window(0, 5000), _ramp(8000, 8000))
    assert buffer.window(2000, 3000).size == 0
    assert buffer.window(700, 600).size == 0


def test_window_spans_many_chunks() -> None:
    """A window crossing many small pushes and a partly released chunk is contiguous."""
    buffer = AudioBuffer()
    for start in range(0, 16000, 333):
        buffer.push(_ramp(min(333, 16000 - start), start))
    buffer.release(7)
    np.testing.assert_array_equal(buffer.window(10, 990), _ramp(15680, 160))


def test_window_is_a_copy() -> None:
    """Neither the pushed array nor the returned window aliases the buffer."""
    buffer = AudioBuffer()
    pushed = _ramp(1600)
    buffer.push(pushed)
    pushed[:] = 9.0
    out = buffer.window(0, 100)
    out[:] = 7.0
    np.testing.assert_array_equal(buffer.window(0, 100), _ramp(1600))


def test_release_never_goes_beyond_end_or_backwards() -> None:
    """Release stops at end_ms; releasing an earlier point afterwards changes nothing."""
    buffer = AudioBuffer()
    buffer.push(_ramp(3200))
    buffer.release(10_000)
    assert (buffer.start_ms, buffer.end_ms, buffer.buffered_ms) == (200, 200, 0)
    buffer.release(100)
    assert buffer.start_ms == 200
    buffer.push(_ramp(1600))
    np.testing.assert_array_equal(buffer.window(0, 1000), _ramp(1600))


def test_push_after_finish_is_an_error() -> None:
    """The stream ends with finish(); audio after that is a programming error."""
    buffer = AudioBuffer()
    buffer.finish()
    with pytest.raises(RuntimeError, match="finish"):
        buffer.push(_ramp(10))


@settings(max_examples=60, deadline=None)
@given(
    capacity_ms=st.integers(100, 2000),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(0, 12000)),
            st.tuples(st.just("release"), st.integers(-500, 4000)),
        ),
        max_size=40,
    ),
)
def test_pushing_never_holds_more_than_capacity(
    capacity_ms: int, ops: list[tuple[str, int]]
) -> None:
    """Pushing never holds more than capacity, and the held samples are exactly those accepted
    and not released, on the right timeline."""
    buffer = AudioBuffer(capacity_ms=capacity_ms)
    stream = np.zeros(0, np.float32)  # every accepted sample, in order
    first = 0
    for op, value in ops:
        if op == "push":
            offered = _ramp(value, len(stream))
            accepted = buffer.push(offered)
            assert accepted == min(value, capacity_ms * 16 - (len(stream) - first))
            stream = np.concatenate((stream, offered[:accepted]))
        else:
            until_ms = buffer.start_ms + value
            buffer.release(until_ms)
            # Never beyond end_ms (whole ms received), never backwards.
            first = max(first, min(until_ms, len(stream) // 16) * 16)
        assert buffer.buffered_ms <= capacity_ms
        assert 0.0 <= buffer.fill_ratio <= 1.0
        assert buffer.end_ms == len(stream) // 16
        assert buffer.start_ms * 16 == first
    # +1: a trailing fraction of a ms is held but not yet a whole ms of end_ms.
    np.testing.assert_array_equal(buffer.window(0, buffer.end_ms + 1), stream[first:])


# --- speech flags ---


def test_without_vad_everything_is_speech() -> None:
    """Without a VAD the ratio is 1.0, the span is one speech span and there is no pause."""
    buffer = AudioBuffer()
    buffer.push(np.zeros(16000, np.float32))
    assert buffer.speech_ratio(0, 1000) == 1.0
    assert buffer.has_speech(0, 1000)
    assert not buffer.has_speech(0, 50)
    assert buffer.speech_spans(-100, 5000) == [(0, 1000)]
    assert buffer.pause_near(1000, 1000) is None


def test_speech_ratio_counts_flagged_frames() -> None:
    """speech_ratio is the fraction of frames in the span flagged as speech."""
    buffer = AudioBuffer(vad=LevelVad())
    buffer.push(_layout(("p", 10), ("s", 10), ("p", 20)))
    assert buffer.speech_ratio(0, 40 * FRAME_MS) == pytest.approx(0.25)
    assert buffer.speech_ratio(10 * FRAME_MS, 20 * FRAME_MS) == 1.0
    assert buffer.speech_ratio(0, 10 * FRAME_MS) == 0.0
    assert buffer.speech_ratio(5000, 6000) == 0.0  # no frame there


def test_has_speech_needs_min_speech_ms() -> None:
    """has_speech needs at least min_speech_ms of speech frames in the span."""
    buffer = AudioBuffer(vad=LevelVad())
    buffer.push(_layout(("p", 10), ("s", 2), ("p", 10), ("s", 5), ("p", 5)))
    assert not buffer.has_speech(0, 22 * FRAME_MS)  # 64 ms of speech
    assert buffer.has_speech(0, 22 * FRAME_MS, min_speech_ms=64)
    assert buffer.has_speech(0, 32 * FRAME_MS)
    assert not buffer.has_speech(27 * FRAME_MS, 32 * FRAME_MS)


def test_speech_spans_bridge_short_gaps_and_pad() -> None:
    """Speech runs closer than 200 ms merge into one span; spans are padded 100 ms before and
    30 ms after, and clipped to the request."""
    buffer = AudioBuffer(vad=LevelVad())
    # speech 320-640, gap 160 ms (bridged), speech 800-960, gap 640 ms, speech 1600-1920
    buffer.push(_layout(("p", 10), ("s", 10), ("p", 5), ("s", 5), ("p", 20), ("s", 10), ("p", 10)))
    assert buffer.speech_spans(0, buffer.end_ms) == [(220, 990), (1500, 1950)]
    assert buffer.speech_spans(400, 1700) == [(400, 990), (1500, 1700)]
    assert buffer.speech_spans(1000, 1400) == []


def test_pause_at_is_the_whole_pause_holding_a_point() -> None:
    """pause_at returns the non-speech run holding a point (a window's cut), to the held audio's
    end while the pause goes on; None in speech and without a VAD."""
    buffer = AudioBuffer(vad=LevelVad())
    # speech 0-320, pause 320-640, speech 640-960, pause 960-1280 (still going)
    buffer.push(_layout(("s", 10), ("p", 10), ("s", 10), ("p", 10)))
    assert buffer.pause_at(480) == (320, 640)
    assert buffer.pause_at(1100) == (960, 1280) and buffer.end_ms == 1280
    assert buffer.pause_at(100) is None
    assert buffer.pause_at(480, reach_ms=100) == (380, 580)  # clipped to the reach
    plain = AudioBuffer()
    plain.push(np.zeros(16000, np.float32))
    assert plain.pause_at(500) is None


def test_pause_near_returns_middle_of_latest_long_pause() -> None:
    """pause_near picks the latest non-speech run of at least min_pause_ms in the search range
    and returns its middle."""
    buffer = AudioBuffer(vad=LevelVad())
    # pause 0-320, speech 320-640, pause 640-960 (320 ms), speech 960-1120, pause 1120-1216 (96)
    buffer.push(_layout(("p", 10), ("s", 10), ("p", 10), ("s", 5), ("p", 3), ("s", 10)))
    assert buffer.pause_near(1536, 1000) == 800
    assert buffer.pause_near(1536, 1000, min_pause_ms=90) == 1168
    assert buffer.pause_near(1536, 500) is None
    # A pause clipped by the search range counts only for its part inside.
    assert buffer.pause_near(1536, 800, min_pause_ms=150) == 848  # run 736-960 clipped
    assert buffer.pause_near(800, 500) == 720  # run 640-800 (clipped at the end)


def test_pause_near_without_pause_is_none() -> None:
    """Continuous speech has no pause to cut at."""
    buffer = AudioBuffer(vad=LevelVad())
    buffer.push(_layout(("s", 40)))
    assert buffer.pause_near(buffer.end_ms, 1000) is None


def test_hysteresis_keeps_a_dip_inside_speech() -> None:
    """A score dipping just under the threshold inside speech stays speech, as in Silero's own
    segmentation (threshold - 0.15 to leave speech)."""

    class Scripted:
        threshold = 0.5

        def __init__(self, probs: list[float]) -> None:
            self._probs = iter(probs)

        def process(self, samples: np.ndarray) -> np.ndarray:
            return np.array([next(self._probs) for _ in range(len(samples) // FRAME_SAMPLES)])

        def reset(self) -> None:
            pass

    buffer = AudioBuffer(vad=Scripted([0.4, 0.6, 0.4, 0.6, 0.3, 0.4]))
    for _ in range(6):
        buffer.push(np.zeros(FRAME_SAMPLES, np.float32))
    assert buffer.speech_ratio(0, 6 * FRAME_MS) == pytest.approx(3 / 6)
    assert buffer.speech_spans(0, buffer.end_ms) == [(0, 4 * FRAME_MS + 30)]


def test_flags_follow_the_timeline_and_release() -> None:
    """With a timeline offset and after a release, flags stay aligned to their audio."""
    buffer = AudioBuffer(vad=LevelVad(), timeline_start_ms=10_000)
    buffer.push(_layout(("p", 10), ("s", 10), ("p", 20), ("s", 10), ("p", 10)))
    assert buffer.speech_spans(10_000, 12_000) == [(10_220, 10_670), (11_180, 11_630)]
    buffer.release(10_800)
    assert buffer.start_ms == 10_800
    assert buffer.speech_spans(0, 20_000) == [(11_180, 11_630)]
    assert buffer.speech_ratio(10_800, 11_120) == 0.0
    assert buffer.pause_near(11_280, 500) == 11_040  # pause 10_640-11_280, held from 10_800


def test_finish_scores_the_partial_last_frame() -> None:
    """finish() pads the last partial frame with silence so its speech counts."""
    buffer = AudioBuffer(vad=LevelVad())
    buffer.push(np.zeros(FRAME_SAMPLES * 3, np.float32))
    buffer.push(np.full(400, LOUD, np.float32))  # 25 ms, not a whole frame yet
    assert buffer.speech_spans(0, buffer.end_ms) == []
    buffer.finish()
    assert buffer.speech_spans(0, buffer.end_ms) == [(0, buffer.end_ms)]
    assert buffer.speech_ratio(0, buffer.end_ms) == pytest.approx(1 / 4)
    buffer.finish()  # idempotent
    assert buffer.speech_ratio(0, buffer.end_ms) == pytest.approx(1 / 4)


def test_vad_requires_16k() -> None:
    """A VAD is only meaningful on 16 kHz audio."""
    with pytest.raises(ValueError, match="16000"):
        AudioBuffer(vad=LevelVad(), sample_rate=8000)
