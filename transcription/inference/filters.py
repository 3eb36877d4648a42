"""Hallucination filters applied to every backend's output before it leaves the backend.

Whisper, fed silence or noise, tends to produce bracketed sound descriptions ("[BLANK_AUDIO]",
"(water running)"), confident-sounding text with a high no-speech probability, and repetition
loops. These pure functions drop or repair such segments; thresholds follow openai-whisper's
``transcribe()`` defaults (no_speech 0.6, compression ratio 2.4).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from transcription.inference.types import Segment, Word

_OPENERS = "[(*♪"
_CLOSERS = "])*♪"
# A run of bracketed, parenthesised, starred or ♪-marked spans and nothing else.
_WHOLLY_BRACKETED = re.compile(r"^\s*(?:(?:\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪[^♪]*♪?|♪)\s*)+$")
_WORD_CHARS = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Thresholds of the hallucination filters (defaults from openai-whisper where it has one)."""

    no_speech_threshold: float = 0.6
    # With a high no-speech probability, a segment survives only if whisper was this sure of
    # its words on average (openai-whisper uses avg_logprob > -1, i.e. mean p ≈ 0.37; we are
    # a little stricter because streaming windows re-transcribe the same audio anyway).
    min_avg_word_probability: float = 0.5
    compression_ratio_threshold: float = 2.4
    # A word repeated this many times in a row (or more) is collapsed to one occurrence.
    max_repeats: int = 4


DEFAULT_FILTERS = FilterConfig()


def filter_segments(
    segments: Iterable[Segment], config: FilterConfig = DEFAULT_FILTERS
) -> list[Segment]:
    """Drop hallucinated segments and repair repetition loops; keeps order."""
    kept: list[Segment] = []
    for segment in segments:
        segment = strip_bracketed_words(segment)
        if is_non_speech(segment.text):
            continue
        if is_probably_silence(segment, config):
            continue
        segment = collapse_repeats(segment, config.max_repeats)
        if compression_ratio(segment.text) > config.compression_ratio_threshold:
            continue
        if kept and repeats_previous(kept[-1], segment):
            continue
        kept.append(segment)
    return kept


def repeats_previous(previous: Segment, segment: Segment) -> bool:
    """True when ``segment`` says again what ``previous`` just said (a whole-sentence loop:
    Whisper emits "… the station." twice, the second copy timed after the first)."""
    words = [_normalise(w) for w in segment.text.split()]
    before = [_normalise(w) for w in previous.text.split()]
    return len(words) >= 2 and len(words) <= len(before) and before[-len(words) :] == words


def is_non_speech(text: str) -> bool:
    """True for blank output, sound descriptions in brackets, or punctuation only."""
    if not _WORD_CHARS.search(text):
        return True
    return bool(_WHOLLY_BRACKETED.match(text))


def is_probably_silence(segment: Segment, config: FilterConfig = DEFAULT_FILTERS) -> bool:
    """True when whisper thinks there is no speech and was unsure of the words it produced."""
    if segment.no_speech_prob <= config.no_speech_threshold:
        return False
    return average_word_probability(segment) < config.min_avg_word_probability


def average_word_probability(segment: Segment) -> float:
    """Mean word probability (1.0 for a segment without a word timeline)."""
    if not segment.words:
        return 1.0
    return sum(w.probability for w in segment.words) / len(segment.words)


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression; repetition loops score high."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def strip_bracketed_words(segment: Segment) -> Segment:
    """Remove bracketed spans ("[Music]", "(water running)") from a segment's word timeline.

    A segment without words is returned as is; the whole-text check handles it.
    """
    if not segment.words:
        return segment
    kept: list[Word] = []
    pending: list[Word] = []  # words inside an open bracket, dropped once it closes
    closer = ""
    for word in segment.words:
        if closer:
            pending.append(word)
            if _closes(word.text, closer):
                closer, pending = "", []
            continue
        opener = word.text[:1]
        if opener in _OPENERS:
            expected = _CLOSERS[_OPENERS.index(opener)]
            if not (len(word.text) > 1 and _closes(word.text[1:], expected)):
                closer, pending = expected, [word]
            continue  # "[Music]" opens and closes within one word: drop just this word
        kept.append(word)
    # An opener that never closed was not a sound description: keep its words.
    kept.extend(pending)
    if len(kept) == len(segment.words):
        return segment
    return _with_words(segment, kept)


def collapse_repeats(segment: Segment, max_repeats: int = DEFAULT_FILTERS.max_repeats) -> Segment:
    """Collapse a run of ``max_repeats`` or more identical words into its first occurrence."""
    words = segment.words
    if len(words) < max_repeats:
        return segment
    kept: list[Word] = []
    i = 0
    while i < len(words):
        j = i + 1
        key = _normalise(words[i].text)
        while j < len(words) and key and _normalise(words[j].text) == key:
            j += 1
        if j - i >= max_repeats:
            kept.append(words[i])
        else:
            kept.extend(words[i:j])
        i = j
    if len(kept) == len(words):
        return segment
    return _with_words(segment, kept)


def _closes(text: str, closer: str) -> bool:
    return text.rstrip(".,!?;:").endswith(closer)


def _normalise(text: str) -> str:
    return re.sub(r"[^\w']", "", text.lower())


def _with_words(segment: Segment, words: list[Word]) -> Segment:
    return replace(segment, words=tuple(words), text=" ".join(w.text for w in words))
