"""The merge of overlapping windows into the committed transcript.

Normative: ``docs/PROTOCOL.md`` "Windows and events" (joined phrases read like the offline
transcript: no word repeated in an overlap, none lost at an edge, nothing invented on silence).

Pure and synchronous. ``merge`` decides which words of a freshly transcribed window are new,
aligning them with the committed tail by text *and* time: Whisper's word times jitter by a few
hundred ms between windows, and a word cut by a window edge comes back as a different or partial
word, so neither signal alone is reliable (``shared/speech/README.md``: most errors of naive
windows sit within two words of a join).
"""

from __future__ import annotations

from collections.abc import Sequence

from transcription.inference.types import Word
from transcription.transcript import (
    MAX_ALIGN_WORDS,
    TIME_TOLERANCE_MS,
    centre_ms,
    drop_annotations,
    normalize,
)

# Local-alignment scores: one agreeing word outweighs two misheard ones after it, so it
# anchors the join even when the window heard the committed tail's last words differently.
_MATCH = 3
_PARTIAL = 1
_MISMATCH = -1
_GAP = -1
_ECHO_MIN_WORDS = 3  # a repeat of the committed tail this long at a join is a prompt echo


def merge(
    committed_tail: Sequence[Word],
    new_words: Sequence[Word],
    *,
    overlap_start_ms: int,
    overlap_end_ms: int,
    tolerance_ms: int = TIME_TOLERANCE_MS,
    heard_again: bool = True,
    pending: Sequence[Word] = (),
) -> list[Word]:
    """The words of a new window that are not already committed, in Whisper's order.

    ``overlap_start_ms`` is the window start, ``overlap_end_ms`` the end of the committed
    timeline; committed words in between were heard again. ``heard_again=False`` says the
    window starts in a pause after every committed word (its start is known to be silence), so
    no word of it is old whatever its jittered time says; only a prompt echo is dropped.
    ``pending`` are the words the previous window heard after the committed tail and held back.

    The join is the best local alignment of the committed tail's end with the new words
    (normalised text, matches only between words whose centres lie within a few
    ``tolerance_ms``); without an agreeing word, the held-back words found again by their text
    start the new ones, else time decides: a new word whose centre lies before the committed
    end is old. Committed words always win.
    """
    words = drop_annotations(new_words)
    if not words:
        return []
    zone = [
        w
        for w in (committed_tail[-MAX_ALIGN_WORDS:] if heard_again else ())
        if w.end_ms > overlap_start_ms - tolerance_ms and normalize(w.text)
    ]
    if zone and _cut_by_window_start(words[0], zone, overlap_start_ms, tolerance_ms):
        words = words[1:]
    cut: int | None
    if not zone:
        cut = 0  # no committed word reaches into this window: nothing in it can be old
    else:
        cut = _text_cut(zone, words, overlap_start_ms, overlap_end_ms, tolerance_ms)
        if cut is None:
            cut = _text_only_cut(zone, words)
        if cut is None:
            cut = _time_cut(words, overlap_end_ms)
            again = _pending_cut(pending, words)
            cut = cut if again is None else min(cut, again)
    fresh = words[cut:]
    while fresh and not normalize(fresh[0].text):
        fresh = fresh[1:]  # punctuation of an old word is old
    return fresh[_echo_length(committed_tail, fresh) :]


def _text_only_cut(
    zone: Sequence[Word], words: Sequence[Word], *, max_skip: int = 2, min_len: int = 2
) -> int | None:
    """Index just past a repeat of the committed tail's last words near the window start,
    by text alone: Whisper's word times can be seconds off when a window starts mid-word
    ("the Management Office said …" after "… Management Office"), so the time-aware
    alignment finds nothing. Up to ``max_skip`` junk words may precede the repeat."""
    old = _spoken(zone)[1]
    spoken, new = _spoken(words)
    for skip in range(min(max_skip, len(new)) + 1):
        for length in range(min(len(old), len(new) - skip), min_len - 1, -1):
            if old[-length:] == new[skip : skip + length]:
                return spoken[skip + length - 1] + 1
    return None


def _pending_cut(pending: Sequence[Word], words: Sequence[Word]) -> int | None:
    """Index of the word of ``words`` that starts the last repeat of the held-back ``pending``
    words (their first two, or a lone word of four letters or more): a window cut mid-speech
    can squeeze its word times seconds early ("and including separating the patient" over
    3.0-4.5 s for speech at 4.3-6.1 s), so the time cut would drop words no window committed.
    The last repeat, since a window that hears them twice ("Thanks. Thanks.") doubled them."""
    old = _spoken(pending)[1][:2]
    if not old or (len(old) == 1 and len(old[0]) < 4):
        return None
    spoken, new = _spoken(words)
    for k in reversed(range(len(new) - len(old) + 1)):
        if new[k : k + len(old)] == old:
            return spoken[k]
    return None


