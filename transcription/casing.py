"""Sentences across window joins: each window is transcribed on its own, so Whisper starts
it with a capital wherever the cut fell ("in the Middle Ages | When the craftsmen") and ends it
with a period wherever it stops ("terrible news. | And great sadness"). The merge calls
``continue_case`` on the words that follow the committed transcript, and a window cut at a
pause inside a sentence (as an interim pass that heard past it, or else a short pause, says)
has its closing period taken back (``continue_sentence``), so joined phrases read like the
offline transcript (docs/PROTOCOL.md "Windows and events", "The text"; measurements in
docs/STREAMING.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace

from transcription.inference.types import Word
from transcription.transcript import SENTENCE_ENDS, ends_sentence, normalize

# A pause this long or longer after a window's last word may end a sentence: Whisper's period
# stays. A shorter one that speech followed is a breath inside a sentence.
SENTENCE_PAUSE_MS = 500
# Periods that close an abbreviation, not a sentence: they stay whatever the pause.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc prof mt no".split())
_MARKS = ".,;:!?…\"')]»”’"
# A pass's mark that replaces the period taken back ("My fellow Americans, this day").
_PAUSE_MARKS = ",;:"

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


def heard_marks(words: Sequence[Word], last: int, heard: Sequence[Word]) -> str | None:
    """The punctuation an interim pass that heard past a window's cut wrote after
    ``words[last]``, the window's last spoken word ("" for none, "," or "." ...); None without
    evidence: the word not aligned, or the pass stopped there too (Whisper ends every
    transcript with a period). The pass and the window start at the same audio, so their
    words align by text; their times drift apart by a second or more near pauses."""
    ours = [normalize(w.text) for w in words[: last + 1]]
    theirs = [normalize(w.text) for w in heard]
    matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
    aligned = next(
        (b.b + last - b.a for b in matcher.get_matching_blocks() if b.a <= last < b.a + b.size),
        None,
    )
    if aligned is None:
        return None
    rest = heard[aligned + 1 :]
    spoken = next((j for j, w in enumerate(rest) if normalize(w.text)), None)
    if spoken is None:
        return None
    word = heard[aligned].text.strip()
    marks = word[len(word.rstrip(_MARKS)) :]
    return marks + "".join(w.text.strip() for w in rest[:spoken])


def continue_sentence(
    words: Sequence[Word], pause_ms: int | None, heard: Sequence[Word] = ()
) -> list[Word]:
    """``words`` (a window cut at a pause, in time order) with the period closing its last word
    taken back when the sentence goes on: when ``heard``, the words of an interim pass that
    heard past the cut, go on without a sentence end there (``heard_marks``; a comma there is
    kept), or, without such a pass, when ``pause_ms``, the pause after the cut, was shorter
    than ``SENTENCE_PAUSE_MS`` (None: unknown, or not over yet). Whisper ends every window
    with a period wherever the audio stops. ``continue_case`` then writes the next window's
    first word in lower case. Question and exclamation marks, ellipses and abbreviations
    stay."""
    out = list(words)
    spoken = [i for i, w in enumerate(out) if normalize(w.text)]
    if not spoken:
        return out
    last = spoken[-1]
    marks = heard_marks(out, last, heard)
    if marks is not None:
        if any(end in marks for end in SENTENCE_ENDS):
            return out
    elif pause_ms is None or pause_ms >= SENTENCE_PAUSE_MS:
        return out
    mark = marks[:1] if marks and marks[0] in _PAUSE_MARKS else ""
    if any(not normalize(w.text) and w.text.strip() != "." for w in out[last + 1 :]):
        return out  # closing quotes or brackets: leave the sentence as Whisper wrote it
    bare_periods = [i for i in range(last + 1, len(out)) if out[i].text.strip() == "."]
    if bare_periods:
        out[last] = replace(out[last], text=out[last].text.rstrip() + mark)
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
    out[last] = replace(word, text=text[:-1] + mark + word.text[len(text) :])
    return out
