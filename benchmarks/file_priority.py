"""Live sessions keep priority: a live session's window latency with and without a 5-minute file
transcribed on the same node.

One daphne (in-process worker, tiny.en, one inference slot unless ``--concurrency``) serves,
in turn:

* ``live alone``: one session streaming speech in real time over ``/transcribe``;
* ``live + 1 file (batch channel)``: the same session while ``POST /v1/audio/transcriptions``
  (the ``openai`` SDK) transcribes a 5-minute file, again and again until the live session
  ends; its windows go to the batch channel, which the worker serves only when no live window
  waits;
* ``live + 1 file (live channel)``: the same, the file streamed as fast as allowed over
  ``/transcribe`` instead: its windows on the live channel, what the node did without
  priorities;
* the same two with ``--files`` files transcribed at once (each session has one window in
  flight, so one file can put at most one window ahead of a live one either way: priority
  shows once several files queue).

Window latency (first send of a window → its result, the consumer's ``window-timing`` line) is
read from the server log per session; ``during files`` keeps the live windows finished while a
file job ran. Figures depend on the machine: quote them with its load (in the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import sys
import time
import wave
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from benchmarks.common import (  # noqa: E402
    model_path,
    pcm16,
    progress,
    speech_clip,
    summary,
    table,
    timed_session,
    write_result,
)
from tests.support import client as client_support  # noqa: E402
from tests.support.client import config  # noqa: E402
from tests.support.server import Server, start_server  # noqa: E402
from tests.support.wer import wer  # noqa: E402

LIVE_WINDOW_MS, LIVE_OVERLAP_MS = 5000, 500  # the protocol's defaults
FILE_WINDOW_MS, FILE_OVERLAP_MS = 24_000, 2_000  # what the file job uses (filejob.py)
_TIMING = re.compile(
    r"^(\S+ \S+) .*?window-timing index=(\d+) latency_s=([\d.]+) inference_s=([\d.]+) "
    r"queue_wait_s=([\d.]+) audio_s=([\d.]+).*\[session=([0-9a-f]+)\]",
    re.M,
)


def timings(log_text: str, session_id: str) -> list[dict[str, float]]:
    """The ``window-timing`` lines of one live session, with their wall-clock time."""
    out = []
    for m in _TIMING.finditer(log_text):
        if m[7] != session_id:
            continue
        at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append(
            {
                "at": at,
                "latency_s": float(m[3]),
                "inference_s": float(m[4]),
                "queue_wait_s": float(m[5]),
            }
        )
    return out


def wav_bytes(pcm: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return buf.getvalue()


async def post_file(server: Server, wav: bytes) -> tuple[str, float, float]:
    """The file through the OpenAI API; (text, start, end) wall clock."""
    async with openai.AsyncOpenAI(
        base_url=server.http + "/v1", api_key="none", timeout=1200
    ) as client:
        start = time.time()
        result = await client.audio.transcriptions.create(file=("file.wav", wav), model="whisper-1")
    return result.text, start, time.time()


async def stream_file(server: Server, pcm: bytes) -> tuple[str, float, float]:
    """The file over /transcribe as fast as allowed (its windows on the live channel)."""
    # The test client stays 20 s ahead of the last checkpoint: less than one 24 s window, so
    # it would wait for a window that never fills. The buffer (FILE_BUFFER_MS) holds 45 s.
    client_support.AHEAD_OF_CHECKPOINT_MS = 45_000
    start = time.time()
    payload = config(window_duration_ms=FILE_WINDOW_MS, overlap_duration_ms=FILE_OVERLAP_MS)
    session = await timed_session(server.url, pcm, payload, realtime=False, timeout_s=1200)
    return session.text, start, time.time()


async def file_load(
    server: Server, job: Callable[[], Awaitable[tuple[str, float, float]]], stop: asyncio.Event
) -> list[tuple[str, float, float]]:
    """One file after the other until ``stop``: the node is never without a file job."""
    done = []
    while not stop.is_set():
        done.append(await job())
    return done


async def scenario(
    server: Server,
    live_pcm: bytes,
    job: Callable[[], Awaitable[tuple[str, float, float]]] | None,
    files: int,
    delay_s: float,
) -> dict[str, Any]:
    """The live session; with ``job``, ``files`` concurrent loops of it from ``delay_s`` on."""
    payload = config(window_duration_ms=LIVE_WINDOW_MS, overlap_duration_ms=LIVE_OVERLAP_MS)
    live = asyncio.ensure_future(timed_session(server.url, live_pcm, payload, timeout_s=600))
    stop = asyncio.Event()
    loads = []
    if job is not None:
        await asyncio.sleep(delay_s)
        loads = [asyncio.ensure_future(file_load(server, job, stop)) for _ in range(files)]
    session = await live
    stop.set()
    jobs = [j for done in await asyncio.gather(*loads) for j in done]
    ack = session.events[0][1] if session.events else {}
    session_id = ack.get("session_id") or ack.get("payload", {}).get("session_id", "")
    windows = timings(server.log(), session_id)
    out: dict[str, Any] = {
        "live_windows": windows,
        "latency": summary([w["latency_s"] for w in windows]),
        "queue_wait": summary([w["queue_wait_s"] for w in windows]),
        "live_errors": session.errors,
        "live_text": session.text,
    }
    if jobs:
        busy = [(start, end) for _, start, end in jobs]
        during = [w for w in windows if any(a <= w["at"] <= b for a, b in busy)]
        out.update(
            files_done=len(jobs),
            file_s=summary([end - start for _, start, end in jobs]),
            file_texts=[text for text, _, _ in jobs],
            during_file=summary([w["latency_s"] for w in during]),
            during_file_queue_wait=summary([w["queue_wait_s"] for w in during]),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-s", type=float, default=60.0, help="live speech, real time")
    parser.add_argument("--file-s", type=float, default=300.0, help="the file's length")
    parser.add_argument("--delay-s", type=float, default=3.0, help="live head start")
    parser.add_argument("--files", type=int, default=3, help="concurrent files, last two runs")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="WSS_WORKER_CONCURRENCY (inference slots)"
    )
    args = parser.parse_args()
    live_audio, _ = speech_clip(args.live_s, seed=3)
    file_audio, file_reference = speech_clip(args.file_s, seed=4)
    live_pcm, file_pcm = pcm16(live_audio), pcm16(file_audio)
    wav = wav_bytes(file_pcm)
    progress(f"live {len(live_audio) / 16000:.0f} s, file {len(file_audio) / 16000:.0f} s")
    server = start_server(
        {
            "WHISPER_MODEL_PATH": str(model_path("tiny.en")),
            "WSS_LOG_LEVEL": "debug",
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_MAX_AUDIO_SPEED": "1000",
            "WSS_AUDIO_BUFFER_MS": "60000",  # the file job's buffer, for the live-channel run
            "WSS_WORKER_CONCURRENCY": str(args.concurrency),
        }
    )
    runs: dict[str, dict[str, Any]] = {}
    batch = lambda: post_file(server, wav)  # noqa: E731
    live_channel = lambda: stream_file(server, file_pcm)  # noqa: E731
    n = args.files
    try:
        for name, job, files in (
            ("live alone", None, 0),
            ("live + 1 file (batch channel)", batch, 1),
            ("live + 1 file (live channel)", live_channel, 1),
            (f"live + {n} files (batch channel)", batch, n),
            (f"live + {n} files (live channel)", live_channel, n),
        ):
            if args.only not in name and name != "live alone":
                continue
            progress(name)
            runs[name] = asyncio.run(scenario(server, live_pcm, job, files, args.delay_s))
    finally:
        server.stop()
    rows = []
    for name, r in runs.items():
        during = r.get("during_file", {})
        texts = r.get("file_texts", [])
        rows.append(
            {
                "scenario": name,
                "live windows": r["latency"]["n"],
                "p50": r["latency"]["p50"],
                "p95": r["latency"]["p95"],
                "max": r["latency"]["max"],
                "queue wait p95": r["queue_wait"]["p95"],
                "during files: n": during.get("n"),
                "p50 ": during.get("p50"),
                "p95 ": during.get("p95"),
                "max ": during.get("max"),
                "files done": r.get("files_done"),
                "file s (p50)": r.get("file_s", {}).get("p50"),
                "file WER": max(wer(file_reference, t) for t in texts) if texts else None,
            }
        )
    md = (
        f"### Live window latency (s) with {args.file_s:.0f} s files on the node\n\n"
        f"Live: {args.live_s:.0f} s of speech in real time, {LIVE_WINDOW_MS}/{LIVE_OVERLAP_MS} "
        f"ms windows; files: {FILE_WINDOW_MS}/{FILE_OVERLAP_MS} ms windows, transcribed one "
        "after the other (per concurrent stream) for the whole live session; tiny.en, "
        f"{args.concurrency} inference slot(s), 2 threads each. `during files` = live windows "
        "finished while a file job ran; file WER = the worst file transcript.\n\n"
        + table(rows, list(rows[0]))
    )
    name = "file_priority" if args.concurrency == 1 else f"file_priority_c{args.concurrency}"
    name += f"_{args.tag}" if args.tag else ""
    write_result(name, {"args": vars(args), "runs": runs, "rows": rows}, md)


if __name__ == "__main__":
    main()