def _spoken(words: Sequence[Word]) -> tuple[list[int], list[str]]:
    """The indices of ``words`` that hold a spoken word (not bare punctuation or an
    annotation) and those words normalised."""
    pairs = [(i, t) for i, t in enumerate(normalize(w.text) for w in words) if t]
    return [i for i, _ in pairs], [t for _, t in pairs]


def _time_cut(words: Sequence[Word], end_ms: int) -> int:
    """Index of the first word of the first run of words centred at or after ``end_ms``."""
    for i, word in enumerate(words):
        if normalize(word.text) and centre_ms(word) >= end_ms:
            return i
    return len(words)


def _cut_by_window_start(
    word: Word, zone: Sequence[Word], start_ms: int, tolerance_ms: int
) -> bool:
    """True when the window's first word is the end of a committed word the window start cut
    (Whisper hears "-ently" of "prudently" as "ently", or just "t")."""
    text = normalize(word.text)
    if not text or word.start_ms > start_ms + tolerance_ms // 3:
        return False
    return any(
        old.start_ms < start_ms + tolerance_ms
        and normalize(old.text) != text
        and normalize(old.text).endswith(text)
        for old in zone
    )


def _pair_score(old: Word, new: Word, tolerance_ms: int) -> int | None:
    """Alignment score of two words, or None when they are too far apart in time to pair."""
    distance = abs(centre_ms(old) - centre_ms(new))
    a, b = normalize(old.text), normalize(new.text)
    if distance <= 3 * tolerance_ms:
        if a == b:
            return _MATCH
        # A word cut by a window edge comes back as its start or its end ("prudently"/"ently").
        short, long_ = sorted((a, b), key=len)
        if len(short) >= 3 and (long_.startswith(short) or long_.endswith(short)):
            return _PARTIAL
    if distance <= 2 * tolerance_ms:
        return _MISMATCH
    return None


def _text_cut(
    zone: Sequence[Word], words: Sequence[Word], start_ms: int, end_ms: int, tolerance_ms: int
) -> int | None:
    """Where the committed tail ends inside ``words``, by local alignment anchored at the tail's
    last word (Smith-Waterman with free leading gaps on both sides), or None if nothing agrees.

    Free leading gaps let the new window start with a partial word and let committed words
    before the window start go unmatched; anchoring at the tail's end means a disagreeing last
    committed word still consumes its counterpart, so it is not emitted twice.
    """
    index = [i for i, w in enumerate(words) if normalize(w.text)]
    spoken = [words[i] for i in index]
    # Cells hold (score, whether the path holds an exact match); a zero score restarts.
    empty = (0, False)
    previous = [empty] * (len(spoken) + 1)
    for old in zone:
        current = [empty] * (len(spoken) + 1)
        for k, new in enumerate(spoken, start=1):
            best = empty
            for score, matched in (
                (previous[k][0] + _GAP, previous[k][1]),
                (current[k - 1][0] + _GAP, current[k - 1][1]),
            ):
                if score > best[0]:
                    best = (score, matched)
            pair = _pair_score(old, new, tolerance_ms)
            if pair is not None:
                score = previous[k - 1][0] + pair
                if score > best[0]:
                    best = (score, previous[k - 1][1] or pair == _MATCH)
            current[k] = best
        previous = current
    # A path of partial matches alone is too weak to anchor on, except the window's first word:
    # that is where a committed word cut by the window start comes back as a fragment.
    candidates = [
        k for k in range(1, len(spoken) + 1) if previous[k][0] > 0 and (previous[k][1] or k == 1)
    ]
    if not candidates:
        return None
    top = max(previous[k][0] for k in candidates)
    # Equal scores: the join that calls as many new words old as there are committed words in
    # the overlap ("… corpus. I" then "I have a cold so I …": with times jittered by 400 ms the
    # second "I" is as near as the first, but taking it would drop four new words), then the
    # join whose last old word ends nearest the committed end.
    heard_again = sum(1 for w in zone if centre_ms(w) >= start_ms)
    k = min(
        (k for k in candidates if previous[k][0] == top),
        key=lambda k: (abs(k - heard_again), abs(spoken[k - 1].end_ms - end_ms)),
    )
    return index[k - 1] + 1


def _echo_length(committed: Sequence[Word], fresh: Sequence[Word]) -> int:
    """Length of a prefix of ``fresh`` that repeats the committed tail word for word.

    Whisper sometimes writes its prompt (the committed tail) again at the start of a window,
    with times that fit the new audio, so only the text can tell. Short repeats are left alone:
    "I think, I think" is speech.
    """
    old = _spoken(committed[-MAX_ALIGN_WORDS:])[1]
    spoken, new = _spoken(fresh)
    for n in range(min(len(old), len(new)), _ECHO_MIN_WORDS - 1, -1):
        if old[-n:] == new[:n]:
            return spoken[n - 1] + 1
    return 0
