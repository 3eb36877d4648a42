"""Streaming WER without a server: drives the sans-IO ``Session`` with the real backend, one job
at a time, over the quality corpus. For tuning the streaming policy quickly; the figures to
quote come from ``quality.py`` (real daphne), which this reproduces within noise.

Usage: ``python benchmarks/stream_direct.py --model base --window 5000 500 [--corpus DIR]
[--audio-ctx full|auto] [--dtw]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import SAMPLE_RATE_HZ, model_path, progress
from corpus import SETS, SHARED_SPEECH, load
from quality import offline, pooled

from transcription.inference.messages import JobResult, TranscribeJob
from transcription.limits import SessionLimits
from transcription.protocol import SpeechConfig
from transcription.session import Session

FRAME_SAMPLES = SAMPLE_RATE_HZ // 5


def stream(
    backend: Any,
    audio: np.ndarray,
    window: tuple[int, int],
    vad: str,
    prompt: bool = False,
    realtime: bool = False,
    audio_ctx_auto: bool = False,
) -> list[str]:
    """The committed phrases of one stream, sent in 200 ms frames.

    With ``realtime`` the client is paced: a result reaches the session only once as much audio
    as the inference took has arrived after it (one inference slot, the measured inference
    time), so the policy decides with the look-ahead a live speaker gives it. Without it every
    result is back before the next frame (the least look-ahead possible).
    """
    config = SpeechConfig("en", SAMPLE_RATE_HZ, "pcm_s16le", window[0], window[1], "m")
    limits = SessionLimits(
        audio_buffer_ms=600_000,
        vad=vad,  # type: ignore[arg-type]
        audio_ctx_auto=audio_ctx_auto,
        prompt=prompt,
        max_audio_speed=1e9,
        inference_timeout_s=float("inf"),
    )
    session = Session(limits)
    session.start("bench", config, model_id="m", multilingual=backend.multilingual)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    phrases: list[str] = []
    queue: list[Any] = []
    pending: tuple[Any, list[Any], float] | None = None  # job, its segments, due at (audio s)
    step = FRAME_SAMPLES * 2
    now = 0.0

    def deliver() -> None:
        nonlocal pending
        while True:
            if pending is None and queue:
                job = queue.pop(0)
                t0 = time.monotonic()
                segments = transcribe(backend, job)
                took = time.monotonic() - t0 if realtime else 0.0
                pending = (job, segments, now + took)
            if pending is None or pending[2] > now:
                return
            job, segments, _ = pending
            pending = None
            before = len(session.transcript.words)
            reply = JobResult("bench", job.window_index, job.attempt, True, tuple(segments))
            queue.extend(session.on_result(reply, now).jobs)
            committed = session.transcript.words[before:]
            if committed:
                phrases.append(" ".join(w.text for w in committed))

    for i in range(0, len(pcm), step):
        queue.extend(session.feed_audio(pcm[i : i + step], now).jobs)
        now += len(pcm[i : i + step]) / 2 / SAMPLE_RATE_HZ
        deliver()
    queue.extend(session.end(now).jobs)
    now = float("inf")  # the rest of the results arrive whenever they are ready
    deliver()
    return phrases


def transcribe(backend: Any, job: TranscribeJob) -> list[Any]:
    """What the worker runs for ``job``: the contract's own request."""
    return list(backend.transcribe(job.samples, job.request()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--window", nargs=2, type=int, default=[5000, 500])
    parser.add_argument("--corpus", type=Path, default=SHARED_SPEECH)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--generated", type=int, default=2)
    parser.add_argument("--vad", default="silero")
    parser.add_argument("--prompt", action="store_true", help="as WSS_PROMPT=transcript")
    parser.add_argument("--realtime", action="store_true", help="a paced client (see stream)")
    parser.add_argument("--only", help="substring of recording names to run")
    parser.add_argument("--json", type=Path, help="write hypotheses here")
    parser.add_argument(
        "--audio-ctx", choices=["full", "auto"], default="full", help="as WSS_AUDIO_CTX"
    )
    parser.add_argument("--dtw", action="store_true", help="as WSS_DTW_TIMESTAMPS=true")
    args = parser.parse_args()
    from transcription.inference.backend import load_backend

    corpus = load(args.sets, args.corpus, fluent=args.generated)
    if args.only:
        corpus = [r for r in corpus if args.only in r.name]
    whole = offline(args.model, corpus)
    backend = load_backend(
        "shared", model_path(args.model), concurrency=1, n_threads=2, dtw=args.dtw
    )
    t0 = time.monotonic()
    pairs, rows, phrases = [], [], []
    for rec, off in zip(corpus, whole["hypotheses"], strict=True):
        parts = stream(
            backend,
            rec.audio,
            tuple(args.window),
            args.vad,
            args.prompt,
            args.realtime,
            audio_ctx_auto=args.audio_ctx == "auto",
        )
        hyp = " ".join(parts)
        one = pooled([(rec.text, hyp)], [parts], [off])
        progress(f"{rec.name}: WER {one['wer_pct']:.2f} % ({one['errors']}/{one['ref_words']})")
        pairs.append((rec.text, hyp))
        phrases.append(parts)
        rows.append({"name": rec.name, "ref": rec.text, "hyp": hyp, **one})
    backend.close()
    total = pooled(pairs, phrases, whole["hypotheses"])
    print(
        f"{args.model} offline {whole['wer_pct']:.2f} %, "
        f"{args.window[0]}/{args.window[1]}: WER {total['wer_pct']:.2f} % "
        f"({total['errors']}/{total['ref_words']}), repeats {total['repeated_bigrams']}, "
        f"lost at joins {total['lost_at_joins']} of {total['joins']} joins, case/sentence "
        f"ends unlike offline {total['case_vs_offline']}/{total['sentence_ends_vs_offline']}, "
        f"{time.monotonic() - t0:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
