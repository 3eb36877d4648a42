"""Streaming WER, word delay and compute without a server, on a simulated real-time clock: the
sans-IO ``Session`` with the server's default inference settings (greedy, the reduced context of
``WSS_AUDIO_CTX=auto``, interim passes every 1 s; ``--beam`` and ``--audio-ctx`` change them), the
real backend, one inference slot. For tuning the
streaming policy; the figures to quote come from ``delay.py`` and ``quality.py`` (real daphne).

The clock is the audio's: frame ``i`` (200 ms) arrives at ``0.2 i`` s, as ``delay.py`` sends
it, and a job takes the slot for the inference time measured on this host (windows first; an
interim pass only with the slot free, dropped after ``INTERIM_TTL_S`` unheard). Per committed
word, final = the simulated arrival of the result committing it − the arrival of the frame
holding its end (``delay.py``'s definition, less the network).

Usage: ``python benchmarks/delay_sim.py [--window 2000 200] [--sets long] [--only ldev_01]``
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import FRAME_MS, SAMPLE_RATE_HZ, model_path, pct, progress
from corpus import SETS, SHARED_SPEECH, Recording, load
from quality import offline, pooled

from transcription.inference.messages import INTERIM_TTL_S, JobResult, TranscribeJob
from transcription.limits import SessionLimits
from transcription.protocol import SpeechConfig
from transcription.session import Session

FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000


@dataclass
class Run:
    """One simulated stream: its committed phrases, word delays and inference seconds."""

    phrases: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the priority of the job behind each
    final_s: list[float] = field(default_factory=list)
    live_s: float = 0.0
    interim_s: float = 0.0
    windows: int = 0
    interim_passes: int = 0
    interim_dropped: int = 0


def modelled_s(job: TranscribeJob) -> float:
    """tiny.en's inference time on this host's 2 idle cores (measured): the padded 30 s
    context costs about 0.55 s whatever the audio; the audio's own context (interim passes,
    ``WSS_AUDIO_CTX=auto``) about 0.05 s plus 0.02 s (greedy) to 0.03 s (beam 5) per second."""
    if job.audio_ctx == 0:
        return 0.5 + 0.01 * job.audio_s + (0.05 if job.beam_size > 1 else 0.0)
    return 0.05 + (0.03 if job.beam_size > 1 else 0.016) * max(job.audio_s, 5.0)


def simulate(
    backend: Any,
    audio: np.ndarray,
    window: tuple[int, int],
    limits: SessionLimits,
    modelled: bool = True,
) -> Run:
    """Stream ``audio`` in real time through a ``Session`` served by one inference slot."""
    config = SpeechConfig("en", SAMPLE_RATE_HZ, "pcm_s16le", window[0], window[1], "m")
    session = Session(limits)
    session.start("sim", config, model_id="m", multilingual=backend.multilingual)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    frames = [pcm[i : i + FRAME_SAMPLES * 2] for i in range(0, len(pcm), FRAME_SAMPLES * 2)]
    run = Run()
    live: list[TranscribeJob] = []
    interim: list[tuple[TranscribeJob, float]] = []
    running: tuple[TranscribeJob, list[Any], float] | None = None  # job, segments, done at

    def submit(jobs: list[TranscribeJob], now: float) -> None:
        for job in jobs:
            if job.priority == "interim":
                interim.append((job, now))
            else:
                live.append(job)

    def start(now: float) -> None:
        nonlocal running
        if running is not None:
            return
        job = None
        if live:
            job = live.pop(0)
        while job is None and interim:
            candidate, queued = interim.pop(0)
            if now - queued > INTERIM_TTL_S:
                run.interim_dropped += 1
                continue
            job = candidate
        if job is None:
            return
        t0 = time.monotonic()
        segments = list(backend.transcribe(job.samples, job.request()))
        took = modelled_s(job) if modelled else time.monotonic() - t0
        if job.priority == "interim":
            run.interim_s += took
            run.interim_passes += 1
        else:
            run.live_s += took
            run.windows += 1
        running = (job, segments, now + took)

    def finish(now: float) -> None:
        nonlocal running
        assert running is not None
        job, segments, _ = running
        running = None
        before = len(session.transcript.words)
        reply = JobResult("sim", job.window_index, job.attempt, True, tuple(segments))
        submit(session.on_result(reply, now).jobs, now)
        committed = session.transcript.words[before:]
        if committed:
            run.phrases.append(" ".join(w.text for w in committed))
            run.sources.append(job.priority)
        for word in committed:
            chunk = min(max(0, (word.end_ms - 1) // FRAME_MS), len(frames) - 1)
            run.final_s.append(now - chunk * FRAME_MS / 1000)

    i = 0
    ended = False
    while True:
        next_frame = i * FRAME_MS / 1000 if i < len(frames) else None
        if running is not None and (next_frame is None or running[2] <= next_frame):
            now = running[2]
            finish(now)
        elif next_frame is not None:
            now = next_frame
            submit(session.feed_audio(frames[i], now).jobs, now)
            i += 1
        elif not ended:
            ended = True
            submit(session.end(now).jobs, now)
        else:
            break
        start(now)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--window", nargs=2, type=int, default=[2000, 200])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["clips", "long", "hard"])
    parser.add_argument("--only", help="substring of recording names to run")
    parser.add_argument("--interim-ms", type=int, default=1000)
    parser.add_argument("--beam", type=int, default=1, help="WSS_BEAM_SIZE")
    parser.add_argument("--audio-ctx", choices=("auto", "full"), default="auto")
    parser.add_argument("--offline-cache", type=Path, default=Path("/tmp/offline_cache.json"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--measured", action="store_true", help="inference times as measured (load-sensitive)"
    )
    parser.add_argument("--verbose", action="store_true", help="print the committed phrases")
    args = parser.parse_args()
    from transcription.inference.backend import load_backend

    corpus: list[Recording] = load(args.sets, SHARED_SPEECH, fluent=0)
    if args.only:
        corpus = [r for r in corpus if args.only in r.name]
    cache = json.loads(args.offline_cache.read_text()) if args.offline_cache.exists() else {}
    missing = [r for r in corpus if r.name not in cache]
    if missing:
        for rec, hyp in zip(missing, offline(args.model, missing)["hypotheses"], strict=True):
            cache[rec.name] = hyp
        args.offline_cache.write_text(json.dumps(cache))
    whole = [cache[r.name] for r in corpus]
    limits = SessionLimits(
        audio_buffer_ms=30_000,
        beam_size=args.beam,
        audio_ctx_auto=args.audio_ctx == "auto",
        interim_ms=args.interim_ms,
        n_threads=1,  # the clock is modelled; one thread wastes nothing spinning on a busy host
        max_audio_speed=1e9,
        inference_timeout_s=float("inf"),
    )
    backend = load_backend("shared", model_path(args.model), concurrency=1, n_threads=1)
    pairs, phrases, delays = [], [], []
    live_s = interim_s = 0.0
    audio_s = 0.0
    windows = passes = dropped = 0
    try:
        for rec in corpus:
            run = simulate(
                backend, rec.audio, (args.window[0], args.window[1]), limits, not args.measured
            )
            hyp = " ".join(run.phrases)
            if args.verbose:
                for phrase, source in zip(run.phrases, run.sources, strict=True):
                    print(f"  {source:>7} | {phrase}")
            one = pooled([(rec.text, hyp)], [run.phrases], [cache[rec.name]])
            avg = sum(run.final_s) / max(1, len(run.final_s))
            progress(
                f"{rec.name}: WER {one['wer_pct']:.2f} % ({one['errors']}/{one['ref_words']}), "
                f"final avg {avg:.2f} s, live {run.live_s / rec.duration_s:.3f} s/s "
                f"({run.windows}), interim {run.interim_s / rec.duration_s:.3f} s/s "
                f"({run.interim_passes}, {run.interim_dropped} dropped)"
            )
            pairs.append((rec.text, hyp))
            phrases.append(run.phrases)
            delays += run.final_s
            live_s += run.live_s
            interim_s += run.interim_s
            audio_s += rec.duration_s
            windows += run.windows
            passes += run.interim_passes
            dropped += run.interim_dropped
    finally:
        backend.close()
    total = pooled(pairs, phrases, whole)
    off = pooled([(r.text, h) for r, h in zip(corpus, whole, strict=True)])
    figures = {
        "wer_pct": total["wer_pct"],
        "offline_wer_pct": off["wer_pct"],
        "repeats": total["repeated_bigrams"],
        "case_vs_offline": total["case_vs_offline"],
        "sentence_ends_vs_offline": total["sentence_ends_vs_offline"],
        "lost_at_joins": total["lost_at_joins"],
        "final_avg_s": sum(delays) / max(1, len(delays)),
        "final_p95_s": pct(delays, 95),
        "live_s_per_audio_s": live_s / audio_s,
        "interim_s_per_audio_s": interim_s / audio_s,
        "windows_per_audio_s": windows / audio_s,
        "interim_per_audio_s": passes / audio_s,
        "interim_dropped": dropped,
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(
            json.dumps({**figures, "hypotheses": [h for _, h in pairs], "phrases": phrases})
        )


if __name__ == "__main__":
    main()
