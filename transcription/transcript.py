"""The committed transcript of a session and the merge of overlapping windows into it.

Normative: ``docs/PROTOCOL.md`` "Windows and events" (joined phrases read like the offline
transcript: no word repeated in an overlap, none lost at an edge, nothing invented on silence)
and "Checkpoints and resume" (no loss, no duplication after a resume).

Pure and synchronous. ``merge`` decides which words of a freshly transcribed window are new,
aligning them with the committed tail by text *and* time: Whisper's word times jitter by a few
hundred ms between windows, and a word cut by a window edge comes back as a different or partial
word, so neither signal alone is reliable (``shared/speech/README.md``: most errors of naive
windows sit within two words of a join).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from transcription.inference.types import Word

TIME_TOLERANCE_MS = 300  # word-time jitter between two transcriptions of the same audio
LONG_PAUSE_MS = 2000  # context from before a pause this long no longer helps the next window
# Local-alignment scores: one agreeing word outweighs two misheard ones after it, so it
# anchors the join even when the window heard the committed tail's last words differently.
_MATCH = 3
_PARTIAL = 1
_MISMATCH = -1
_GAP = -1
_MAX_ALIGN_WORDS = 32  # committed words considered for alignment; an overlap holds far fewer
_ECHO_MIN_WORDS = 3  # a repeat of the committed tail this long at a join is a prompt echo
_SENTENCE_END = (".", "?", "!", "…")
# Closing punctuation Whisper sometimes returns as a word of its own; it attaches without space.
_ATTACHING = frozenset(".,!?;:…%)]}\"'»”’")


def normalize(text: str) -> str:
    """Lower-case ``text`` and keep only letters and digits, for comparing words."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def centre_ms(word: Word) -> int:
    """The middle of a word: steadier across windows than either edge."""
    return (word.start_ms + word.end_ms) // 2


def ends_sentence(word: Word) -> bool:
    """True when the word closes a sentence (Whisper's punctuation)."""
    return word.text.rstrip("\"')]»”’").endswith(_SENTENCE_END)


def _attaches(text: str) -> bool:
    return bool(text) and not normalize(text) and text[0] in _ATTACHING


def join_words(words: Iterable[Word]) -> str:
    """Words joined with single spaces; bare punctuation attaches to the word before it."""
    parts: list[str] = []
    for word in words:
        if parts and not _attaches(word.text):
            parts.append(" ")
        parts.append(word.text)
    return "".join(parts)


def drop_annotations(words: Iterable[Word]) -> list[Word]:
    """Remove Whisper's non-speech annotations (``[BLANK_AUDIO]``, ``(water running)``, ``♪``).

    Whisper writes them on silence and noise; docs/PROTOCOL.md forbids invented text there.
    """
    kept: list[Word] = []
    closer: str | None = None
    for word in words:
        text = word.text.strip()
        if closer is not None:
            if text.endswith(closer):
                closer = None
            continue
        if not text or "♪" in text:
            continue
        if text[0] in "[(*":
            wanted = {"[": "]", "(": ")", "*": "*"}[text[0]]
            if not (len(text) > 1 and text.endswith(wanted)):
                closer = wanted
            continue
        kept.append(word)
    return kept


