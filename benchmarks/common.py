"""Shared pieces of the benchmarks: real servers, paced timed clients, /metrics scraping,
per-window timings from the server log, process CPU/RSS, tables and JSON results.

Every benchmark starts its own daphne (``tests/support/server.py``); nothing here mocks the
server. Figures are only as good as the machine is quiet: re-run on an idle host before quoting.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import websockets  # noqa: E402

from tests.support.client import FlowControl  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
MODELS_DIR = REPO_ROOT / "models"
SAMPLE_RATE_HZ = 16_000
FRAME_MS = 200
MIB = 1024 * 1024


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def model_path(name: str) -> Path:
    """``models/ggml-<name>.bin``, installed on demand (idempotent); ``tiny.en-q8_0`` names
    the q8_0 quantisation of ``tiny.en``."""
    path = MODELS_DIR / f"ggml-{name}.bin"
    if not path.is_file():
        from transcription.modelfiles.install import install_model

        base, _, quant = name.partition("-")
        progress(f"installing model {name}")
        path = install_model(base, MODELS_DIR, quant=quant or "f16")
    return path


def redis_url(db: int) -> str:
    from tests.e2e.conftest import redis_test_url

    return redis_test_url(db)


def database_url() -> str:
    from tests.e2e.conftest import migrated_db

    return migrated_db()


# --- statistics ---


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


# --- audio ---


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def frames_of(pcm: bytes, frame_ms: int = FRAME_MS) -> list[bytes]:
    size = SAMPLE_RATE_HZ * 2 * frame_ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def speech_clip(seconds: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """Synthesised speech (clear voices, 0.2–2 s pauses) of at least ``seconds``."""
    from tests.support.speech import SENTENCES, VOICES, compose

    rng = np.random.default_rng(seed)
    order = [SENTENCES[i] for i in rng.permutation(len(SENTENCES))]
    picked: list[str] = []
    comp = None
    while comp is None or comp.duration_ms < seconds * 1000:
        picked.append(order[len(picked) % len(order)])
        comp = compose(picked, VOICES[seed % len(VOICES) :] + VOICES[: seed % len(VOICES)])
    return comp.audio, comp.text


# --- a paced client that timestamps everything ---


@dataclass
class TimedSession:
    """Events with arrival times (s after the first frame) and per-frame send times."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    refused: dict[str, Any] | None = None
    late_s: float = 0.0  # how far the sender fell behind its real-time schedule, at worst
    sent: list[float] = field(default_factory=list)  # when each frame had been sent

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e.get("type") == kind]

    @property
    def phrases(self) -> list[str]:
        """The committed phrases in order (one per window that committed words)."""
        return [
            e["payload"]["text"]
            for _, e in self.of("speech.phrase")
            if e["payload"]["status"] == "Success" and e["payload"]["text"]
        ]

    @property
    def text(self) -> str:
        return " ".join(self.phrases)

    def phrase_lags(self) -> list[float]:
        """Per phrase: arrival minus the wall time its last audio was sent (paced streams)."""
        return [
            t - (e["payload"]["offset"] + e["payload"]["duration"]) / 1000
            for t, e in self.of("speech.phrase")
            if e["payload"]["status"] == "Success" and e["payload"]["text"]
        ]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["payload"] for _, e in self.of("speech.error")]


async def timed_session(
    url: str,
    pcm: bytes,
    payload: dict[str, Any],
    *,
    realtime: bool = True,
    frame_ms: int = FRAME_MS,
    timeout_s: float = 300,
) -> TimedSession:
    """Stream ``pcm`` (paced against the clock when ``realtime``), end, collect until close."""
    out = TimedSession()
    async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if ack["type"] != "speech.config.ack":
            out.refused = ack.get("payload", ack)
            return out
        t0 = time.monotonic()
        out.events.append((0.0, ack))
        flow = FlowControl()

        async def receive() -> None:
            async for raw in ws:
                event = json.loads(raw)
                out.events.append((time.monotonic() - t0, event))
                flow.observe(event)

        receiver = asyncio.ensure_future(receive())
        for i, frame in enumerate(frames_of(pcm, frame_ms)):
            await flow.ready(i * frame_ms, timeout_s)
            if realtime:
                due = t0 + i * frame_ms / 1000
                now = time.monotonic()
                out.late_s = max(out.late_s, now - due)
                await asyncio.sleep(max(0.0, due - now))
            await ws.send(frame)
            out.sent.append(time.monotonic() - t0)
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        try:
            await asyncio.wait_for(receiver, timeout_s)
        except (websockets.ConnectionClosed, TimeoutError):
            pass
    return out


