"""Speed cost of whisper.cpp's DTW token timestamps (``WSS_DTW_TIMESTAMPS``, issue 17).

DTW reads the cross-attention weights of the alignment heads, which flash attention never
materialises, so DTW needs flash attention off. Three contexts of one model are loaded side by
side: flash attention on (the default), off, and off with DTW; each transcribes the same real
5 s windows, greedy, at the full 30 s context (audio_ctx 0) and at the reduced one the server
uses for a 5 s window (``session_jobs.audio_ctx_for``). The variants run interleaved
(A B C A B C ...) so load from other jobs on the host hits them alike; run it under
``flock /work/coord/bench.lock`` on a shared host.

Usage: ``python benchmarks/dtw.py [--model tiny.en] [--rounds 3] [--threads 2] [--name dtw]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import wave
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from common import SAMPLE_RATE_HZ, model_path, progress, table, write_result
from corpus import SHARED_SPEECH

from transcription.inference import whisper_shared
from transcription.inference.types import InferenceRequest
from transcription.inference.whisper_shared import SharedWhisperBackend
from transcription.session_jobs import audio_ctx_for

WINDOW_S = 5.0
# (file under the shared speech folder, start second): the seven short clips of 5 s or more
# and three cuts from the long readings, ten real windows of speech
WINDOWS = [(f"dev_0{i}.wav", 0.0) for i in range(1, 8)] + [
    ("long/ldev_01.wav", 30.0),
    ("long/ldev_02.wav", 60.0),
    ("long/ldev_03.wav", 20.0),
]
VARIANTS = ("flash on", "flash off", "flash off + DTW")


def read_window(path: Path, start_s: float) -> np.ndarray:
    """``WINDOW_S`` of 16 kHz mono 16-bit ``path`` from ``start_s``, read in place."""
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE_HZ, 1, 2):
            raise ValueError(f"{path} is not 16 kHz mono 16-bit")
        w.setpos(int(start_s * SAMPLE_RATE_HZ))
        pcm = w.readframes(int(WINDOW_S * SAMPLE_RATE_HZ))
    if len(pcm) < WINDOW_S * SAMPLE_RATE_HZ * 2:
        raise ValueError(f"{path} holds less than {WINDOW_S} s from {start_s} s")
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768


def load_variants(model: Path, threads: int) -> dict[str, SharedWhisperBackend]:
    """One context per variant. "flash off" is the DTW context without DTW: the backend
    exposes only ``dtw``, so its context fields are swapped here for the comparison."""
    on = SharedWhisperBackend(model, concurrency=1, n_threads=threads)
    with mock.patch.object(
        whisper_shared, "dtw_context_params", lambda _name: {"flash_attn": False}
    ):
        off = SharedWhisperBackend(model, concurrency=1, n_threads=threads, dtw=True)
    dtw = SharedWhisperBackend(model, concurrency=1, n_threads=threads, dtw=True)
    return dict(zip(VARIANTS, (on, off, dtw), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the windows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=SHARED_SPEECH)
    parser.add_argument("--name", default="dtw", help="results/<name>.json")
    args = parser.parse_args()
    windows = [read_window(args.corpus / name, start) for name, start in WINDOWS]
    backends = load_variants(model_path(args.model), args.threads)
    multilingual = next(iter(backends.values())).multilingual
    reduced = audio_ctx_for(WINDOW_S, multilingual)
    contexts = {"full (0)": 0, f"reduced ({reduced})": reduced}
    load_start = os.getloadavg()[0]
    seconds: dict[tuple[str, str], list[float]] = {(c, v): [] for c in contexts for v in VARIANTS}
    try:
        for backend in backends.values():  # warm-up: first calls allocate the compute buffers
            backend.transcribe(windows[0], InferenceRequest(beam_size=1, n_threads=args.threads))
        for r in range(args.rounds):
            progress(f"dtw: round {r + 1}/{args.rounds}")
            for audio in windows:
                for label, audio_ctx in contexts.items():
                    request = InferenceRequest(
                        beam_size=1, n_threads=args.threads, audio_ctx=audio_ctx
                    )
                    for variant, backend in backends.items():
                        started = time.perf_counter()
                        backend.transcribe(audio, request)
                        seconds[(label, variant)].append(time.perf_counter() - started)
    finally:
        for backend in backends.values():
            backend.close()
    load_end = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for label in contexts:
        base = statistics.median(seconds[(label, VARIANTS[0])])
        for variant in VARIANTS:
            values = seconds[(label, variant)]
            median = statistics.median(values)
            rows.append(
                {
                    "audio_ctx": label,
                    "variant": variant,
                    "median s/window": median,
                    "mean s/window": statistics.fmean(values),
                    "× flash on": median / base,
                    "calls": len(values),
                }
            )
    md = (
        f"### DTW token timestamps: seconds per {WINDOW_S:.0f} s window, {args.model}, greedy, "
        f"{args.threads} threads, {len(windows)} real windows × {args.rounds} rounds, variants "
        f"interleaved; 1-min load average {load_start:.2f} at start, {load_end:.2f} at end\n\n"
        + table(rows, list(rows[0]))
    )
    write_result(
        args.name,
        {
            "model": args.model,
            "threads": args.threads,
            "rounds": args.rounds,
            "windows": [f"{name}@{start:.0f}s" for name, start in WINDOWS],
            "load_avg_1min_start": load_start,
            "load_avg_1min_end": load_end,
            "rows": rows,
            "seconds": {f"{c} | {v}": s for (c, v), s in seconds.items()},
        },
        md,
    )


if __name__ == "__main__":
    main()