class Transcript:
    """The committed word timeline of a session; committed words never change afterwards.

    A session resumed from a text-only checkpoint has a ``prefix`` (committed text without word
    times) before ``words``.
    """

    def __init__(
        self, words: Iterable[Word] = (), *, prefix: str = "", prefix_end_ms: int = 0
    ) -> None:
        self.words: list[Word] = []
        self.prefix = prefix.strip()
        self.prefix_end_ms = prefix_end_ms
        self._text = self.prefix
        self._last_end_ms = prefix_end_ms
        self.commit(words)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transcript):
            return NotImplemented
        return (self.prefix, self.prefix_end_ms, self.words) == (
            other.prefix,
            other.prefix_end_ms,
            other.words,
        )

    def __repr__(self) -> str:
        return f"Transcript({self.text!r}, last_word_end_ms={self.last_word_end_ms})"

    # --- building ---

    def commit(self, words: Iterable[Word]) -> list[Word]:
        """Append finalized words (the merge has already removed what was committed) and return
        them as committed: a word never starts before the word committed before it. Windows and
        interim passes are separate encodes whose word times drift by a few hundred ms, and
        clients read the words' times as one timeline (Deepgram's words are in order)."""
        committed = []
        for word in words:
            if self.words and word.start_ms < self.words[-1].start_ms:
                start = self.words[-1].start_ms
                word = replace(word, start_ms=start, end_ms=max(word.end_ms, start))
            committed.append(word)
            if self._text and not _attaches(word.text):
                self._text += " "
            self._text += word.text
            self.words.append(word)
            # Jittered times may step back a little; the timeline end never does.
            self._last_end_ms = max(self._last_end_ms, word.end_ms)
        return committed

    @classmethod
    def from_text(cls, text: str, end_ms: int) -> Transcript:
        """Resume from a text-only checkpoint: the text is one committed block ending at end_ms."""
        return cls(prefix=text, prefix_end_ms=end_ms)

    @classmethod
    def from_text_and_tail(
        cls, text: str, tail: Sequence[Word], end_ms: int | None = None
    ) -> Transcript:
        """Resume from the full text plus its last words (the word timeline the merge needs).

        When the tail does not end the text (not a checkpoint we wrote), the text wins and the
        words are dropped: never show the client a transcript different from its checkpoint.
        """
        tail_text = join_words(tail)
        text = text.strip()
        if tail and text.endswith(tail_text):
            prefix = text[: len(text) - len(tail_text)]
            if not prefix or prefix.endswith(" ") or _attaches(tail[0].text):
                boundary = tail[0].start_ms if end_ms is None else end_ms
                return cls(tail, prefix=prefix, prefix_end_ms=boundary)
        last = tail[-1].end_ms if tail else 0
        return cls.from_text(text, last if end_ms is None else end_ms)

    # --- reading ---

    @property
    def text(self) -> str:
        """The full transcript: words joined with single spaces."""
        return self._text

    @property
    def char_count(self) -> int:
        return len(self._text)

    @property
    def last_word_end_ms(self) -> int:
        """End of the committed timeline (the prefix block's end when no word is committed)."""
        return self._last_end_ms

    def recent_words(self, since_ms: int, limit: int = _MAX_ALIGN_WORDS) -> list[Word]:
        """The committed words ending after ``since_ms`` (at most ``limit``), oldest first."""
        recent: list[Word] = []
        for word in reversed(self.words):
            if word.end_ms <= since_ms or len(recent) >= limit:
                break
            recent.append(word)
        return recent[::-1]

    def tail_prompt(self, max_chars: int = 200, *, before_ms: int | None = None) -> str:
        """The committed tail to condition the next window (Whisper's initial prompt).

        Called before each inference. With ``before_ms`` (the window start) only words heard
        before the window count, as whisper_streaming does, so the prompt never duplicates the
        window's own audio. Empty when the tail repeats itself (a prompt that contains a loop
        makes Whisper continue the loop) or when the window follows a long pause.
        """
        chosen: list[Word] = []
        length = 0
        next_start = before_ms
        complete = True
        for word in self._words_before(before_ms):
            if next_start is not None and next_start - word.end_ms > LONG_PAUSE_MS:
                complete = False
                break
            if length + len(word.text) + 1 > max_chars:
                complete = False
                break
            chosen.append(word)
            length += len(word.text) + 1
            next_start = word.start_ms
        text = join_words(reversed(chosen))
        prefix_fits = next_start is None or next_start - self.prefix_end_ms <= LONG_PAUSE_MS
        if complete and self.prefix and prefix_fits and length < max_chars:
            room = max_chars - length - 1
            # Cut at a word boundary so the prompt never starts with half a word.
            head = self.prefix[-room:] if room > 0 else ""
            if len(head) < len(self.prefix) and self.prefix[-len(head) - 1] != " ":
                head = head.partition(" ")[2]
            text = f"{head} {text}".strip() if text else head.strip()
        return "" if has_repetition(text) else text

    def _words_before(self, before_ms: int | None) -> Iterator[Word]:
        """Committed words, newest first, that end before ``before_ms``."""
        for word in reversed(self.words):
            if before_ms is None or word.end_ms <= before_ms:
                yield word

    # --- checkpoints ---

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form for checkpoints: the full text, the prefix end and the word timeline."""
        return {
            "text": self.text,
            "prefix_end_ms": self.prefix_end_ms,
            "words": [
                {"text": w.text, "start": w.start_ms, "end": w.end_ms, "prob": w.probability}
                for w in self.words
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transcript:
        """Rebuild from ``to_json`` output; KeyError, TypeError or ValueError when malformed."""
        words = [_word_from_json(item) for item in data["words"]]
        if "text" not in data:
            return cls(words)
        text = data["text"]
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        return cls.from_text_and_tail(text, words, _int(data.get("prefix_end_ms", 0)))


def _int(value: Any) -> int:
    # JSON booleans are ints in Python; a checkpoint field holding one is malformed.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number of milliseconds, got {value!r}")
    return int(value)


def _word_from_json(item: Mapping[str, Any]) -> Word:
    text, prob = item["text"], item["prob"]
    if not isinstance(text, str):
        raise TypeError("word text must be a string")
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1:
        raise ValueError("word prob must be a number between 0 and 1")
    return Word(text, _int(item["start"]), _int(item["end"]), float(prob))


def has_repetition(text: str) -> bool:
    """True when ``text`` holds a loop: a word thrice in a row, a phrase twice in a row, or a
    four-word phrase twice anywhere (Whisper's repetition failure mode)."""
    tokens = [t for t in (normalize(w) for w in text.split()) if t]
    for i in range(len(tokens) - 2):
        if tokens[i] == tokens[i + 1] == tokens[i + 2]:
            return True
    for n in (2, 3):
        for i in range(len(tokens) - 2 * n + 1):
            if tokens[i : i + n] == tokens[i + n : i + 2 * n]:
                return True
    seen: set[tuple[str, ...]] = set()
    for i in range(len(tokens) - 3):
        gram = tuple(tokens[i : i + 4])
        if gram in seen:
            return True
        seen.add(gram)
    return False


# --- merge ---


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
        for w in (committed_tail[-_MAX_ALIGN_WORDS:] if heard_again else ())
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
            again = _pending_cut(pending, words[:cut])
            cut = cut if again is None else again
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
    old = [normalize(w.text) for w in zone if normalize(w.text)]
    spoken = [i for i, w in enumerate(words) if normalize(w.text)]
    new = [normalize(words[i].text) for i in spoken]
    for skip in range(min(max_skip, len(new)) + 1):
        for length in range(min(len(old), len(new) - skip), min_len - 1, -1):
            if old[-length:] == new[skip : skip + length]:
                return spoken[skip + length - 1] + 1
    return None


def _pending_cut(pending: Sequence[Word], words: Sequence[Word]) -> int | None:
    """Index of the first of ``words`` that starts a repeat of the held-back ``pending`` words
    (their first two, or a lone word of four letters or more): a window cut mid-speech can
    squeeze its word times seconds early ("and including separating the patient" over 3.0-4.5 s
    for speech at 4.3-6.1 s), so the time cut would drop words no window committed."""
    old = [t for t in (normalize(w.text) for w in pending) if t][:2]
    if not old or (len(old) == 1 and len(old[0]) < 4):
        return None
    spoken = [i for i, w in enumerate(words) if normalize(w.text)]
    new = [normalize(words[i].text) for i in spoken]
    for k in range(len(new) - len(old) + 1):
        if new[k : k + len(old)] == old:
            return spoken[k]
    return None


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
    old = [t for t in (normalize(w.text) for w in committed[-_MAX_ALIGN_WORDS:]) if t]
    spoken = [(i, t) for i, t in enumerate(normalize(w.text) for w in fresh) if t]
    new = [t for _, t in spoken]
    for n in range(min(len(old), len(new)), _ECHO_MIN_WORDS - 1, -1):
        if old[-n:] == new[:n]:
            return spoken[n - 1][0] + 1
    return 0
