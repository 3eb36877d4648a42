"""Sentence case across window joins: each window is transcribed on its own, so Whisper starts
it with a capital wherever the cut fell ("in the Middle Ages | When the craftsmen"); the merge
calls ``continue_case`` on the words that follow the committed transcript, so joined phrases
read like the offline transcript (docs/PROTOCOL.md "Windows and events", "The text";
measurements in docs/STREAMING.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from transcription.inference.types import Word
from transcription.transcript import ends_sentence

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
