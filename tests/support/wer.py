"""Word error rate and duplicate-word measures for transcripts of test speech."""

from __future__ import annotations

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
    # One-row Levenshtein DP over words: previous[j] = distance(ref[:i-1], hyp[:j]).
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1]


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
