"""Is one stored run's WER really different from another's? A paired bootstrap over stretches of
the reference, from result files already written (no model runs).

Each hypothesis is aligned with its reference (Whisper's English normaliser, minimum edit
distance), every error is charged to a reference word (an insertion to the word before it), and
the references are cut into stretches of ``--stretch`` words. Resampling the stretches with
replacement, the same ones for both runs, gives the spread of the pooled WER difference B − A:
its 95 % interval and the share of resamples in which B is worse. One long reading is many
stretches, so the long-form set weighs by its words, as the pooled WER does.

A run is ``FILE`` (a ``delay_sim.py`` JSON: its ``hypotheses``) or ``FILE:PATH`` with PATH the
dotted keys to the object holding ``hypotheses`` (``pareto.json:candidates.tiny.en auto
b1.quality.stream_5000``). Hypotheses are in the order of ``corpus.load(--sets)``.

Usage: ``python benchmarks/compare.py --pair NAME A B [--pair ...] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from corpus import SETS, SHARED_SPEECH, load

from tests.support.wer import errors_per_word, normalize

RESAMPLES = 10_000


def hypotheses(spec: str) -> list[str]:
    """The hypotheses of a run named ``FILE`` or ``FILE:dotted.path``."""
    file, _, path = spec.partition(":")
    node: Any = json.loads(Path(file).read_text())
    rest = path
    while rest:
        key = next(k for k in sorted(node, key=len, reverse=True) if rest.startswith(k))
        node, rest = node[key], rest[len(key) :].lstrip(".")
    return list(node["hypotheses"])


def stretches(refs: list[str], hyps: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference words and errors per stretch of ``size`` reference words."""
    words: list[int] = []
    errors: list[int] = []
    for ref, hyp in zip(refs, hyps, strict=True):
        charged = errors_per_word(ref, hyp)
        n = len(normalize(ref))
        for start in range(0, max(n, 1), size):
            words.append(min(size, n - start) if n else 0)
            errors.append(sum(charged[start : start + size]))
    return np.array(words), np.array(errors)


def compare(refs: list[str], a: list[str], b: list[str], size: int, seed: int = 0) -> dict:
    """Pooled WER of A and B, and the bootstrap of B − A over the same stretches."""
    words, errors_a = stretches(refs, a, size)
    _, errors_b = stretches(refs, b, size)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(words), size=(RESAMPLES, len(words)))
    diff = 100 * (errors_b[picks].sum(1) - errors_a[picks].sum(1)) / words[picks].sum(1)
    low, high = np.percentile(diff, [2.5, 97.5])
    return {
        "wer_a_pct": 100 * errors_a.sum() / words.sum(),
        "wer_b_pct": 100 * errors_b.sum() / words.sum(),
        "diff_pct": 100 * (errors_b.sum() - errors_a.sum()) / words.sum(),
        "ci95_pct": [float(low), float(high)],
        "b_worse_share": float((diff > 0).mean()),
        "stretches": len(words),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=3, action="append", metavar=("NAME", "A", "B"))
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["clips", "long", "hard"])
    parser.add_argument("--stretch", type=int, default=20, help="reference words per stretch")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    refs = [r.text for r in load(args.sets, SHARED_SPEECH, fluent=0)]
    rows = {
        name: {"a": a, "b": b, **compare(refs, hypotheses(a), hypotheses(b), args.stretch)}
        for name, a, b in args.pair or []
    }
    print("| comparison | WER A % | WER B % | B − A | 95 % interval | B worse in |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        low, high = r["ci95_pct"]
        print(
            f"| {name} | {r['wer_a_pct']:.2f} | {r['wer_b_pct']:.2f} | {r['diff_pct']:+.2f} "
            f"| {low:+.2f} … {high:+.2f} | {100 * r['b_worse_share']:.0f} % |"
        )
    if args.json:
        args.json.write_text(json.dumps({"stretch_words": args.stretch, "pairs": rows}, indent=1))


if __name__ == "__main__":
    main()
