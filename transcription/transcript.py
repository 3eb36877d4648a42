"""The committed transcript of a session: its words, its text, its checkpoint form.

Normative: ``docs/PROTOCOL.md`` "Windows and events" and "Checkpoints and resume" (no loss, no
duplication after a resume). Pure and synchronous; which words of a new window are new is
``merge.py``'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from transcription.inference.types import Word

TIME_TOLERANCE_MS = 300  # word-time jitter between two transcriptions of the same audio
LONG_PAUSE_MS = 2000  # context from before a pause this long no longer helps the next window
MAX_ALIGN_WORDS = 32  # committed words considered for alignment; an overlap holds far fewer
SENTENCE_ENDS = (".", "?", "!", "…")
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
    return word.text.rstrip("\"')]»”’").endswith(SENTENCE_ENDS)


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

    def recent_words(self, since_ms: int, limit: int = MAX_ALIGN_WORDS) -> list[Word]:
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
