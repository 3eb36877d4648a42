"""Transcript quality per model: offline WER (whole file in one backend call) vs streaming WER
through a real daphne at 5 s/0.5 s and 2 s/0.2 s windows, words repeated at window joins
(repeated word pairs), words lost at joins (reference words missing within one word of a
boundary between two ``speech.phrase`` events), words emitted on 60 s of silence, white noise
and pink noise, and streaming WER with ``WSS_AUDIO_CTX=full`` vs ``auto`` (the issue wants
``auto`` by default only if it costs at most 0.5 WER points).

Corpus: generated long recordings (several voices, pauses 0.2–2 s, ``tests/support/speech.py``)
plus the real recordings of ``--corpus`` (``manifest.tsv``) when that folder exists. WER is
pooled (all word errors / all reference words) after Whisper's English normaliser.

Usage: ``python benchmarks/quality.py [--quick] [--models tiny.en base] [--corpus DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    SAMPLE_RATE_HZ,
    database_url,
    model_path,
    pcm16,
    progress,
    table,
    timed_session,
    write_result,
)

from tests.support.client import config
from tests.support.server import Server, start_server
from tests.support.wer import normalize, repeated_bigrams, word_errors, words_lost_at_joins

WINDOWS = ((5000, 500), (2000, 200))
NOISE_S = 60.0


@dataclass(frozen=True)
class Recording:
    name: str
    audio: np.ndarray
    text: str


def generated_corpus(count: int, sentences_each: int) -> list[Recording]:
    from tests.support.speech import SENTENCES, VOICES, compose

    out = []
    for r in range(count):
        first = r * sentences_each
        picked = [SENTENCES[(first + i) % len(SENTENCES)] for i in range(sentences_each)]
        voices = VOICES[r % len(VOICES) :] + VOICES[: r % len(VOICES)]
        comp = compose(picked, voices, noise_level=0.001)
        out.append(Recording(f"gen_{r + 1}", comp.audio, comp.text))
    return out


def real_corpus(folder: Path, limit: int | None) -> list[Recording]:
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines()[1:]:
        name, _duration, _repo, _path, text = line.split("\t", 4)
        with wave.open(str(folder / name), "rb") as wav:
            assert wav.getframerate() == SAMPLE_RATE_HZ and wav.getnchannels() == 1
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        out.append(Recording(name, data.astype(np.float32) / 32768.0, text))
    return out[:limit]


def noises(seconds: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = int(seconds * SAMPLE_RATE_HZ)
    white = rng.normal(0, 0.05, n)
    # Pink: white noise shaped by 1/sqrt(f) in the frequency domain, scaled to the same RMS.
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    pink = np.fft.irfft(spectrum, n)
    pink *= 0.05 / pink.std()
    return {
        "silence": np.zeros(n, dtype=np.float32),
        "white noise": white.astype(np.float32),
        "pink noise": pink.astype(np.float32),
    }


def pooled(
    pairs: list[tuple[str, str]],
    phrases: list[list[str]] | None = None,
    offline: list[str] | None = None,
) -> dict[str, Any]:
    """Pooled WER and join errors of (reference, hypothesis) pairs; ``phrases`` (the committed
    phrases of each hypothesis) adds the words lost at joins, not counting words the
    ``offline`` transcripts drop too."""
    errors = sum(word_errors(ref, hyp) for ref, hyp in pairs)
    words = sum(len(normalize(ref)) for ref, _ in pairs)
    out: dict[str, Any] = {
        "wer_pct": 100 * errors / max(words, 1),
        "errors": errors,
        "ref_words": words,
        "repeated_bigrams": sum(repeated_bigrams(hyp, ref) for ref, hyp in pairs),
    }
    if phrases is not None:
        wholes: list[str | None] = list(offline) if offline else [None] * len(pairs)
        out["lost_at_joins"] = sum(
            words_lost_at_joins(ref, parts, whole)
            for (ref, _), parts, whole in zip(pairs, phrases, wholes, strict=True)
        )
        out["joins"] = sum(max(0, len(parts) - 1) for parts in phrases)
    return out


def offline(model: str, corpus: list[Recording]) -> dict[str, Any]:
    from transcription.inference.backend import load_backend
    from transcription.inference.types import InferenceRequest

    backend = load_backend("shared", model_path(model), concurrency=1, n_threads=2)
    pairs = []
    try:
        for rec in corpus:
            request = InferenceRequest(language="en", beam_size=1, n_threads=2)
            segments = backend.transcribe(rec.audio, request)
            pairs.append((rec.text, " ".join(s.text for s in segments)))
    finally:
        backend.close()
    return {**pooled(pairs), "hypotheses": [h for _, h in pairs]}


def _server(model: str, audio_ctx: str) -> Server:
    return start_server(
        {
            "WHISPER_MODEL_PATH": str(model_path(model)),
            "WSS_AUDIO_CTX": audio_ctx,
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_IDLE_TIMEOUT_S": "600",
            "DATABASE_URL": database_url(),
        },
        timeout=120,
    )


async def streamed(
    server: Server, audio: np.ndarray, window: tuple[int, int], paced: bool = False
) -> list[str]:
    """The committed phrases of one stream, sent as fast as backpressure allows or ``paced``
    in real time (a live speaker: the policy sees less audio ahead when it picks a cut)."""
    payload = config(window_duration_ms=window[0], overlap_duration_ms=window[1])
    session = await timed_session(server.url, pcm16(audio), payload, realtime=paced, timeout_s=900)
    if session.refused or session.errors:
        raise RuntimeError(f"stream failed: {session.refused or session.errors}")
    return session.phrases


def streaming(
    server: Server,
    corpus: list[Recording],
    window: tuple[int, int],
    offline: list[str],
    paced: bool = False,
) -> dict[str, Any]:
    phrases = [asyncio.run(streamed(server, rec.audio, window, paced)) for rec in corpus]
    pairs = [(rec.text, " ".join(parts)) for rec, parts in zip(corpus, phrases, strict=True)]
    return {**pooled(pairs, phrases, offline), "hypotheses": [h for _, h in pairs]}


def run_model(
    model: str,
    corpus: list[Recording],
    noise_s: float,
    compare_ctx: bool,
    windows: tuple[tuple[int, int], ...] = WINDOWS,
    paced: bool = False,
) -> dict[str, Any]:
    progress(f"quality: {model}: offline WER over {len(corpus)} recordings")
    result: dict[str, Any] = {"model": model, "offline": offline(model, corpus)}
    # The default (WSS_AUDIO_CTX=full) for both window sizes and the noise clips; ``auto``
    # (encode only the audio present) at 5 s windows for the comparison.
    server = _server(model, "full")
    try:
        for window in windows:
            progress(f"quality: {model}: streaming {window[0]}/{window[1]} ms (audio_ctx full)")
            result[f"stream_{window[0]}_{window[1]}_full"] = streaming(
                server, corpus, window, result["offline"]["hypotheses"]
            )
        if paced:
            progress(f"quality: {model}: streaming 5000/500 ms paced in real time")
            result["stream_5000_500_paced"] = streaming(
                server, corpus, WINDOWS[0], result["offline"]["hypotheses"], paced=True
            )
        emitted = {}
        for name, audio in noises(noise_s).items():
            progress(f"quality: {model}: {noise_s:.0f} s of {name}")
            text = " ".join(asyncio.run(streamed(server, audio, WINDOWS[0])))
            emitted[name] = {"words": len(normalize(text)), "text": text}
        result["non_speech"] = emitted
    finally:
        server.stop()
    if compare_ctx:
        server = _server(model, "auto")
        try:
            progress(f"quality: {model}: streaming 5000/500 ms (audio_ctx auto)")
            result["stream_5000_500_auto"] = streaming(
                server, corpus, WINDOWS[0], result["offline"]["hypotheses"]
            )
        finally:
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny.en, small corpus, 20 s noise")
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument(
        "--short-window-models",
        nargs="+",
        help="models also streamed at 2000/200 ms windows (default: all; costly for base)",
    )
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/speech"))
    parser.add_argument("--generated", type=int, default=3, help="generated recordings")
    parser.add_argument(
        "--paced-models",
        nargs="*",
        default=[],
        help="models also streamed in real time at 5000/500 ms (takes the corpus length)",
    )
    args = parser.parse_args()
    models = ["tiny.en"] if args.quick else args.models
    corpus = generated_corpus(1 if args.quick else args.generated, 4 if args.quick else 10)
    corpus += real_corpus(args.corpus, 3 if args.quick else None)
    noise_s = 20.0 if args.quick else NOISE_S
    total_s = sum(len(r.audio) for r in corpus) / SAMPLE_RATE_HZ
    progress(f"quality: corpus of {len(corpus)} recordings, {total_s:.0f} s")
    short = set(args.short_window_models or models)
    results = [
        run_model(
            m,
            corpus,
            noise_s,
            compare_ctx=True,
            windows=WINDOWS if m in short else WINDOWS[:1],
            paced=m in args.paced_models,
        )
        for m in models
    ]
    rows = []
    for r in results:
        row: dict[str, Any] = {"model": r["model"], "offline WER %": r["offline"]["wer_pct"]}
        for w in WINDOWS:
            s = r.get(f"stream_{w[0]}_{w[1]}_full")
            row[f"{w[0]}/{w[1]} WER %"] = s["wer_pct"] if s else "not run"
            row[f"{w[0]}/{w[1]} repeats"] = s["repeated_bigrams"] if s else "not run"
            row[f"{w[0]}/{w[1]} lost at joins"] = s["lost_at_joins"] if s else "not run"
        paced_run = r.get("stream_5000_500_paced")
        row["5000/500 paced WER %"] = paced_run["wer_pct"] if paced_run else "not run"
        if "stream_5000_500_auto" in r:
            full = r["stream_5000_500_full"]["wer_pct"]
            auto = r["stream_5000_500_auto"]["wer_pct"]
            row["5000/500 WER % ctx auto"] = auto
            row["auto − full (points)"] = auto - full
        for name, e in r["non_speech"].items():
            row[f"words on {name}"] = e["words"]
        rows.append(row)
    md = (
        f"### Transcript quality, {len(corpus)} recordings ({total_s:.0f} s; "
        f"{sum(1 for c in corpus if c.name.startswith('gen_'))} generated), "
        f"non-speech {noise_s:.0f} s each\n\n" + table(rows, list(rows[0]))
    )
    verdicts = []
    for row in rows:
        if "auto − full (points)" in row:
            ok = row["auto − full (points)"] <= 0.5
            verdicts.append(
                f"{row['model']}: audio_ctx auto costs {row['auto − full (points)']:+.2f} WER "
                "points vs full → "
                + ("auto could be the default" if ok else "full stays the default")
            )
    md += "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    write_result(
        "quality",
        {"results": results, "corpus": [c.name for c in corpus], "quick": args.quick},
        md,
    )


if __name__ == "__main__":
    main()
