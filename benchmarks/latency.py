"""Per-window latency (window complete → speech.phrase sent) next to the pure inference time of
the same window, in-process vs daphne + runworker over Redis. The difference is server overhead.

Per-window figures come from the consumer's ``window-timing`` debug log line (it has the
``inference_s`` and ``queue_wait_s`` the worker put in ``asr.result``), so they are exact and
paired per window, and work when inference runs in another process whose histograms are not in
this node's /metrics. One real-time-paced session of synthesised speech per run.

Usage: ``python benchmarks/latency.py [--quick] [--models tiny.en base] [--seconds 30]``
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from common import (
    database_url,
    model_path,
    pcm16,
    progress,
    redis_url,
    speech_clip,
    summary,
    table,
    timed_session,
    window_timings,
    write_result,
)

from tests.support.client import config
from tests.support.server import start_server, start_worker

REDIS_DB = 12


def run_one(model: str, layout: str, pcm: bytes, window_ms: int, overlap_ms: int) -> dict[str, Any]:
    env = {
        "WHISPER_MODEL_PATH": str(model_path(model)),
        "WSS_LOG_LEVEL": "debug",
        "DATABASE_URL": database_url(),
        "WSS_ADMISSION_HEADROOM": "0",
    }
    worker = None
    if layout == "redis":
        env["REDIS_URL"] = redis_url(REDIS_DB)
        worker = start_worker(env)
    server = start_server(env, timeout=120)
    try:
        progress(f"latency: {model} {layout}: streaming {len(pcm) / 32000:.0f} s in real time")
        payload = config(window_duration_ms=window_ms, overlap_duration_ms=overlap_ms)
        session = asyncio.run(timed_session(server.url, pcm, payload))
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
    windows = window_timings(server.log())
    latency = [w["latency_s"] for w in windows]
    inference = [w["inference_s"] for w in windows]
    overhead = [w["latency_s"] - w["inference_s"] for w in windows]
    queue_wait = [w["queue_wait_s"] for w in windows]
    return {
        "model": model,
        "layout": layout,
        "windows": windows,
        "latency": summary(latency),
        "inference": summary(inference),
        "overhead": summary(overhead),
        "queue_wait": summary(queue_wait),
        "phrase_lag": summary(session.phrase_lags()),
        "errors": session.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny.en only, 15 s of speech")
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--window-ms", type=int, default=5000)
    parser.add_argument("--overlap-ms", type=int, default=500)
    args = parser.parse_args()
    models = ["tiny.en"] if args.quick else args.models
    seconds = 15.0 if args.quick else args.seconds
    audio, _ = speech_clip(seconds, seed=1)
    pcm = pcm16(audio)
    runs = [
        run_one(m, layout, pcm, args.window_ms, args.overlap_ms)
        for m in models
        for layout in ("inprocess", "redis")
    ]
    rows = [
        {
            "model": r["model"],
            "layout": r["layout"],
            "windows": r["latency"]["n"],
            "latency p50": r["latency"]["p50"],
            "latency p95": r["latency"]["p95"],
            "latency max": r["latency"]["max"],
            "inference p50": r["inference"]["p50"],
            "inference p95": r["inference"]["p95"],
            "overhead p50": r["overhead"]["p50"],
            "overhead p95": r["overhead"]["p95"],
            "overhead max": r["overhead"]["max"],
            "queue wait p95": r["queue_wait"]["p95"],
        }
        for r in runs
    ]
    columns = list(rows[0]) if rows else []
    md = (
        f"### Window latency (s), one paced session, {args.window_ms}/{args.overlap_ms} ms "
        "windows\n\n"
        + table(rows, columns)
        + "\n\noverhead = window latency − inference of the same window (queue wait, channel"
        " layer round trips, merge, send)."
    )
    write_result("latency", {"runs": runs, "quick": args.quick}, md)


if __name__ == "__main__":
    main()
