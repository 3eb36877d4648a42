"""Sentences across window joins: each window is transcribed on its own, so Whisper starts
it with a capital wherever the cut fell ("in the Middle Ages | When the craftsmen") and ends it
with a period wherever it stops ("terrible news. | And great sadness"). The merge calls
``continue_case`` on the words that follow the committed transcript, and a window cut at a
short pause has its closing period taken back (``continue_sentence``), so joined phrases read
like the offline transcript (docs/PROTOCOL.md "Windows and events", "The text"; measurements in
docs/STREAMING.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from transcription.inference.types import Word
from transcription.transcript import ends_sentence, normalize

# A pause this long or longer after a window's last word may end a sentence: Whisper's period
# stays. A shorter one that speech followed is a breath inside a sentence.
SENTENCE_PAUSE_MS = 500
# Periods that close an abbreviation, not a sentence: they stay whatever the pause.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc prof mt no".split())

# Words Whisper capitalises only because a window starts with them: at a join inside a
# sentence they are written in lower case, as the offline transcript has them. Proper nouns
# and "I" are not in the list, so they keep their capital.
_LOWER_AT_JOIN = frozenset(
    """a about after all also an and as at because before but by can could did do does for
    from had has have he her here his how if in into is it its just like many more most my no
    not now of on once one only or our she so some such than that the their them then there
    these they this those though through to too until up upon very was we were what when where
    which while who whose why will with would yet you your""".split()
)


def continue_case(previous: Word | None, fresh: Sequence[Word]) -> list[Word]:
    """``fresh`` (the words after ``previous``, the last committed one) with its first word in
    lower case when it is a common word inside a sentence (``previous`` ends none): Whisper
    starts every window with a capital, wherever it cuts. After a sentence end nothing changes:
    that end is often one Whisper put at the previous window's cut, and the next window,
    hearing the anchor word again, rightly goes on in lower case."""
    words = list(fresh)
    if previous is None or not words:
        return words
    first = words[0]
    text = first.text
    lead = len(text) - len(text.lstrip())
    body = text[lead:]
    if not body[:1].isalpha():
        return words
    if not ends_sentence(previous) and body[0].isupper() and body[1:] == body[1:].lower():
        if body.rstrip(".,!?;:…\"')]»”’").lower() in _LOWER_AT_JOIN:
            body = body[0].lower() + body[1:]
    if body != text[lead:]:
        words[0] = replace(first, text=text[:lead] + body)
    return words


def continue_sentence(words: Sequence[Word], pause_ms: int | None) -> list[Word]:
    """``words`` (a window cut at a pause, in time order) with the period closing its last word
    taken back when ``pause_ms``, the pause after it, was shorter than ``SENTENCE_PAUSE_MS``
    (None: unknown, or not over yet): Whisper ends every window with one wherever the audio
    stops. ``continue_case`` then writes the next window's first word in lower case. Question
    and exclamation marks, ellipses and abbreviations stay."""
    out = list(words)
    if pause_ms is None or pause_ms >= SENTENCE_PAUSE_MS:
        return out
    spoken = [i for i, w in enumerate(out) if normalize(w.text)]
    if not spoken:
        return out
    last = spoken[-1]
    if any(not normalize(w.text) and w.text.strip() != "." for w in out[last + 1 :]):
        return out  # closing quotes or brackets: leave the sentence as Whisper wrote it
    bare_periods = [i for i in range(last + 1, len(out)) if out[i].text.strip() == "."]
    if bare_periods:
        return [w for i, w in enumerate(out) if i not in bare_periods]
    word = out[last]
    text = word.text.rstrip()
    body = text.strip().rstrip(".")
    if (
        not text.endswith(".")
        or text.endswith("..")
        or "." in body
        or body.lower() in _ABBREVIATIONS
        or len(body) < 2
    ):
        return out
    out[last] = replace(word, text=text[:-1] + word.text[len(text) :])
    return out
