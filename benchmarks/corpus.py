"""The speech the quality and delay benchmarks stream, in named sets.

- ``clips``: real short clips (``<shared>/speech/manifest.tsv``, 4–27 s each).
- ``long``: real long-form readings (``<shared>/speech/long/manifest.tsv``, 53–231 s each).
- ``hard``: generated long-form speech with what real slow speech does to window joins and
  fluent readings do not: pauses of 1–4 s in mid-sentence (a word alone after a long pause),
  hesitations and repeated words ("we we never"), short verse lines with a pause at every line
  end, and number words said alone ("two,"). One voice per recording, low noise under it.
- ``fluent``: generated sentences in several voices with 0.2–2 s pauses between them.

The real sets are read where they lie (``../shared/speech`` next to the repository, or
``--corpus``); they are never copied. Absent folders give empty sets.
"""

from __future__ import annotations

import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from tests.support.speech import SENTENCES, VOICES, compose  # noqa: E402

SAMPLE_RATE_HZ = 16_000
SHARED_SPEECH = REPO_ROOT.parent / "shared" / "speech"
SETS = ("clips", "long", "hard", "fluent")


@dataclass(frozen=True)
class Recording:
    """One recording of a set: float32 16 kHz mono samples and the reference text."""

    name: str
    audio: np.ndarray
    text: str
    set: str = "fluent"

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ


# (fragment, pause after it in ms): the pause lands mid-sentence wherever a fragment ends
# without a full stop. Every text is plain prose or public-domain verse without digits.
HARD_SCRIPTS: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...] = (
    (
        "hard_pauses",
        "hibari",
        (
            ("When we arrived at the old farmhouse", 2500),
            ("the door was already open", 600),
            ("and somebody had lit a fire in the kitchen.", 1500),
            ("Nobody", 3000),
            ("knew who had been there before us.", 800),
            ("We waited for a while", 1800),
            ("and then", 3500),
            ("my brother walked slowly up the stairs", 1200),
            ("to look at the rooms", 2200),
            ("where our grandparents used to sleep.", 900),
            ("He came back down", 4000),
            ("holding a small wooden box", 1000),
            ("full of letters and photographs.", 2000),
            ("Some of them were", 2800),
            ("more than a hundred years old.", 700),
            ("We read them together", 1500),
            ("until the fire went out.", 0),
        ),
    ),
    (
        "hard_hesitations",
        "flite-rms",
        (
            ("So I I think the the main problem is that we we never had enough time.", 1000),
            ("The report was finished on Friday", 2000),
            ("but but nobody read it before the meeting.", 1500),
            ("And and then the manager said", 2500),
            ("that we would have to start again from the beginning.", 800),
            ("I mean, I mean it was it was a lot of work.", 1200),
            ("The the numbers were wrong,", 3000),
            ("the charts were wrong,", 1800),
            ("and the the summary was missing.", 1000),
            ("So so we we fixed it", 2200),
            ("over the weekend.", 700),
            ("Honestly,", 3500),
            ("I do not know how we did it.", 0),
        ),
    ),
    (
        "hard_verse",
        "festival-slt",
        (
            # Christina Rossetti, "Who Has Seen the Wind?" (1872).
            ("Who has seen the wind?", 1300),
            ("Neither I nor you:", 1100),
            ("But when the leaves hang trembling,", 1400),
            ("The wind is passing through.", 2200),
            ("Who has seen the wind?", 1200),
            ("Neither you nor I:", 1000),
            ("But when the trees bow down their heads,", 1500),
            ("The wind is passing by.", 2500),
            ("Count with me.", 1200),
            ("One,", 1400),
            ("two,", 1400),
            ("three,", 2000),
            ("and go.", 2400),
            # Robert Louis Stevenson, "My Shadow" (1885).
            ("I have a little shadow", 900),
            ("that goes in and out with me,", 1300),
            ("And what can be the use of him", 1000),
            ("is more than I can see.", 1800),
            ("He is very, very like me", 1100),
            ("from the heels up to the head;", 1500),
            ("And I see him jump before me,", 1000),
            ("when I jump into my bed.", 0),
        ),
    ),
)


def hard_corpus(noise_level: float = 0.001) -> list[Recording]:
    """The generated hard cases (``HARD_SCRIPTS``), synthesised offline and cached."""
    out = []
    for name, voice, script in HARD_SCRIPTS:
        fragments = [text for text, _ in script]
        pauses = [pause for _, pause in script[:-1]] or [0]
        comp = compose(fragments, [voice], pauses_ms=pauses, noise_level=noise_level)
        out.append(Recording(name, comp.audio, comp.text, "hard"))
    return out


def fluent_corpus(count: int, sentences_each: int) -> list[Recording]:
    """``count`` recordings of ``sentences_each`` generated sentences, voices cycling."""
    out = []
    for r in range(count):
        first = r * sentences_each
        picked = [SENTENCES[(first + i) % len(SENTENCES)] for i in range(sentences_each)]
        voices = VOICES[r % len(VOICES) :] + VOICES[: r % len(VOICES)]
        comp = compose(picked, voices, noise_level=0.001)
        out.append(Recording(f"gen_{r + 1}", comp.audio, comp.text, "fluent"))
    return out


def real_corpus(folder: Path, set_name: str, limit: int | None = None) -> list[Recording]:
    """The recordings of ``folder/manifest.tsv`` (16 kHz mono WAV), or none without it."""
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines()[1:]:
        name, _duration, _repo, _path, text = line.split("\t", 4)
        with wave.open(str(folder / name), "rb") as wav:
            assert wav.getframerate() == SAMPLE_RATE_HZ and wav.getnchannels() == 1
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        out.append(Recording(name, data.astype(np.float32) / 32768.0, text, set_name))
    return out[:limit]


def load(
    sets: Sequence[str], shared: Path = SHARED_SPEECH, fluent: int = 2, quick: bool = False
) -> list[Recording]:
    """The recordings of ``sets`` in ``SETS`` order (``quick``: a few of each)."""
    corpus: list[Recording] = []
    limit = 2 if quick else None
    for name in SETS:
        if name not in sets:
            continue
        if name == "clips":
            corpus += real_corpus(shared, "clips", limit)
        elif name == "long":
            corpus += real_corpus(shared / "long", "long", 1 if quick else None)
        elif name == "hard":
            corpus += hard_corpus()[:limit]
        else:
            corpus += fluent_corpus(1 if quick else fluent, 4 if quick else 10)
    return corpus
