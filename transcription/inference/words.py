"""Turn whisper.cpp's per-token results into Segments with a word timeline.

Both whisper backends read their results through a small ``ResultReader`` adapter, so word
grouping, timing and probabilities are computed by one piece of code whatever the binding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from transcription.inference.types import Segment, Word

# whisper.cpp reports segment and token times in 10 ms units ("centiseconds").
MS_PER_TICK = 10


@dataclass(frozen=True, slots=True)
class RawToken:
    """One decoded token: id, raw text bytes, start/end in 10 ms ticks (-1 = unknown), p, and
    the DTW time of a text token (when the alignment reached it, nearer its end than its start;
    in ticks, -1 without DTW token timestamps)."""

    id: int
    text: bytes
    t0: int
    t1: int
    p: float
    t_dtw: int = -1


class ResultReader(Protocol):
    """Read-only view of one finished ``whisper_full`` run (a context or a state)."""

    def eot(self) -> int:
        """Id of ``<|endoftext|>``; every id at or above it is a special token."""
        ...

    def n_segments(self) -> int:
        """Number of segments produced."""
        ...

    def segment_span(self, i: int) -> tuple[int, int]:
        """(t0, t1) of segment ``i`` in 10 ms ticks."""
        ...

    def n_tokens(self, i: int) -> int:
        """Number of tokens in segment ``i`` (special tokens included)."""
        ...

    def token(self, i: int, j: int) -> RawToken:
        """Token ``j`` of segment ``i``."""
        ...

    def no_speech_prob(self, i: int) -> float:
        """whisper's no-speech probability for segment ``i`` (0.0 if the binding lacks it)."""
        ...


def read_segments(reader: ResultReader, audio_ms: int) -> list[Segment]:
    """Build Segments (times in ms from the start of the audio) from a finished run."""
    eot = reader.eot()
    segments: list[Segment] = []
    for i in range(reader.n_segments()):
        t0, t1 = reader.segment_span(i)
        tokens = [reader.token(i, j) for j in range(reader.n_tokens(i))]
        segment = build_segment(
            tokens,
            start_ms=t0 * MS_PER_TICK,
            end_ms=t1 * MS_PER_TICK,
            eot=eot,
            audio_ms=audio_ms,
            no_speech_prob=reader.no_speech_prob(i),
        )
        if segment is not None:
            segments.append(segment)
    return segments


def build_segment(
    tokens: Sequence[RawToken],
    *,
    start_ms: int,
    end_ms: int,
    eot: int,
    audio_ms: int,
    no_speech_prob: float = 0.0,
) -> Segment | None:
    """Group a segment's text tokens into words; None if it holds no text at all.

    The segment text is its words joined by single spaces, so ``" ".join(words) == text``.
    """
    # whisper can report a segment end past the audio it was given (the window is padded to
    # 30 s); clamp so the transcript merge never sees words in the future.
    start_ms = max(0, min(start_ms, audio_ms))
    end_ms = max(start_ms, min(end_ms, audio_ms))
    words = _group_words([t for t in tokens if t.id < eot])
    timed = _time_words(words, start_ms, end_ms)
    if not timed:
        return None
    return Segment(
        text=" ".join(w.text for w in timed),
        start_ms=start_ms,
        end_ms=end_ms,
        words=tuple(timed),
        no_speech_prob=float(no_speech_prob),
    )


def _group_words(tokens: Sequence[RawToken]) -> list[list[RawToken]]:
    # BPE puts the space in front of a word, so a token starting with a space starts a new
    # word; punctuation tokens (",", ".") carry no space and stay attached to the word before.
    groups: list[list[RawToken]] = []
    for token in tokens:
        if not groups or token.text[:1].isspace():
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def _time_words(groups: list[list[RawToken]], seg_start: int, seg_end: int) -> list[Word]:
    # With DTW token timestamps (WSS_DTW_TIMESTAMPS) a text token carries one time, t_dtw: when
    # the alignment path reached it, which tracks the token's end more than its start (its
    # author in whisper.cpp #1485; measured in docs/STREAMING.md). A word ends at the t_dtw of
    # its last token that is not punctuation (a period often comes after the pause), and
    # starts where the word before it ended; the first word of a segment keeps its t0.
    dtw_ends = [_dtw_end(group) for group in groups]
    words: list[Word] = []
    cursor = seg_start
    for i, group in enumerate(groups):
        # Decode per word, not per token: a multi-byte character may be split across tokens.
        text = b"".join(t.text for t in group).decode("utf-8", errors="replace").strip()
        if not text:
            continue
        probability = sum(t.p for t in group) / len(group)
        starts = [t.t0 for t in group if t.t0 >= 0]
        ends = [t.t1 for t in group if t.t1 >= 0]
        start = starts[0] * MS_PER_TICK if starts else cursor
        end = ends[-1] * MS_PER_TICK if ends else start
        dtw_end = dtw_ends[i]
        if dtw_end is not None:
            end = dtw_end * MS_PER_TICK
            if words:
                start = cursor
        # Token timestamps are heuristic and can overlap or run backwards; force a monotone
        # timeline inside the segment so downstream merging can compare times safely.
        start = min(max(start, cursor, seg_start), seg_end)
        end = min(max(end, start), seg_end)
        words.append(Word(text=text, start_ms=start, end_ms=end, probability=probability))
        cursor = end
    return words


def _dtw_end(group: Sequence[RawToken]) -> int | None:
    spoken = [t.t_dtw for t in group if t.t_dtw >= 0 and _spoken(t.text)]
    return spoken[-1] if spoken else None


def _spoken(text: bytes) -> bool:
    # Bytes of a multi-byte character (>= 0x80) count as spoken: punctuation here is ASCII.
    return any(b >= 0x80 or chr(b).isalnum() for b in text)
