"""Tests for transcription/audio/turns.py: speech edges from the speech gate's flags."""

from __future__ import annotations

import pytest

from transcription.audio.turns import Started, Stopped, TurnDetector
from transcription.audio.vad import FRAME_MS


class Flags:
    """Stands in for the audio buffer: a growing list of per-frame speech flags."""

    def __init__(self) -> None:
        self.flags = bytearray()

    def add(self, speech: bool, ms: int) -> None:
        self.flags += bytes([int(speech)]) * (ms // FRAME_MS)

    @property
    def scored_frames(self) -> int:
        return len(self.flags)

    def speech_flags(self, first_frame: int) -> tuple[int, bytes]:
        return first_frame, bytes(self.flags[first_frame:])

    def frame_start_ms(self, frame: int) -> int:
        return frame * FRAME_MS


def run(pattern: list[tuple[bool, int]], stops: tuple[int, ...]) -> list[Started | Stopped]:
    audio, detector, events = Flags(), TurnDetector(stops), []
    for speech, ms in pattern:
        audio.add(speech, ms)
        events += detector.update(audio)
    return events


def test_speech_then_silence_gives_a_start_and_a_stop_per_threshold() -> None:
    """Start at the first speech frame; one Stopped when the silence reaches each threshold."""
    events = run([(False, 320), (True, 960), (False, 1600)], (320, 960))
    assert events == [Started(320), Stopped(1280, 320), Stopped(1280, 960)]


def test_a_pause_shorter_than_the_threshold_does_not_end_speech() -> None:
    """Speech, 192 ms pause, speech: one start, one stop."""
    events = run([(True, 640), (False, 192), (True, 640), (False, 640)], (320,))
    assert events == [Started(0), Stopped(1472, 320)]


def test_speech_after_a_stop_starts_again() -> None:
    """Two utterances are two turns."""
    events = run([(True, 640), (False, 640), (True, 640), (False, 640)], (320,))
    assert [type(e) for e in events] == [Started, Stopped, Started, Stopped]
    assert events[2] == Started(1280)


def test_a_blip_shorter_than_the_minimum_is_not_speech() -> None:
    """A single 32 ms frame of 'speech' in silence starts nothing."""
    assert run([(False, 320), (True, 32), (False, 960)], (320,)) == []


def test_silence_before_any_speech_reports_nothing() -> None:
    """Leading silence is not the end of anything."""
    assert run([(False, 3200)], (320,)) == []


def test_frames_fed_one_by_one_give_the_same_edges() -> None:
    """The detector reads only new flags: any chunking gives the same events."""
    pattern = [(True, 640), (False, 640), (True, 320), (False, 960)]
    whole = run(pattern, (320, 640))
    split = run([(s, FRAME_MS) for s, ms in pattern for _ in range(ms // FRAME_MS)], (320, 640))
    assert whole == split


def test_new_thresholds_continue_from_the_old_state() -> None:
    """A session.update mid-speech: the new detector knows speech is going on."""
    audio, old = Flags(), TurnDetector((320,))
    audio.add(True, 640)
    assert old.update(audio) == [Started(0)]
    new = TurnDetector((640,))
    new.continue_from(old)
    audio.add(False, 704)
    assert new.update(audio) == [Stopped(640, 640)]


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TurnDetector(())
