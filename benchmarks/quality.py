"""Transcript quality per model: offline WER (whole file in one backend call) vs streaming WER
through a real daphne at 5 s/0.5 s and 2 s/0.2 s windows, words repeated at window joins
(repeated word pairs), words lost at joins (reference words missing within one word of a
boundary between two ``speech.phrase`` events), words emitted on 60 s of silence, white noise
and pink noise, and streaming WER with ``WSS_AUDIO_CTX=full`` vs ``auto`` (the issue wants
``auto`` by default only if it costs at most 0.5 WER points).

Corpus (``corpus.py``): the real short clips and real long-form readings of ``--corpus``
(``../shared/speech`` next to the repository) when present, generated hard long-form speech
(mid-sentence pauses of 1–4 s, hesitations, verse lines) and generated fluent sentences. WER is
pooled (all word errors / all reference words) after Whisper's English normaliser, per set and
over everything.

``--dtw`` serves with ``WSS_DTW_TIMESTAMPS=true`` (word times from whisper.cpp's DTW token
timestamps); ``--audio-ctx auto`` streams at the server's reduced context instead of ``full``
(and skips the comparison).

Usage: ``python benchmarks/quality.py [--quick] [--models tiny.en base] [--sets long hard]
[--no-ctx-compare] [--dtw] [--audio-ctx full] [--name quality]``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
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
from corpus import SETS, SHARED_SPEECH, Recording, load

from tests.support.client import config
from tests.support.server import Server, start_server
from tests.support.wer import (
    normalize,
    repeated_bigrams,
    style_differences,
    word_errors,
    words_lost_at_joins,
)

WINDOWS = ((5000, 500), (2000, 200))
NOISE_S = 60.0


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
    if offline:
        pairs_off = zip(offline, pairs, strict=True)
        styles = [style_differences(whole, hyp) for whole, (_, hyp) in pairs_off]
        out["case_vs_offline"] = sum(s["case"] for s in styles)
        out["sentence_ends_vs_offline"] = sum(s["sentence_ends"] for s in styles)
    return out


def scored(
    corpus: Sequence[Recording],
    hypotheses: Sequence[str],
    phrases: list[list[str]] | None = None,
    offline: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``pooled`` over the whole corpus and per set (``sets``), with the hypotheses."""
    out: dict[str, Any] = {}
    out["sets"] = {}
    for name in [n for n in SETS if any(r.set == n for r in corpus)] + ["all"]:
        picked = [i for i, r in enumerate(corpus) if name in ("all", r.set)]
        pairs = [(corpus[i].text, hypotheses[i]) for i in picked]
        parts = [phrases[i] for i in picked] if phrases is not None else None
        wholes = [offline[i] for i in picked] if offline is not None else None
        figures = pooled(pairs, parts, wholes)
        if name == "all":
            out.update(figures)
        else:
            out["sets"][name] = figures
    out["hypotheses"] = list(hypotheses)
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
    return scored(corpus, [h for _, h in pairs])


