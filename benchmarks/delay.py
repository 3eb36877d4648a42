"""Speaker-to-text delay as a captions user feels it: real-time streams in 200 ms chunks through
a real daphne, 1 and 4 sessions at once, 5 s / 0.5 s and 2 s / 0.2 s windows.

For each committed word (the ``words`` of the ``speech.phrase`` events), with the chunk holding
the word's end (its end time as the phrase reports it) sent at ``t_sent``:

- **final** = arrival of the phrase that commits the word − ``t_sent``;
- **first shown** = arrival of the first ``speech.hypothesis`` or phrase showing the word (same
  text, times within ``MATCH_MS``) − ``t_sent``.

Figures are avg / p50 / p95 / max over every committed word of every session; the load average
of the host is recorded with each run, since other jobs on a shared machine slow inference.

Speech: about a minute per session, different recordings per session (``corpus.py``: the
shortest real long-form reading when present, then the generated hard cases).

Usage: ``python benchmarks/delay.py [--quick] [--model tiny.en] [--sessions 1 4]
[--windows 5000/500 2000/200] [--name delay]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import (
    FRAME_MS,
    SAMPLE_RATE_HZ,
    TimedSession,
    database_url,
    model_path,
    pcm16,
    pct,
    progress,
    table,
    timed_session,
    write_result,
)
from corpus import SHARED_SPEECH, Recording, hard_corpus, real_corpus

from tests.support.client import config
from tests.support.server import start_server
from transcription.transcript import normalize

MATCH_MS = 1000  # a shown word is the committed one when their spans lie this close
WINDOWS = ("5000/500", "2000/200")


@dataclass(frozen=True)
class WordDelay:
    """One committed word: its text and end (ms), and the delays (s) of its first showing and
    of its commitment."""

    text: str
    end_ms: int
    first_shown_s: float
    final_s: float


def _words(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event.get("payload", {}).get("words") or [])


def word_delays(session: TimedSession, frame_ms: int = FRAME_MS) -> list[WordDelay]:
    """The delays of every word the session's ``Success`` phrases committed."""
    shown: list[tuple[float, str, int, int]] = []  # (arrival, text, start, end) per shown word
    out: list[WordDelay] = []
    for arrival, event in session.events:
        kind = event.get("type")
        if kind not in ("speech.hypothesis", "speech.phrase"):
            continue
        for word in _words(event):
            start = int(word["offset"])
            shown.append((arrival, normalize(word["text"]), start, start + int(word["duration"])))
        if kind != "speech.phrase" or event["payload"].get("status") != "Success":
            continue
        for word in _words(event):
            text = normalize(word["text"])
            if not text or not session.sent:
                continue
            start = int(word["offset"])
            end = start + int(word["duration"])
            chunk = min(max(0, (end - 1) // frame_ms), len(session.sent) - 1)
            sent = session.sent[chunk]
            first = min(
                t
                for t, other, s, e in shown
                if other == text and s < end + MATCH_MS and e > start - MATCH_MS
            )
            out.append(WordDelay(word["text"], end, first - sent, arrival - sent))
    return out


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """avg / p50 / p95 / max (nearest rank) of ``values``."""
    return {
        "n": len(values),
        "avg": sum(values) / len(values) if values else None,
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values) if values else None,
    }


def recordings(count: int, seconds: float) -> list[Recording]:
    """``count`` different recordings of at most ``seconds`` each."""
    pool = [r for r in real_corpus(SHARED_SPEECH / "long", "long") if r.duration_s < 90]
    pool += hard_corpus()
    limit = int(seconds * SAMPLE_RATE_HZ)
    return [
        Recording(r.name, r.audio[:limit], r.text, r.set)
        for r in (pool[i % len(pool)] for i in range(count))
    ]


async def _run_sessions(url: str, audios: Sequence[np.ndarray], window: str) -> list[TimedSession]:
    window_ms, overlap_ms = (int(x) for x in window.split("/"))
    payload = config(window_duration_ms=window_ms, overlap_duration_ms=overlap_ms)
    return list(
        await asyncio.gather(
            *(timed_session(url, pcm16(a), payload, realtime=True, timeout_s=600) for a in audios)
        )
    )


def run(
    model: str, sessions: int, window: str, seconds: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One server (``env``: extra settings), ``sessions`` real-time streams at once, the word
    delays pooled."""
    server = start_server(
        {
            "WHISPER_MODEL_PATH": str(model_path(model)),
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_IDLE_TIMEOUT_S": "600",
            "DATABASE_URL": database_url(),
            **(env or {}),
        },
        timeout=120,
    )
    try:
        audios = [r.audio for r in recordings(sessions, seconds)]
        load_before = os.getloadavg()
        progress(f"delay: {model} {window}, {sessions} session(s), load {load_before[0]:.2f}")
        done = asyncio.run(_run_sessions(server.url, audios, window))
        load_after = os.getloadavg()
    finally:
        server.stop()
    problems = [s.refused or s.errors for s in done if s.refused or s.errors]
    delays = [d for s in done for d in word_delays(s)]
    return {
        "model": model,
        "window": window,
        "sessions": sessions,
        "seconds_each": seconds,
        "env": env or {},
        "words": len(delays),
        "first_shown": stats([d.first_shown_s for d in delays]),
        "final": stats([d.final_s for d in delays]),
        "max_sender_late_s": max(s.late_s for s in done),
        "load_avg_1m": [load_before[0], load_after[0]],
        "problems": problems,
        "delays": [d.__dict__ for d in delays],
    }


def rows_of(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "window": r["window"],
            "sessions": r["sessions"],
            "words": r["words"],
        }
        for kind in ("first_shown", "final"):
            for stat in ("avg", "p50", "p95", "max"):
                row[f"{kind.replace('_', ' ')} {stat}"] = r[kind][stat]
        row["load 1m before→after"] = "→".join(f"{x:.2f}" for x in r["load_avg_1m"])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s per session, 1 session")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--sessions", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS))
    parser.add_argument("--seconds", type=float, default=60.0, help="speech per session")
    parser.add_argument("--name", default="delay", help="results/<name>.json")
    parser.add_argument(
        "--env", nargs="*", default=[], help="server settings, e.g. WSS_INTERIM_MS=0"
    )
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    counts = [1] if args.quick else args.sessions
    env = dict(item.split("=", 1) for item in args.env)
    runs = [run(args.model, n, w, seconds, env) for n in counts for w in args.windows]
    md = (
        f"### Speaker-to-text delay (s), {args.model}, real-time {FRAME_MS} ms chunks, "
        f"up to {seconds:.0f} s of speech per session"
        + (f", {' '.join(args.env)}" if args.env else "")
        + "\n\n"
        + table(rows_of(runs), list(rows_of(runs)[0]))
        + "\n\nfinal = speech.phrase arrival − send time of the chunk holding the word's end; "
        "first shown = the first speech.hypothesis or phrase showing the word, same origin."
    )
    write_result(args.name, {"runs": runs}, md)


if __name__ == "__main__":
    main()
