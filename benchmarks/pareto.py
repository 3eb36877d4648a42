"""Capacity against quality (issue 18): for each inference setting worth trying, the streaming WER
on the quality corpus at 5 s and 2 s windows, the real-time sessions per core with paced streams
for two thread layouts, and the speaker-to-text delay of one session.

A candidate is a model file (``tiny.en``, ``base``, their ``-q8_0`` quantisations), an encoder
context (``full``: the padded 30 s Whisper was trained on; ``auto``: the audio present, at least
``AUDIO_CTX_MIN_S``, plus a margin) and a beam size (1 = greedy). Each part of a candidate is a
separate run (``--parts``), merged into ``results/pareto.json``, so runs can be queued between
other benchmarks and a crashed run loses one part only.

- ``quality``: the corpus of ``quality.py`` (real clips and long-form readings when present, the
  generated hard set) streamed as fast as backpressure allows, WER per set and pooled after
  Whisper's English normaliser; words on 60 s of silence, white and pink noise; the inference
  seconds per window the server logged.
- ``capacity``: the ramp of ``capacity.py`` (staggered real-time sessions, 20 s of generated
  speech each) for ``1ctx x 2thr`` and ``2ctx x 1thr``, starting near the count the measured
  inference time predicts and stopping at the first step that is not real-time.
- ``delay``: ``delay.py`` with one real-time session at each window size.

Usage: ``python benchmarks/pareto.py [--candidates "base auto b1" ...] [--parts quality capacity
delay] [--layouts "1ctx x 2thr"]``; ``--table`` only rewrites the table from the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from dataclasses import dataclass
from typing import Any

import capacity
import delay
import quality
from common import (
    RESULTS_DIR,
    database_url,
    model_path,
    pcm16,
    progress,
    speech_clip,
    table,
    window_timings,
    write_result,
)
from corpus import SHARED_SPEECH, load

from tests.support.server import start_server
from tests.support.wer import normalize

NAME = "pareto"
SETS = ("clips", "long", "hard")
WINDOWS = ((5000, 500), (2000, 200))
CAPACITY_SECONDS = 20.0


@dataclass(frozen=True)
class Candidate:
    model: str  # models/ggml-<model>.bin
    ctx: str  # WSS_AUDIO_CTX
    beam: int  # WSS_BEAM_SIZE

    @property
    def name(self) -> str:
        return f"{self.model} {self.ctx} b{self.beam}"

    @property
    def base_model(self) -> str:
        return self.model.partition("-")[0]

    def env(self) -> dict[str, str]:
        return {
            "WHISPER_MODEL_PATH": str(model_path(self.model)),
            "WSS_AUDIO_CTX": self.ctx,
            "WSS_BEAM_SIZE": str(self.beam),
        }


# Full contexts cost 0.56-1.4 s per 5 s window on 2 threads: they cannot reach 4 sessions per
# core, so only the seed's default, its greedy variant and base greedy (5 s windows) are run.
CANDIDATES = [
    Candidate("tiny.en", "full", 5),
    Candidate("tiny.en", "full", 1),
    Candidate("tiny.en", "auto", 5),
    Candidate("tiny.en", "auto", 1),
    Candidate("base", "full", 1),
    Candidate("base", "auto", 5),
    Candidate("base", "auto", 1),
    Candidate("tiny.en-q8_0", "auto", 1),
    Candidate("base-q8_0", "auto", 1),
]
SEED_DEFAULT = Candidate("tiny.en", "full", 5)


def parse_candidate(text: str) -> Candidate:
    model, ctx, beam = text.split()
    return Candidate(model, ctx, int(beam.removeprefix("b")))


# --- the results file, merged part by part ---


def load_results() -> dict[str, Any]:
    path = RESULTS_DIR / f"{NAME}.json"
    if not path.is_file():
        return {"candidates": {}, "offline": {}}
    data = json.loads(path.read_text())
    return {"candidates": data.get("candidates", {}), "offline": data.get("offline", {})}


def save(results: dict[str, Any]) -> None:
    write_result(NAME, results, markdown(results))


# --- parts ---


def run_quality(c: Candidate, offline: list[str], windows: list[tuple[int, int]]) -> dict[str, Any]:
    corpus = load(SETS, SHARED_SPEECH, fluent=0)
    server = start_server(
        {
            **c.env(),
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_IDLE_TIMEOUT_S": "600",
            "WSS_LOG_LEVEL": "debug",
            "DATABASE_URL": database_url(),
        },
        timeout=120,
    )
    out: dict[str, Any] = {"load_avg_1m_before": os.getloadavg()[0]}
    try:
        for window in windows:
            progress(f"pareto: {c.name}: quality at {window[0]}/{window[1]} ms")
            log_from = len(server.log())
            run = quality.streaming(server, corpus, window, offline)
            timings = window_timings(server.log()[log_from:])
            run["inference_s"] = [t["inference_s"] for t in timings]
            run["audio_s"] = [t["audio_s"] for t in timings]
            out[f"stream_{window[0]}"] = run
        emitted = {}
        for name, audio in quality.noises(quality.NOISE_S).items():
            progress(f"pareto: {c.name}: {quality.NOISE_S:.0f} s of {name}")
            text = " ".join(asyncio.run(quality.streamed(server, audio, WINDOWS[0])))
            emitted[name] = len(normalize(text))
        out["words_on_non_speech"] = emitted
    finally:
        server.stop()
    return out


def run_offline(model: str) -> dict[str, Any]:
    corpus = load(SETS, SHARED_SPEECH, fluent=0)
    progress(f"pareto: offline {model} over {len(corpus)} recordings")
    return quality.offline(model, corpus)


def window_cost_s(entry: dict[str, Any], window_ms: int = 5000) -> float | None:
    """Median inference seconds of a full window at ``window_ms`` (from the quality run)."""
    run = entry.get("quality", {}).get(f"stream_{window_ms}")
    if not run or "inference_s" not in run:
        return None
    full = [
        i for i, a in zip(run["inference_s"], run["audio_s"], strict=True) if a >= window_ms / 1100
    ]
    return statistics.median(full) if full else None


def run_capacity(c: Candidate, layout: str, cost_s: float | None) -> dict[str, Any]:
    """The paced ramp of ``capacity.py`` at 5 s windows, from near the predicted count up to
    the first step that is not real-time."""
    hop_s = 4.5
    predicted = 4 if cost_s is None else max(2, int(hop_s / cost_s))
    ns = sorted({max(2, predicted - 2), *range(predicted, 33, 2)})
    clips = [pcm16(speech_clip(CAPACITY_SECONDS, seed=s)[0]) for s in range(3)]
    server = capacity.layout_server(layout, c.env())
    steps: list[dict[str, Any]] = []
    try:
        for n in ns:
            steps.append(_capacity_step(c, layout, server, n, clips))
            if not steps[-1]["realtime"]:
                break
        if not steps[0]["realtime"]:  # predicted too high: go down until one keeps up
            for n in range(ns[0] - 2, 0, -2):
                steps.append(_capacity_step(c, layout, server, n, clips))
                if steps[-1]["realtime"]:
                    break
    finally:
        server.stop()
    fits = max((s["n"] for s in steps if s["realtime"]), default=0)
    return {
        "steps": steps,
        "max_realtime_sessions": fits,
        "sessions_per_core": fits / (os.cpu_count() or 1),
    }


def _capacity_step(
    c: Candidate, layout: str, server: Any, n: int, clips: list[bytes]
) -> dict[str, Any]:
    progress(f"pareto: {c.name} {layout}: {n} paced sessions (load {os.getloadavg()[0]:.2f})")
    step = asyncio.run(capacity.run_step(server, n, clips, 5000, 500))
    step["load_avg_1m"] = os.getloadavg()[0]
    return step


def run_delay(c: Candidate, seconds: float) -> dict[str, Any]:
    out = {}
    for window in ("5000/500", "2000/200"):
        progress(f"pareto: {c.name}: delay at {window}")
        run = delay.run(c.base_model, 1, window, seconds, c.env())
        run.pop("delays")
        out[window] = run
    return out


# --- the table ---


def _set_wer(run: dict[str, Any] | None, name: str) -> float | None:
    if not run:
        return None
    return run["wer_pct"] if name == "all" else run["sets"].get(name, {}).get("wer_pct")


def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, entry in results["candidates"].items():
        q = entry.get("quality", {})
        row: dict[str, Any] = {"candidate": name}
        for s in (*SETS, "all"):
            row[f"5 s {s}"] = _set_wer(q.get("stream_5000"), s)
        row["2 s all"] = _set_wer(q.get("stream_2000"), "all")
        row["2 s long"] = _set_wer(q.get("stream_2000"), "long")
        noise = q.get("words_on_non_speech")
        row["words on noise"] = sum(noise.values()) if noise else None
        row["s per 5 s window"] = window_cost_s(entry)
        for layout in capacity.LAYOUTS:
            cap = entry.get("capacity", {}).get(layout)
            row[f"sessions/core {layout}"] = cap["sessions_per_core"] if cap else None
        d = entry.get("delay", {})
        for window in ("5000/500", "2000/200"):
            run = d.get(window)
            row[f"final {window[0]} s"] = run["final"]["avg"] if run else None
            row[f"shown {window[0]} s"] = run["first_shown"]["avg"] if run else None
        rows.append(row)
    return rows


def scatter(rows: list[dict[str, Any]], width: int = 60, height: int = 16) -> str:
    """A text plot: sessions per core (best layout, x) against pooled WER at 5 s (y)."""
    points = []
    for i, r in enumerate(rows):
        per_core = [v for k, v in r.items() if k.startswith("sessions/core") and v is not None]
        if per_core and r["5 s all"] is not None:
            points.append((max(per_core), r["5 s all"], chr(ord("A") + i)))
    if not points:
        return ""
    xmax = max(p[0] for p in points) or 1
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    grid = [[" "] * (width + 1) for _ in range(height + 1)]
    for x, y, mark in points:
        col = round(x / xmax * width)
        row = round((ymax - y) / max(ymax - ymin, 1e-9) * height)
        grid[row][col] = mark
    lines = []
    for i, cells in enumerate(grid):
        y = ymax - i * (ymax - ymin) / height
        lines.append(f"{y:6.2f} |" + "".join(cells))
    lines.append("       +" + "-" * (width + 1))
    lines.append(f"        0{'sessions per core (best layout)':^{width - 8}}{xmax:.1f}")
    legend = ", ".join(f"{chr(ord('A') + i)} = {r['candidate']}" for i, r in enumerate(rows))
    return (
        "pooled WER % at 5 s windows (lower is better) against real-time sessions per core\n\n"
        "```\n" + "\n".join(lines) + "\n```\n\n" + legend
    )


def markdown(results: dict[str, Any]) -> str:
    rows = rows_of(results)
    if not rows:
        return ""
    offline = "; ".join(
        f"{m}: {r['wer_pct']:.2f} %"
        + " ("
        + ", ".join(f"{s} {v['wer_pct']:.2f}" for s, v in r["sets"].items())
        + ")"
        for m, r in results["offline"].items()
    )
    return (
        "### Capacity against quality, per inference setting (WER %, pooled and per set; "
        "sessions per core = the largest paced real-time count / cores, 5 s windows; delay "
        "= one real-time session, average s)\n\n"
        + table(rows, list(rows[0]))
        + f"\n\nOffline WER (whole file, greedy, full context): {offline}.\n\n"
        + scatter(rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", help='e.g. "base auto b1" (default: all)')
    parser.add_argument("--parts", nargs="+", default=["quality", "capacity", "delay"])
    parser.add_argument("--layouts", nargs="+", default=list(capacity.LAYOUTS))
    parser.add_argument(
        "--windows", nargs="+", default=["5000/500", "2000/200"], help="quality windows"
    )
    parser.add_argument("--delay-seconds", type=float, default=40.0)
    parser.add_argument("--table", action="store_true", help="only rewrite the table")
    args = parser.parse_args()
    results = load_results()
    picked = [parse_candidate(t) for t in args.candidates] if args.candidates else CANDIDATES
    if not args.table:
        for c in picked:
            entry = results["candidates"].setdefault(c.name, {})
            if "quality" in args.parts:
                if c.model not in results["offline"]:
                    results["offline"][c.model] = run_offline(c.model)
                    save(results)
                hyps = results["offline"][c.model]["hypotheses"]
                windows = [(int(a), int(b)) for a, b in (w.split("/") for w in args.windows)]
                entry.setdefault("quality", {}).update(run_quality(c, hyps, windows))
                save(results)
            if "capacity" in args.parts:
                caps = entry.setdefault("capacity", {})
                for layout in args.layouts:
                    caps[layout] = run_capacity(c, layout, window_cost_s(entry))
                    save(results)
            if "delay" in args.parts:
                entry["delay"] = run_delay(c, args.delay_seconds)
                save(results)
    save(results)


if __name__ == "__main__":
    main()