def _server(model: str, audio_ctx: str, dtw: bool) -> Server:
    return start_server(
        {
            "WHISPER_MODEL_PATH": str(model_path(model)),
            "WSS_AUDIO_CTX": audio_ctx,
            "WSS_DTW_TIMESTAMPS": "true" if dtw else "false",
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
    return scored(corpus, [" ".join(parts) for parts in phrases], phrases, offline)


def run_model(
    model: str,
    corpus: list[Recording],
    noise_s: float,
    compare_ctx: bool,
    windows: tuple[tuple[int, int], ...] = WINDOWS,
    paced: bool = False,
    audio_ctx: str = "full",
    dtw: bool = False,
) -> dict[str, Any]:
    progress(f"quality: {model}: offline WER over {len(corpus)} recordings")
    result: dict[str, Any] = {
        "model": model,
        "audio_ctx": audio_ctx,
        "dtw": dtw,
        "offline": offline(model, corpus),
    }
    # WSS_AUDIO_CTX=full (unless --audio-ctx) for both window sizes and the noise clips;
    # ``auto`` (encode only the audio present) at 5 s windows for the comparison.
    server = _server(model, audio_ctx, dtw)
    try:
        for window in windows:
            progress(f"quality: {model}: streaming {window[0]}/{window[1]} ms ({audio_ctx})")
            result[f"stream_{window[0]}_{window[1]}_{audio_ctx}"] = streaming(
                server, corpus, window, result["offline"]["hypotheses"]
            )
        if paced:
            progress(f"quality: {model}: streaming 5000/500 ms paced in real time")
            result["stream_5000_500_paced"] = streaming(
                server, corpus, WINDOWS[0], result["offline"]["hypotheses"], paced=True
            )
        emitted = {}
        for name, audio in noises(noise_s).items():
            for window in windows:
                progress(f"quality: {model}: {noise_s:.0f} s of {name}, {window[0]} ms windows")
                text = " ".join(asyncio.run(streamed(server, audio, window)))
                key = name if window == WINDOWS[0] else f"{name} {window[0] // 1000} s"
                emitted[key] = {"words": len(normalize(text)), "text": text}
        result["non_speech"] = emitted
    finally:
        server.stop()
    if compare_ctx and audio_ctx == "full":
        server = _server(model, "auto", dtw)
        try:
            progress(f"quality: {model}: streaming 5000/500 ms (audio_ctx auto)")
            result["stream_5000_500_auto"] = streaming(
                server, corpus, WINDOWS[0], result["offline"]["hypotheses"]
            )
        finally:
            server.stop()
    return result


def rows_of(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per model and set (and pooled): WER offline and streamed, the streaming
    excess over offline, words repeated and lost at joins."""
    rows = []
    for r in results:
        names = [*r["offline"]["sets"], "all"]
        for name in names:
            off = r["offline"] if name == "all" else r["offline"]["sets"][name]
            row: dict[str, Any] = {
                "model": r["model"],
                "set": f"{name} ({off['ref_words']} words)",
                "offline WER %": off["wer_pct"],
            }
            for w in WINDOWS:
                run = r.get(f"stream_{w[0]}_{w[1]}_{r.get('audio_ctx', 'full')}")
                s = None if run is None else run if name == "all" else run["sets"][name]
                label = f"{w[0] // 1000} s"
                row[f"{label} WER %"] = s["wer_pct"] if s else "not run"
                row[f"{label} Δ"] = s["wer_pct"] - off["wer_pct"] if s else "not run"
                row[f"{label} repeats"] = s["repeated_bigrams"] if s else "not run"
                row[f"{label} lost"] = s["lost_at_joins"] if s else "not run"
                row[f"{label} case/ends ≠ offline"] = (
                    f"{s['case_vs_offline']}/{s['sentence_ends_vs_offline']}"
                    if s and "case_vs_offline" in s
                    else "not run"
                )
            rows.append(row)
    return rows


def non_speech_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row: dict[str, Any] = {"model": r["model"]}
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
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny.en, small corpus, 20 s noise")
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument(
        "--short-window-models",
        nargs="+",
        help="models also streamed at 2000/200 ms windows (default: all; costly for base)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=SHARED_SPEECH, help="folder of the real speech sets"
    )
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--generated", type=int, default=2, help="generated fluent recordings")
    parser.add_argument(
        "--paced-models",
        nargs="*",
        default=[],
        help="models also streamed in real time at 5000/500 ms (takes the corpus length)",
    )
    parser.add_argument(
        "--no-ctx-compare", action="store_true", help="skip the WSS_AUDIO_CTX=auto run"
    )
    parser.add_argument(
        "--windows",
        nargs="+",
        choices=[f"{w}/{o}" for w, o in WINDOWS],
        default=[f"{w}/{o}" for w, o in WINDOWS],
        help="window/overlap ms streamed (and used for the non-speech clips)",
    )
    parser.add_argument(
        "--dtw", action="store_true", help="serve with WSS_DTW_TIMESTAMPS=true (DTW word times)"
    )
    parser.add_argument(
        "--audio-ctx",
        choices=["full", "auto"],
        default="full",
        help="WSS_AUDIO_CTX of the streams (auto skips the full/auto comparison)",
    )
    parser.add_argument("--name", default="quality", help="results/<name>.json")
    args = parser.parse_args()
    chosen = tuple(w for w in WINDOWS if f"{w[0]}/{w[1]}" in args.windows)
    models = ["tiny.en"] if args.quick else args.models
    corpus = load(args.sets, args.corpus, fluent=args.generated, quick=args.quick)
    noise_s = 20.0 if args.quick else NOISE_S
    total_s = sum(len(r.audio) for r in corpus) / SAMPLE_RATE_HZ
    progress(f"quality: corpus of {len(corpus)} recordings, {total_s:.0f} s")
    short = set(args.short_window_models or models)
    results = [
        run_model(
            m,
            corpus,
            noise_s,
            compare_ctx=not args.no_ctx_compare,
            windows=chosen if m in short else chosen[:1],
            paced=m in args.paced_models,
            audio_ctx=args.audio_ctx,
            dtw=args.dtw,
        )
        for m in models
    ]
    rows = rows_of(results)
    extra = non_speech_rows(results)
    sets = ", ".join(
        f"{n}: {sum(1 for c in corpus if c.set == n)} recordings, "
        f"{sum(c.duration_s for c in corpus if c.set == n):.0f} s"
        for n in SETS
        if any(c.set == n for c in corpus)
    )
    md = (
        f"### Transcript quality, {len(corpus)} recordings ({total_s:.0f} s; {sets}), "
        f"streamed as fast as backpressure allows; Δ = streamed − offline WER (points)\n\n"
        + table(rows, list(rows[0]))
        + f"\n\nNon-speech ({noise_s:.0f} s each, at each window streamed) and other runs:\n\n"
        + table(extra, list(extra[0]))
    )
    verdicts = []
    for row in extra:
        if "auto − full (points)" in row:
            ok = row["auto − full (points)"] <= 0.5
            verdicts.append(
                f"{row['model']}: audio_ctx auto costs {row['auto − full (points)']:+.2f} WER "
                "points vs full → "
                + ("auto could be the default" if ok else "full stays the default")
            )
    if verdicts:
        md += "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    write_result(
        args.name,
        {
            "results": results,
            "corpus": [{"name": c.name, "set": c.set, "seconds": c.duration_s} for c in corpus],
            "quick": args.quick,
        },
        md,
    )


if __name__ == "__main__":
    main()
