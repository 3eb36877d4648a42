"""Word error rate and duplicate-word measures for transcripts of test speech."""

from __future__ import annotations

import difflib
import functools
from collections import Counter
from collections.abc import Callable


@functools.cache
def _normalizer() -> Callable[[str], str]:
    # Imported lazily: building the normaliser loads a spelling table, and most tests never score.
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> list[str]:
    """Words of ``text`` after Whisper's English normaliser (case, punctuation, spelling)."""
    return _normalizer()(text).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Minimum substitutions + deletions + insertions turning reference words into hypothesis."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return _edit_costs(ref, hyp)[len(ref)][len(hyp)]


def errors_per_word(reference: str, hypothesis: str) -> list[int]:
    """The errors of one minimum-edit alignment charged to the reference words they touch (an
    insertion to the word before it; with no reference word, to a single slot): they sum to
    ``word_errors``. For resampling stretches of a transcript (``benchmarks/compare.py``)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    charged = [0] * max(1, len(ref))
    for op, i, _ in _alignment(ref, hyp):
        if op != "match":
            charged[max(0, i)] += 1
    return charged


def _alignment(ref: list[str], hyp: list[str]) -> list[tuple[str, int, int]]:
    """One minimum-edit alignment, in order: (op, reference index, hypothesis index) with op
    "match", "substitute", "delete" (the hypothesis index it would have preceded) or
    "insert" (the reference index before it, -1 at the start)."""
    cost = _edit_costs(ref, hyp)
    ops: list[tuple[str, int, int]] = []
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(("match" if ref[i - 1] == hyp[j - 1] else "substitute", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(("delete", i - 1, j))
            i -= 1
        else:
            ops.append(("insert", i - 1, j - 1))
            j -= 1
    return ops[::-1]


def _edit_costs(ref: list[str], hyp: list[str]) -> list[list[int]]:
    """Levenshtein table over words: ``cost[i][j]`` = edits turning ``ref[:i]`` into ``hyp[:j]``."""
    cost = [
        [i + j if i == 0 or j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)
    ]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,  # deletion
                cost[i][j - 1] + 1,  # insertion
                cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),  # substitution or match
            )
    return cost


def wer(reference: str, hypothesis: str) -> float:
    """Word errors divided by the number of reference words (after normalisation).

    An empty reference gives 0.0 for an empty hypothesis and the count of inserted words
    otherwise, so silence tests can still assert ``wer(...) == 0``.
    """
    n_ref = len(normalize(reference))
    return word_errors(reference, hypothesis) / max(n_ref, 1)


def repeated_bigrams(hypothesis: str, reference: str) -> int:
    """How many adjacent word pairs the hypothesis repeats beyond the reference.

    Counts, over normalised words, the excess occurrences of each bigram the reference contains
    (``the meeting the meeting`` against one ``the meeting``) plus immediate word repeats
    (``meeting meeting``) the reference lacks. Unrelated misrecognitions create new bigrams too;
    they are deliberately not counted, so the measure isolates duplication at window joins.
    """
    hyp_pairs = Counter(_bigrams(normalize(hypothesis)))
    ref_pairs = Counter(_bigrams(normalize(reference)))
    excess = 0
    for pair, count in hyp_pairs.items():
        if pair in ref_pairs or pair[0] == pair[1]:
            excess += max(0, count - ref_pairs[pair])
    return excess


def _bigrams(words: list[str]) -> list[tuple[str, str]]:
    return list(zip(words, words[1:], strict=False))


def words_lost_at_joins(
    reference: str, phrases: list[str], offline: str | None = None, reach: int = 1
) -> int:
    """Reference words the transcript lacks within ``reach`` words of a join between two
    phrases (``speech.phrase`` events, one per committed window), by a minimum-edit alignment.

    A deleted reference word sits between two hypothesis words; it is lost at a join when a
    phrase boundary lies within ``reach`` words of that gap. Substitutions are not counted (a
    misheard word was not lost), nor, given the ``offline`` transcript of the same audio, words
    the model drops there too ("words words words" comes out once either way).
    """
    words: list[str] = []
    joins: list[int] = []  # index of the first word of each phrase after the first
    for phrase in phrases:
        part = normalize(phrase)
        if words and part:
            joins.append(len(words))
        words += part
    ref = normalize(reference)
    dropped_anyway = set() if offline is None else dict(_deletions(ref, normalize(offline)))
    return sum(
        1
        for index, gap in _deletions(ref, words)
        if index not in dropped_anyway and any(abs(gap - join) <= reach for join in joins)
    )


def _deletions(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """(reference index, index of the hypothesis word it would have preceded) for each
    reference word a minimum-edit alignment deletes."""
    return [(i, j) for op, i, j in _alignment(ref, hyp) if op == "delete"]


def style_differences(offline: str, hypothesis: str) -> dict[str, int]:
    """How the hypothesis' casing and sentence ends differ from the offline transcript of the
    same audio, over the words both have (raw words, matched by a word alignment of their
    lower-case letters and digits): ``case`` counts a word capitalised in one and not the
    other, ``sentence_ends`` a word closing a sentence (``.?!``) in one and not the other.
    The WER normaliser ignores both; a window join that breaks a sentence shows up here."""
    a = [w for w in offline.split() if _bare(w)]
    b = [w for w in hypothesis.split() if _bare(w)]
    matcher = difflib.SequenceMatcher(a=[_bare(w) for w in a], b=[_bare(w) for w in b])
    case = ends = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            x, y = a[block.a + k], b[block.b + k]
            case += _capital(x) != _capital(y)
            ends += x.rstrip("\"')").endswith((".", "?", "!")) != y.rstrip("\"')").endswith(
                (".", "?", "!")
            )
    return {"case": case, "sentence_ends": ends}


def _bare(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def _capital(word: str) -> bool:
    letters = [ch for ch in word if ch.isalpha()]
    return bool(letters) and letters[0].isupper()
