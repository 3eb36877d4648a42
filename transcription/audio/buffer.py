"""The bounded audio buffer of one session, on the session timeline, with per-frame speech flags.

Normative: ``docs/PROTOCOL.md`` "Flow control and limits" (audio waiting for
transcription is bounded; audio beyond the bound is refused and reported, never silently dropped)
and "Windows and events" (offsets are ms from session start, and a resumed session continues the
original timeline; windows without speech are not transcribed).

Timeline: sample ``i`` received since ``timeline_start_ms`` sits at
``timeline_start_ms + i * 1000 / sample_rate`` ms. VAD frame ``k`` covers samples
``[k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)``, i.e. 32 ms frames aligned to the timeline start.
Refused samples never enter the timeline: the client is told to resend them.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.audio.vad import FRAME_SAMPLES, SpeechDetector

DEFAULT_CAPACITY_MS = 30000
# Silero's own get_speech_timestamps keeps a speech run going until the score falls 0.15 below
# the threshold; the same hysteresis stops a word from flickering between speech and pause.
HYSTERESIS = 0.15
MIN_SPEECH_MS = 96  # three VAD frames: enough for the gate to trust a short word
MIN_PAUSE_MS = 150
SPAN_BRIDGE_MS = 200  # speech runs closer than this are one span (stops, breaths inside a phrase)
# Silero scores onsets late (it needs a frame or two of context; measured up to ~150 ms on
# fricatives in flite speech) and releases nearly on time, so spans get more pad before.
SPAN_PAD_BEFORE_MS = 100
SPAN_PAD_AFTER_MS = 30


class AudioBuffer:
    """16 kHz float32 samples received but not yet released, plus the VAD's speech flags.

    Samples are held as a deque of pushed chunks, so a push costs O(its length) and a release
    drops whole chunks; ``window`` copies only the span it returns.
    """

    def __init__(
        self,
        *,
        capacity_ms: int = DEFAULT_CAPACITY_MS,
        timeline_start_ms: int = 0,
        vad: SpeechDetector | None = None,
        sample_rate: int = SAMPLE_RATE_HZ,
    ) -> None:
        if capacity_ms <= 0:
            raise ValueError(f"capacity_ms must be positive, got {capacity_ms}")
        if vad is not None and sample_rate != SAMPLE_RATE_HZ:
            raise ValueError(f"the VAD needs {SAMPLE_RATE_HZ} Hz audio, got {sample_rate} Hz")
        self.capacity_ms = capacity_ms
        self.timeline_start_ms = timeline_start_ms
        self.sample_rate = sample_rate
        self.vad = vad
        self._capacity_samples = capacity_ms * sample_rate // 1000
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._first = 0  # index of the first held sample, counted from the timeline start
        self._total = 0  # samples accepted since the timeline start
        self._flags = bytearray()  # 1 = speech, for frames _flag_base, _flag_base + 1, ...
        self._flag_base = 0
        self._in_speech = False
        self._finished = False

    # --- timeline ---

    @property
    def start_ms(self) -> int:
        """Timeline ms of the first held sample."""
        return self._to_ms(self._first)

    @property
    def end_ms(self) -> int:
        """Timeline ms just after the last accepted sample."""
        return self._to_ms(self._total)

    @property
    def buffered_ms(self) -> int:
        """Milliseconds of audio held (received and not yet released)."""
        return self.end_ms - self.start_ms

    @property
    def fill_ratio(self) -> float:
        """Held audio as a fraction of the capacity (0..1); drives backpressure events."""
        return (self._total - self._first) / self._capacity_samples

    @property
    def free_ms(self) -> int:
        """Milliseconds of audio the buffer can still accept."""
        return (
            max(0, self._capacity_samples - (self._total - self._first)) * 1000 // self.sample_rate
        )

    @property
    def finished(self) -> bool:
        """True once ``finish`` has been called."""
        return self._finished

    def _to_ms(self, index: int) -> int:
        return self.timeline_start_ms + index * 1000 // self.sample_rate

    def _to_index(self, ms: int) -> int:
        """Sample index of timeline ``ms``, clamped to the held samples."""
        index = (ms - self.timeline_start_ms) * self.sample_rate // 1000
        return min(max(index, self._first), self._total)

    # --- input ---

    def push(self, samples: np.ndarray) -> int:
        """Called with each resampled chunk; returns how many samples were accepted.

        Samples that would take the held audio beyond ``capacity_ms`` are refused and not stored;
        the caller reports them to the client.
        """
        if self._finished:
            raise RuntimeError("push after finish: the stream has ended")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        free = self._capacity_samples - (self._total - self._first)
        accepted = min(samples.size, max(free, 0))
        if accepted == 0:
            return 0
        # Copy: the caller may reuse its array, and a view would pin a larger one in memory.
        chunk = samples[:accepted].copy()
        self._chunks.append(chunk)
        self._total += accepted
        if self.vad is not None:
            self._add_flags(self.vad.process(chunk), self.vad.threshold)
        return accepted

    def finish(self) -> None:
        """Called at end of stream: scores the trailing partial VAD frame, padded with silence."""
        if self._finished:
            return
        self._finished = True
        partial = self._total % FRAME_SAMPLES
        if self.vad is not None and partial:
            padding = np.zeros(FRAME_SAMPLES - partial, dtype=np.float32)
            self._add_flags(self.vad.process(padding), self.vad.threshold)

    def _add_flags(self, probs: np.ndarray, threshold: float) -> None:
        for p in probs.tolist():
            self._in_speech = p >= threshold or (self._in_speech and p >= threshold - HYSTERESIS)
            self._flags.append(self._in_speech)

    # --- output ---

    def window(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Returns a copy of the held samples in [start_ms, end_ms) (clipped to what is held)."""
        lo = self._to_index(start_ms)
        hi = max(self._to_index(end_ms), lo)
        pieces: list[np.ndarray] = []
        offset = self._first
        for chunk in self._chunks:
            if offset >= hi:
                break
            chunk_end = offset + chunk.size
            if chunk_end > lo:
                pieces.append(chunk[max(lo - offset, 0) : hi - offset])
            offset = chunk_end
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces)

    def release(self, until_ms: int) -> None:
        """Called once audio before ``until_ms`` is no longer needed; drops samples and flags.

        Never releases beyond ``end_ms``; releasing backwards is a no-op.
        """
        # Clamp in ms first: end_ms is rounded down, and start_ms must stay a whole ms.
        target = self._to_index(min(until_ms, self.end_ms))
        drop = target - self._first
        while drop > 0 and self._chunks:
            head = self._chunks[0]
            if head.size <= drop:
                self._chunks.popleft()
                drop -= head.size
            else:
                self._chunks[0] = head[drop:]
                drop = 0
        self._first = target
        # A frame's flag goes once the whole frame is released.
        stale = target // FRAME_SAMPLES - self._flag_base
        if stale > 0:
            del self._flags[:stale]
            self._flag_base += stale

    # --- speech ---

    @property
    def scored_frames(self) -> int:
        """VAD frames scored since the timeline start (the next frame's index)."""
        return self._flag_base + len(self._flags)

    def speech_flags(self, first_frame: int) -> tuple[int, bytes]:
        """(index of the first returned frame, speech flags 0/1) of the scored frames from
        ``first_frame`` on; frames already released are skipped."""
        first = max(first_frame, self._flag_base)
        return first, bytes(self._flags[first - self._flag_base :])

    def frame_start_ms(self, frame: int) -> int:
        """Timeline ms at which VAD frame ``frame`` starts."""
        return self._frame_ms(frame)

    def _frame_ms(self, k: int) -> int:
        return self._to_ms(k * FRAME_SAMPLES)

    def _held_flags(self) -> tuple[int, np.ndarray]:
        """(first frame index, flags) of the scored frames that still overlap held audio."""
        first = max(self._flag_base, self._first // FRAME_SAMPLES)
        flags = np.frombuffer(bytes(self._flags[first - self._flag_base :]), dtype=np.uint8)
        return first, flags

    def _frames_by_midpoint(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Flags of the scored held frames whose midpoint lies in [start_ms, end_ms)."""
        first, flags = self._held_flags()

        def first_frame_from(ms: int) -> int:
            # Smallest k with midpoint(k) >= ms, midpoint(k) = (k + 0.5) frames after the start.
            position = (ms - self.timeline_start_ms) * self.sample_rate / 1000
            return math.ceil(position / FRAME_SAMPLES - 0.5)

        k0 = max(first_frame_from(start_ms), first)
        k1 = min(first_frame_from(end_ms), first + flags.size)
        return flags[k0 - first : max(k1, k0) - first]

    def speech_ratio(self, start_ms: int, end_ms: int) -> float:
        """Fraction of VAD frames in the span flagged as speech (1.0 without a VAD, 0.0 when the
        span holds no scored frame)."""
        if self.vad is None:
            return 1.0
        flags = self._frames_by_midpoint(start_ms, end_ms)
        return float(flags.mean()) if flags.size else 0.0

    def has_speech(self, start_ms: int, end_ms: int, min_speech_ms: int = MIN_SPEECH_MS) -> bool:
        """Called before transcribing a span: True if it holds at least ``min_speech_ms`` of
        speech (without a VAD, of audio)."""
        if self.vad is None:
            lo, hi = max(start_ms, self.start_ms), min(end_ms, self.end_ms)
            return hi - lo >= min_speech_ms
        flags = self._frames_by_midpoint(start_ms, end_ms)
        speech_ms = int(flags.sum()) * FRAME_SAMPLES * 1000 // self.sample_rate
        return speech_ms >= min_speech_ms

    def _runs(self, start_ms: int, end_ms: int, value: int) -> list[tuple[int, int]]:
        """Runs of frames flagged ``value`` overlapping [start_ms, end_ms), as clipped ms spans."""
        lo, hi = max(start_ms, self.start_ms), min(end_ms, self.end_ms)
        if hi <= lo:
            return []
        first, flags = self._held_flags()
        base = (lo - self.timeline_start_ms) * self.sample_rate // 1000
        top = -(-(hi - self.timeline_start_ms) * self.sample_rate // 1000)
        k0 = max(base // FRAME_SAMPLES, first)
        k1 = min(-(-top // FRAME_SAMPLES), first + flags.size)
        if k1 <= k0:
            return []
        sel = np.concatenate(([0], flags[k0 - first : k1 - first] == value, [0])).astype(np.int8)
        edges = np.flatnonzero(np.diff(sel))
        runs = []
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            s = max(self._frame_ms(k0 + int(a)), lo)
            e = min(self._frame_ms(k0 + int(b)), hi)
            if e > s:
                runs.append((s, e))
        return runs

    def pause_near(
        self, end_ms: int, search_ms: int, min_pause_ms: int = MIN_PAUSE_MS
    ) -> int | None:
        """Called to cut a window at a pause rather than mid-word: the ms at the middle of the
        latest run of non-speech frames, at least ``min_pause_ms`` long, inside
        [end_ms - search_ms, end_ms]; None if there is none (always None without a VAD)."""
        if self.vad is None:
            return None
        for s, e in reversed(self._runs(end_ms - search_ms, end_ms, 0)):
            if e - s >= min_pause_ms:
                return (s + e) // 2
        return None

    def pause_at(self, ms: int, reach_ms: int = 2000) -> tuple[int, int] | None:
        """The run of non-speech frames holding ``ms`` as (start_ms, end_ms), looked for within
        ``reach_ms`` either side and clipped to the held audio: its end is ``end_ms`` while the
        pause goes on. None when ``ms`` lies in speech, and without a VAD."""
        if self.vad is None:
            return None
        for s, e in self._runs(ms - reach_ms, ms + reach_ms, 0):
            if s <= ms <= e:
                return s, e
        return None

    def speech_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Speech regions in the span as (start_ms, end_ms): gaps under 200 ms bridged, each
        padded (100 ms before, 30 ms after), clipped to the span and the held audio."""
        lo, hi = max(start_ms, self.start_ms), min(end_ms, self.end_ms)
        if hi <= lo:
            return []
        if self.vad is None:
            return [(lo, hi)]
        merged: list[tuple[int, int]] = []
        for s, e in self._runs(lo, hi, 1):
            if merged and s - merged[-1][1] < SPAN_BRIDGE_MS:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        # Bridged gaps are >= SPAN_BRIDGE_MS > both pads together, so padded spans never overlap.
        return [
            (max(s - SPAN_PAD_BEFORE_MS, lo), min(e + SPAN_PAD_AFTER_MS, hi)) for s, e in merged
        ]
