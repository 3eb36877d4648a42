"""Ingest: many real-time-paced 16 kHz PCM streams against one daphne with the FAKE backend
(instant, no model: this measures the consumer's audio path, not inference).

Reports the server-side time to handle one audio frame (``openasr_frame_handle_seconds``,
observed in the consumer's ``receive``: rate limit, decode, buffer, VAD, window, submit; it does
not include time a frame waits in daphne before dispatch, which shows up instead as the
client's pacing lateness and in the CPU figure), server CPU per stream, and refused audio
(``openasr_audio_refused_ms``, backpressure, errors): there should be none.

Usage: ``python benchmarks/ingest.py [--quick] [--streams 200] [--seconds 30] [--vad energy]``
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import numpy as np
from common import (
    ProcessMeter,
    database_url,
    histogram_count_sum,
    histogram_quantile,
    pcm16,
    progress,
    scrape,
    table,
    timed_session,
    write_result,
)

from tests.support.client import config
from tests.support.server import Server, start_server

FRAME_METRIC = "openasr_frame_handle_seconds"


def _stream_audio(seconds: float, seed: int) -> bytes:
    """Bursts of noise (speech-like on/off) so the energy gate opens and closes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    audio = rng.normal(0, 0.003, n)
    for start in range(0, n, 48000):
        audio[start : start + 32000] += rng.normal(0, 0.1, min(32000, n - start))
    return pcm16(audio.astype(np.float32))


async def _run(server: Server, streams: int, seconds: float) -> dict[str, Any]:
    assert server.proc is not None
    before = await asyncio.to_thread(scrape, server.http)
    meter = ProcessMeter([server.proc.pid]).start()
    payload = config(window_duration_ms=5000, overlap_duration_ms=500)
    audio = [_stream_audio(seconds, s) for s in range(8)]

    async def one(i: int) -> Any:
        await asyncio.sleep(i * 0.01)  # 200 connects spread over 2 s
        return await timed_session(server.url, audio[i % len(audio)], payload, timeout_s=120)

    ticker = asyncio.ensure_future(_tick(seconds))
    sessions = await asyncio.gather(*(one(i) for i in range(streams)), return_exceptions=True)
    ticker.cancel()
    usage = await meter.stop()
    after = await asyncio.to_thread(scrape, server.http)
    failed = [repr(s) for s in sessions if isinstance(s, BaseException)]
    ok = [s for s in sessions if not isinstance(s, BaseException)]
    count, total = histogram_count_sum(before, after, FRAME_METRIC)

    def diff(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    return {
        "streams": streams,
        "seconds": seconds,
        "frames_handled": count,
        "frame_handle_mean_ms": 1000 * total / count if count else None,
        "frame_handle_p50_ms": _ms(histogram_quantile(before, after, FRAME_METRIC, 0.5)),
        "frame_handle_p99_ms": _ms(histogram_quantile(before, after, FRAME_METRIC, 0.99)),
        "server_cpu_cores": usage["cpu_cores"],
        "server_cpu_per_stream_pct": 100 * usage["cpu_cores"] / streams,
        "server_peak_rss_mib": usage["peak_rss_mib"][0],
        "audio_refused_ms": diff("openasr_audio_refused_ms_total"),
        "backpressure_events": diff("openasr_backpressure_events_total"),
        "refused_sessions": sum(1 for s in ok if s.refused),
        "session_errors": sum(len(s.errors) for s in ok),
        "client_failures": failed[:5],
        "client_failure_count": len(failed),
        "client_max_pacing_late_s": max((s.late_s for s in ok), default=None),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else 1000 * value


async def _tick(seconds: float) -> None:
    for elapsed in range(10, int(seconds) + 60, 10):
        await asyncio.sleep(10)
        progress(f"ingest: {elapsed} s of {seconds:.0f} s streamed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per stream")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--vad", choices=["energy", "off"], default="energy")
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_FAKE_BACKEND_RTF": "0",
            "WSS_WORKER_CONCURRENCY": "4",
            "WSS_VAD": args.vad,
            "WSS_MAX_SESSIONS": "250",
            "WSS_MAX_CONNECTIONS": "300",
            "WSS_ADMISSION_HEADROOM": "0",
            "DATABASE_URL": database_url(),
        }
    )
    try:
        progress(f"ingest: {args.streams} paced streams x {seconds:.0f} s (FAKE backend)")
        result = asyncio.run(_run(server, args.streams, seconds))
    finally:
        server.stop()
    result["vad"] = args.vad
    columns = [
        "streams",
        "frames_handled",
        "frame_handle_p50_ms",
        "frame_handle_p99_ms",
        "frame_handle_mean_ms",
        "server_cpu_cores",
        "server_cpu_per_stream_pct",
        "server_peak_rss_mib",
        "audio_refused_ms",
        "backpressure_events",
        "refused_sessions",
        "session_errors",
        "client_failure_count",
        "client_max_pacing_late_s",
    ]
    md = (
        f"### Ingest, FAKE backend (no inference), VAD {args.vad}, {seconds:.0f} s per stream\n\n"
        + table([result], columns)
    )
    write_result("ingest", {"result": result, "quick": args.quick}, md)


if __name__ == "__main__":
    main()
