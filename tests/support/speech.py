"""Offline English test speech with known text (see /work/shared/TEST_SPEECH.md).

Every voice runs locally: hibari-tts (its bundled default voice only; the others download from a
hub), flite, festival with the HTS slt voice, and espeak-ng. Results are resampled to 16 kHz mono
float32 and cached on disk, so a test suite pays for synthesis once per sentence and voice.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

if TYPE_CHECKING:
    from hibari import Hibari

SAMPLE_RATE_HZ = 16_000

_Engine = Callable[[str], tuple[np.ndarray, int]]

# The clear voices (tiny.en WER 1.8-2.9 % in TEST_SPEECH.md); espeak and flite-slt are noticeably
# worse and only suit tests that do not assert on words.
VOICES: tuple[str, ...] = ("hibari", "flite-rms", "festival-slt")
ALL_VOICES: tuple[str, ...] = ("hibari", "flite-rms", "flite-slt", "festival-slt", "espeak")

# Bump when synthesis or post-processing changes, so stale cache entries are not reused.
_CACHE_VERSION = "1"

# No digits: whisper writes numbers as digits, which would count as errors (TEST_SPEECH.md).
SENTENCES: tuple[str, ...] = (
    "Please remember to bring the blue folder to the meeting tomorrow morning.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Our server processes audio in small chunks and sends the text back.",
    "She walked slowly along the beach while the sun was setting.",
    "The library will be closed on the first day of the holiday.",
    "My grandmother grows tomatoes and beans in her small garden every summer.",
    "We should paint the kitchen walls a lighter color before winter comes.",
    "The train to the city leaves from the station after lunch.",
    "He forgot his umbrella at home and got wet on the way.",
    "Children were playing football in the park until it became dark.",
    "The doctor asked me to drink more water and get more sleep.",
    "A strong wind knocked over the old fence behind our house.",
    "They opened a new bakery on the corner of our street last week.",
    "Please turn off the lights when you leave the office tonight.",
    "The museum has a large collection of paintings from famous artists.",
    "I would like a cup of coffee with milk and no sugar.",
    "The teacher explained the lesson again because nobody understood it the first time.",
    "Our neighbors adopted a friendly brown dog from the animal shelter.",
    "The mountain road was narrow and full of sharp turns.",
    "She sent a long letter to her cousin who lives abroad.",
    "The farmer sold fresh eggs and honey at the weekend market.",
    "Reading a good book is a wonderful way to spend a quiet evening.",
    "The pilot announced that the plane would land earlier than expected.",
    "We cooked rice and vegetables over a small fire at the camp.",
)

# Varied gaps between sentences, all within 200-2000 ms, so window joins fall both inside long
# silences and right between closely spaced sentences.
_DEFAULT_PAUSES_MS: tuple[int, ...] = (400, 1200, 250, 2000, 700, 1600, 200, 900, 1400, 550)


def cache_dir() -> Path:
    """Directory holding cached clips: $OPENASR_SPEECH_CACHE or /tmp/openasr-speech-cache."""
    return Path(os.environ.get("OPENASR_SPEECH_CACHE", "/tmp/openasr-speech-cache"))


def synthesize(text: str, voice: str) -> np.ndarray:
    """Speak ``text`` with ``voice``; returns float32 mono samples at 16 kHz (cached on disk).

    The same (text, voice) always returns the same samples: every engine here is deterministic
    (hibari with seed=0) and a cache hit returns the bytes written on the first call.
    """
    if voice not in ALL_VOICES:
        raise ValueError(f"voice must be one of {', '.join(ALL_VOICES)}, got {voice!r}")
    key = hashlib.sha256(f"{_CACHE_VERSION}\0{voice}\0{text}".encode()).hexdigest()
    path = cache_dir() / f"{key}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (FileNotFoundError, ValueError, EOFError, OSError):
        pass  # missing or unreadable (e.g. another process was killed mid-write): synthesise again
    audio, rate = _ENGINES[voice](text)
    audio = _trim(resample(audio, rate, SAMPLE_RATE_HZ))
    _atomic_save(path, audio)
    return audio


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float audio with soxr (HQ); returns float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio.copy()
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as signed 16-bit little-endian bytes (clipped, rounded)."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2").tobytes()


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, rate: int = SAMPLE_RATE_HZ) -> None:
    """Write mono 16-bit PCM WAV (handy for listening to a failing test's input)."""
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(to_pcm16(audio))


def tone(seconds: float, rate: int = SAMPLE_RATE_HZ) -> bytes:
    """A warbling 220 Hz tone as PCM s16le: loud non-speech for protocol tests (the FAKE backend
    writes words for any non-silent audio)."""
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (audio * 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class Composition:
    """Long-form speech: ``audio`` (float32, 16 kHz), reference ``text`` and per-sentence spans."""

    audio: np.ndarray
    text: str
    spans_ms: tuple[tuple[int, int], ...]

    @property
    def duration_ms(self) -> int:
        """Length of ``audio`` in milliseconds."""
        return len(self.audio) * 1000 // SAMPLE_RATE_HZ


def compose(
    sentences: Sequence[str],
    voices: Sequence[str],
    pauses_ms: Sequence[int] | None = None,
    lead_ms: int = 300,
    tail_ms: int = 500,
    noise_level: float = 0.0,
) -> Composition:
    """Join synthesised sentences with silences; voices cycle over the sentences.

    ``pauses_ms`` gives the gap after each sentence but the last (cycled if shorter); by default a
    fixed varied pattern between 200 and 2000 ms. ``noise_level`` > 0 adds seeded white noise of
    that RMS everywhere, so silences are not digital zero.
    """
    if not sentences:
        raise ValueError("sentences must not be empty")
    if not voices:
        raise ValueError("voices must not be empty")
    pauses = tuple(pauses_ms) if pauses_ms is not None else _DEFAULT_PAUSES_MS
    if not pauses:
        raise ValueError("pauses_ms must not be empty")
    parts: list[np.ndarray] = [_silence(lead_ms)]
    spans: list[tuple[int, int]] = []
    cursor = len(parts[0])
    for i, sentence in enumerate(sentences):
        clip = synthesize(sentence, voices[i % len(voices)])
        # Pad to a whole millisecond so spans_ms are exact sample offsets.
        clip = np.pad(clip, (0, -len(clip) % (SAMPLE_RATE_HZ // 1000)))
        spans.append((_ms(cursor), _ms(cursor + len(clip))))
        parts.append(clip)
        cursor += len(clip)
        gap = _silence(pauses[i % len(pauses)] if i < len(sentences) - 1 else tail_ms)
        parts.append(gap)
        cursor += len(gap)
    audio = np.concatenate(parts).astype(np.float32)
    if noise_level > 0:
        rng = np.random.default_rng(0)
        audio = audio + rng.normal(0.0, noise_level, len(audio)).astype(np.float32)
    return Composition(audio=audio, text=" ".join(sentences), spans_ms=tuple(spans))


# --- engines: each returns (float32 mono samples, sample rate) ---


@functools.cache
def _hibari() -> Hibari:
    from hibari import Hibari

    # Only the bundled default voice ("heart") works offline.
    return Hibari(threads=1)


def _synth_hibari(text: str) -> tuple[np.ndarray, int]:
    from hibari import SAMPLE_RATE

    tts = _hibari()
    return np.asarray(tts(text, seed=0), dtype=np.float32), SAMPLE_RATE


def _synth_flite(voice: str) -> _Engine:
    def run(text: str) -> tuple[np.ndarray, int]:
        return _run_to_wav(["flite", "-voice", voice, "-t", text, "-o", "{out}"])

    return run


def _synth_festival_slt(text: str) -> tuple[np.ndarray, int]:
    cmd = ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", "{out}"]
    return _run_to_wav(cmd, stdin=text)


def _synth_espeak(text: str) -> tuple[np.ndarray, int]:
    return _run_to_wav(["espeak-ng", "-v", "en-us", "-s", "150", "-w", "{out}", text])


def _run_to_wav(cmd: list[str], stdin: str | None = None) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="openasr-tts-") as tmp:
        out = os.path.join(tmp, "out.wav")
        argv = [out if arg == "{out}" else arg for arg in cmd]
        subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True, timeout=120)
        return _read_wav(out)


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = data.reshape(-1, channels).mean(axis=1) / 32768.0
    return samples.astype(np.float32), rate


_ENGINES: dict[str, _Engine] = {
    "hibari": _synth_hibari,
    "flite-rms": _synth_flite("rms"),
    "flite-slt": _synth_flite("slt"),
    "festival-slt": _synth_festival_slt,
    "espeak": _synth_espeak,
}


# --- helpers ---


def _trim(audio: np.ndarray, threshold: float = 1e-3, margin_ms: int = 30) -> np.ndarray:
    # Engines pad clips with uneven silence; trimming it makes compose()'s pauses and spans mean
    # what they say.
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    margin = margin_ms * SAMPLE_RATE_HZ // 1000
    return audio[max(0, loud[0] - margin) : loud[-1] + 1 + margin].copy()


def _atomic_save(path: Path, audio: np.ndarray) -> None:
    # Concurrent test processes may synthesise the same clip; os.replace makes the last writer
    # win with a complete file and no reader ever sees a partial one.
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, audio, allow_pickle=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _silence(ms: int) -> np.ndarray:
    return np.zeros(ms * SAMPLE_RATE_HZ // 1000, dtype=np.float32)


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE_HZ
