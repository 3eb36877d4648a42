"""Capacity: N concurrent real-time-paced speech sessions (N = 1, 2, 4, …) against one daphne
with the worker in-process, for the worker layouts 1 context × 2 threads and 2 contexts × 1
thread. Per step: queue wait growth (first vs last third of the windows), p95 window latency,
server CPU and peak RSS, and whether it stayed real-time. Admission is switched off
(``WSS_ADMISSION_HEADROOM=0``) so the ramp can go past capacity; the table also shows how many
sessions admission would allow at the real-time factor measured at that step.

A step counts as real-time when the p95 window latency stays under one hop (window − overlap,
the time until the next window is due) and the queue wait does not grow across the run.

Usage: ``python benchmarks/capacity.py [--quick] [--model tiny.en] [--max-n 8] [--seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from typing import Any

import django
from common import (
    ProcessMeter,
    database_url,
    model_path,
    pcm16,
    progress,
    speech_clip,
    summary,
    table,
    timed_session,
    window_timings,
    write_result,
)

from tests.support.client import config
from tests.support.server import Server, start_server

# The admission module reads Django settings (its weight function itself is pure).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openasr_site.settings")
django.setup()

from transcription.admission import session_weight  # noqa: E402

LAYOUTS = {"1ctx x 2thr": (1, 2), "2ctx x 1thr": (2, 1)}
HEADROOM = 0.9


async def run_step(
    server: Server, n: int, clips: list[bytes], window_ms: int, overlap_ms: int
) -> dict[str, Any]:
    assert server.proc is not None
    log_from = len(server.log())
    meter = ProcessMeter([server.proc.pid]).start()
    payload = config(window_duration_ms=window_ms, overlap_duration_ms=overlap_ms)
    # Staggered starts (0.5 s apart), as real clients arrive; windows then do not all align.
    sessions = await asyncio.gather(
        *(
            _delayed(i * 0.5, timed_session(server.url, clips[i % len(clips)], payload))
            for i in range(n)
        )
    )
    usage = await meter.stop()
    windows = window_timings(server.log()[log_from:])
    latency = [w["latency_s"] for w in windows]
    waits = [w["queue_wait_s"] for w in windows]
    third = max(1, len(waits) // 3)
    rtf = [w["inference_s"] / w["audio_s"] for w in windows if w["audio_s"] > 0]
    rtf_mean = statistics.fmean(rtf) if rtf else None
    hop_s = (window_ms - overlap_ms) / 1000
    wait_first = statistics.fmean(waits[:third]) if waits else None
    wait_last = statistics.fmean(waits[-third:]) if waits else None
    p95 = summary(latency)["p95"]
    realtime = (
        p95 is not None
        and p95 <= hop_s
        and wait_last is not None
        and wait_first is not None
        and wait_last <= wait_first + 0.5
        and not any(s.errors for s in sessions)
    )
    return {
        "n": n,
        "windows": len(windows),
        "latency": summary(latency),
        "queue_wait_first_s": wait_first,
        "queue_wait_last_s": wait_last,
        "rtf_mean": rtf_mean,
        "cpu_cores": usage["cpu_cores"],
        "peak_rss_mib": usage["peak_rss_mib"][0],
        "errors": [e for s in sessions for e in s.errors],
        "realtime": realtime,
    }


async def _delayed(delay_s: float, coro: Any) -> Any:
    await asyncio.sleep(delay_s)
    return await coro


def layout_server(layout: str, env: dict[str, str]) -> Server:
    """A server for the ramp: ``env`` plus ``layout``'s contexts × threads, admission off (the
    ramp goes past capacity), debug log (the per-window timings)."""
    concurrency, threads = LAYOUTS[layout]
    return start_server(
        {
            **env,
            "WSS_WORKER_CONCURRENCY": str(concurrency),
            "WSS_INFERENCE_THREADS": str(threads),
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_LOG_LEVEL": "debug",
            "WSS_MAX_SESSIONS": "64",
            "DATABASE_URL": database_url(),
        },
        timeout=120,
    )


def run_layout(
    name: str, model: str, ns: list[int], clips: list[bytes], window_ms: int, overlap_ms: int
) -> dict[str, Any]:
    concurrency = LAYOUTS[name][0]
    server = layout_server(name, {"WHISPER_MODEL_PATH": str(model_path(model))})
    steps = []
    try:
        for n in ns:
            progress(f"capacity: {model} {name}: {n} concurrent paced sessions")
            step = asyncio.run(run_step(server, n, clips, window_ms, overlap_ms))
            weight = session_weight(window_ms, overlap_ms)
            if step["rtf_mean"]:
                step["admission_would_admit"] = int(
                    concurrency * HEADROOM / (step["rtf_mean"] * weight)
                )
            steps.append(step)
            if not step["realtime"] and len(steps) >= 2 and not steps[-2]["realtime"]:
                break  # two steps past the knee: more only takes longer
    finally:
        server.stop()
    fits = max((s["n"] for s in steps if s["realtime"]), default=0)
    cores = os.cpu_count() or 1
    return {
        "layout": name,
        "model": model,
        "steps": steps,
        "max_realtime_sessions": fits,
        "sessions_per_core": fits / cores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 2, 4 with 12 s clips")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--max-n", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--window-ms", type=int, default=5000)
    parser.add_argument("--overlap-ms", type=int, default=500)
    args = parser.parse_args()
    max_n = 4 if args.quick else args.max_n
    seconds = 12.0 if args.quick else args.seconds
    ns = [n for n in (1, 2, 4, 8, 16, 32) if n <= max_n]
    clips = [pcm16(speech_clip(seconds, seed=s)[0]) for s in range(3)]
    results = [
        run_layout(name, args.model, ns, clips, args.window_ms, args.overlap_ms) for name in LAYOUTS
    ]
    rows = [
        {
            "layout": r["layout"],
            "N": s["n"],
            "windows": s["windows"],
            "p95 latency s": s["latency"]["p95"],
            "max latency s": s["latency"]["max"],
            "queue wait first→last s": f"{s['queue_wait_first_s'] or 0:.2f}→"
            f"{s['queue_wait_last_s'] or 0:.2f}",
            "RTF": s["rtf_mean"],
            "CPU cores": s["cpu_cores"],
            "peak RSS MiB": s["peak_rss_mib"],
            "real-time": "yes" if s["realtime"] else "NO",
            "admission allows": s.get("admission_would_admit"),
        }
        for r in results
        for s in r["steps"]
    ]
    per_core = ", ".join(
        f"{r['layout']}: {r['max_realtime_sessions']} sessions "
        f"({r['sessions_per_core']:.1f} per core)"
        for r in results
    )
    md = (
        f"### Capacity, {args.model}, in-process worker, {args.window_ms}/{args.overlap_ms} ms "
        "windows, paced speech\n\n"
        + table(rows, list(rows[0]))
        + f"\n\nLargest N that stayed real-time: {per_core}."
    )
    write_result("capacity", {"layouts": results, "quick": args.quick}, md)


if __name__ == "__main__":
    main()