# --- what the server saw ---

_WINDOW_RE = re.compile(
    r"window-timing index=(\d+) latency_s=([\d.]+) inference_s=([-\d.]+) "
    r"queue_wait_s=([-\d.]+) audio_s=([-\d.]+)"
)


def window_timings(log_text: str) -> list[dict[str, float]]:
    """Per-window figures the consumer logs at debug level (``window-timing ...``)."""
    return [
        {
            "index": int(m[1]),
            "latency_s": float(m[2]),
            "inference_s": float(m[3]),
            "queue_wait_s": float(m[4]),
            "audio_s": float(m[5]),
        }
        for m in _WINDOW_RE.finditer(log_text)
    ]


def scrape(http: str) -> dict[str, float]:
    """``/metrics`` as {sample name with labels: value}."""
    import urllib.request

    with urllib.request.urlopen(http + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                samples[name] = float(value)
            except ValueError:
                continue
    return samples


def histogram_quantile(
    before: dict[str, float], after: dict[str, float], name: str, q: float
) -> float | None:
    """Prometheus-style quantile of the observations between two scrapes (linear in bucket)."""
    prefix = f'{name}_bucket{{le="'
    buckets: list[tuple[float, float]] = []
    for key, value in after.items():
        if key.startswith(prefix):
            le = key[len(prefix) : key.index('"', len(prefix))]
            bound = math.inf if le == "+Inf" else float(le)
            buckets.append((bound, value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    target = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if math.isinf(bound):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((target - prev_count) / span if span else 1)
        prev_bound, prev_count = bound, count
    return None


def histogram_count_sum(
    before: dict[str, float], after: dict[str, float], name: str
) -> tuple[float, float]:
    count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
    total = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
    return count, total


class ProcessMeter:
    """CPU seconds and peak RSS of a set of processes over an interval (sampled)."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.cpu0 = [self._cpu(p) for p in self.procs]
        self.t0 = time.monotonic()
        self.peak_rss = [p.memory_info().rss for p in self.procs]
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)

    def sample(self) -> None:
        for i, p in enumerate(self.procs):
            try:
                self.peak_rss[i] = max(self.peak_rss[i], p.memory_info().rss)
            except psutil.NoSuchProcess:
                pass

    async def run(self, interval_s: float = 0.5) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval_s)

    def start(self) -> ProcessMeter:
        self._task = asyncio.ensure_future(self.run())
        return self

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()
        wall = time.monotonic() - self.t0
        cpu = [self._cpu(p) - c0 for p, c0 in zip(self.procs, self.cpu0, strict=True)]
        return {
            "wall_s": wall,
            "cpu_s": sum(cpu),
            "cpu_cores": sum(cpu) / wall if wall else 0.0,
            "peak_rss_mib": [r / MIB for r in self.peak_rss],
        }


# --- output ---


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table (readable on stdout and in SUMMARY.md)."""
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join(lines)


def write_result(name: str, data: dict[str, Any], markdown: str) -> Path:
    """``benchmarks/results/<name>.json`` (with the Markdown table inside) and stdout."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_count": psutil.cpu_count(),
        "load_avg_at_end": list(psutil.getloadavg()),
        **data,
        "markdown": markdown,
    }
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(markdown)
    progress(f"wrote {path.relative_to(REPO_ROOT)}")
    return path
