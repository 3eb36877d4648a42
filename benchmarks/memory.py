"""Memory: RSS of a daphne node per idle and per active session beyond the model, and RSS per
worker context (``WSS_WORKER_CONCURRENCY`` 1 vs 2, both slots warmed by concurrent windows, as
``backend_memory.py`` does per backend in a bare process; here it is the whole server).

Idle session: ``speech.config`` acknowledged, no audio. Active: streaming paced speech (audio
buffer, VAD state, transcript, a window in flight). Both are the RSS growth of the server
process divided by the number of sessions, after a warm-up session has loaded the model.

Usage: ``python benchmarks/memory.py [--quick] [--model tiny.en] [--backends shared pywhispercpp]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import psutil
import websockets
from common import (
    MIB,
    ProcessMeter,
    database_url,
    model_path,
    pcm16,
    progress,
    speech_clip,
    table,
    timed_session,
    write_result,
)

from tests.support.client import config
from tests.support.server import Server, start_server


def _rss(server: Server) -> float:
    assert server.proc is not None
    return psutil.Process(server.proc.pid).memory_info().rss / MIB


def _start(model: str, backend: str, concurrency: int) -> Server:
    return start_server(
        {
            "WHISPER_MODEL_PATH": str(model_path(model)),
            "WSS_BACKEND": backend,
            "WSS_WORKER_CONCURRENCY": str(concurrency),
            "WSS_INFERENCE_THREADS": "1",
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_MAX_SESSIONS": "200",
            "WSS_MAX_CONNECTIONS": "250",
            "DATABASE_URL": database_url(),
        },
        timeout=120,
    )


async def _warm(server: Server, slots: int, pcm: bytes) -> None:
    """Concurrent sessions fast (not paced) so every inference slot runs a window."""
    payload = config(window_duration_ms=5000, overlap_duration_ms=500)
    await asyncio.gather(
        *(timed_session(server.url, pcm, payload, realtime=False) for _ in range(slots))
    )


async def _idle_sessions(server: Server, n: int) -> float:
    base = _rss(server)
    sockets = []
    payload = config(window_duration_ms=5000, overlap_duration_ms=500)
    for _ in range(n):
        ws = await websockets.connect(server.url, max_size=None)
        await ws.send(json.dumps({"type": "speech.config", "payload": payload}))
        await ws.recv()
        sockets.append(ws)
    await asyncio.sleep(1)
    grown = _rss(server) - base
    for ws in sockets:
        await ws.close()
    return grown / n


async def _active_sessions(server: Server, n: int, pcm: bytes) -> float:
    assert server.proc is not None
    base = _rss(server)
    meter = ProcessMeter([server.proc.pid]).start()
    payload = config(window_duration_ms=5000, overlap_duration_ms=500)
    await asyncio.gather(*(timed_session(server.url, pcm, payload) for _ in range(n)))
    usage = await meter.stop()
    return (usage["peak_rss_mib"][0] - base) / n


def measure(model: str, backend: str, idle_n: int, active_n: int, pcm: bytes) -> dict[str, Any]:
    rows: dict[str, Any] = {"model": model, "backend": backend}
    for concurrency in (1, 2):
        server = _start(model, backend, concurrency)
        try:
            rows[f"rss_boot_c{concurrency}_mib"] = _rss(server)
            progress(f"memory: {model} {backend} concurrency {concurrency}: warming")
            asyncio.run(_warm(server, concurrency, pcm))
            rows[f"rss_warm_c{concurrency}_mib"] = _rss(server)
            if concurrency == 1:
                progress(f"memory: {idle_n} idle sessions")
                rows["per_idle_session_mib"] = asyncio.run(_idle_sessions(server, idle_n))
                progress(f"memory: {active_n} active paced sessions")
                rows["per_active_session_mib"] = asyncio.run(
                    _active_sessions(server, active_n, pcm)
                )
        finally:
            server.stop()
    rows["per_extra_context_mib"] = rows["rss_warm_c2_mib"] - rows["rss_warm_c1_mib"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shared backend, fewer sessions")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--backends", nargs="+", default=["shared", "pywhispercpp"])
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--active", type=int, default=6)
    args = parser.parse_args()
    backends = ["shared"] if args.quick else args.backends
    idle_n = 20 if args.quick else args.idle
    active_n = 3 if args.quick else args.active
    pcm = pcm16(speech_clip(10.0, seed=2)[0])
    results = [measure(args.model, b, idle_n, active_n, pcm) for b in backends]
    columns = [
        "model",
        "backend",
        "rss_boot_c1_mib",
        "rss_warm_c1_mib",
        "rss_warm_c2_mib",
        "per_extra_context_mib",
        "per_idle_session_mib",
        "per_active_session_mib",
    ]
    md = (
        f"### Memory of a daphne node (in-process worker), {idle_n} idle / {active_n} active "
        "sessions\n\n" + table(results, columns)
    )
    write_result("memory", {"results": results, "quick": args.quick}, md)


if __name__ == "__main__":
    main()
