"""Memory and throughput of the shared (one context, N states) vs the pywhispercpp backend.

Usage: ``python benchmarks/backend_memory.py --model models/ggml-tiny.en.bin``

1. RSS of one process holding a backend at concurrency 2, after a warm-up transcription on both
   slots at once, each measured in a fresh subprocess (shared vs pywhispercpp).
2. Throughput (audio seconds per wall second) on ~10 s speech clips with the shared backend:
   two concurrent inferences x 1 thread, one at a time x 1 thread, one at a time x 2 threads.
3. Inference time of one 5 s window with the default audio_ctx vs audio_ctx = 50*s + 64.

Prints a table and writes benchmarks/results/backend_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from transcription.inference.types import InferenceRequest  # noqa: E402

SAMPLE_RATE_HZ = 16_000
MIB = 1024 * 1024
VOICE = "flite-rms"
RESULTS_PATH = REPO_ROOT / "benchmarks" / "results" / "backend_memory.json"
CLIP_SENTENCES = (
    (
        "Please remember to bring the blue folder to the meeting tomorrow morning.",
        "The quick brown fox jumps over the lazy dog near the river bank.",
    ),
    (
        "Our server processes audio in small chunks and sends the text back.",
        "She walked slowly along the beach while the sun was setting.",
    ),
)


def clip(sentences: tuple[str, ...], seconds: float) -> np.ndarray:
    """Speech of exactly ``seconds``: the sentences with pauses, padded or cut."""
    from tests.support.speech import compose

    audio = compose(list(sentences), [VOICE], pauses_ms=[600]).audio
    n = int(seconds * SAMPLE_RATE_HZ)
    return np.pad(audio, (0, max(0, n - len(audio))))[:n].astype(np.float32)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


# --- 1. RSS, measured in a child process per backend ---


def rss_child(kind: str, model: str) -> dict[str, Any]:
    """Runs in a fresh subprocess: load ``kind`` at concurrency 2, warm both slots, report RSS."""
    import _pywhispercpp  # noqa: F401  (both backends load it; keep it out of the delta)
    import pywhispercpp.model  # noqa: F401

    from transcription.inference.backend import load_backend

    clips = [clip(s, 10.0) for s in CLIP_SENTENCES]
    baseline = rss_mib()
    started = time.monotonic()
    backend = load_backend(kind, model, concurrency=2, n_threads=1)  # type: ignore[arg-type]
    load_s = time.monotonic() - started
    after_load = rss_mib()
    run_concurrently(backend, clips, n_threads=1)  # warm-up: both slots allocate buffers
    after_warmup = rss_mib()
    return {
        "backend": type(backend).__name__,
        "baseline_mib": round(baseline, 1),
        "load_s": round(load_s, 3),
        "after_load_mib": round(after_load, 1),
        "after_warmup_mib": round(after_warmup, 1),
        "added_mib": round(after_warmup - baseline, 1),
    }


def measure_rss(kind: str, model: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--model", model, "--rss-child", kind],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- 2. throughput ---


def run_concurrently(backend: Any, clips: list[np.ndarray], n_threads: int) -> list[Any]:
    results: list[Any] = [None] * len(clips)
    barrier = threading.Barrier(len(clips))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = backend.transcribe(clips[i], InferenceRequest(n_threads=n_threads))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_sequentially(backend: Any, clips: list[np.ndarray], n_threads: int) -> list[Any]:
    return [backend.transcribe(c, InferenceRequest(n_threads=n_threads)) for c in clips]


def median_wall(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_throughput(model: str, runs: int) -> dict[str, Any]:
    from transcription.inference.whisper_shared import SharedWhisperBackend

    clips = [clip(s, 10.0) for s in CLIP_SENTENCES]
    audio_s = sum(len(c) for c in clips) / SAMPLE_RATE_HZ
    backend = SharedWhisperBackend(model, concurrency=2, n_threads=2)
    try:
        modes = {
            "2 concurrent x 1 thread": lambda: run_concurrently(backend, clips, 1),
            "1 at a time x 1 thread": lambda: run_sequentially(backend, clips, 1),
            "1 at a time x 2 threads": lambda: run_sequentially(backend, clips, 2),
        }
        texts = {
            name: [" ".join(s.text for s in segs) for segs in fn()] for name, fn in modes.items()
        }
        result: dict[str, Any] = {"clips": len(clips), "audio_s": audio_s, "modes": {}}
        for name, fn in modes.items():
            wall = median_wall(fn, runs)
            result["modes"][name] = {
                "wall_s": round(wall, 3),
                "audio_s_per_wall_s": round(audio_s / wall, 2),
                "texts": texts[name],
            }
        return result
    finally:
        backend.close()


# --- 3. audio_ctx ---


def measure_audio_ctx(model: str, runs: int) -> dict[str, Any]:
    from transcription.inference.whisper_shared import SharedWhisperBackend

    seconds = 5.0
    window = clip(CLIP_SENTENCES[0], seconds)
    reduced = int(50 * seconds) + 64
    backend = SharedWhisperBackend(model, concurrency=1, n_threads=2)
    out: dict[str, Any] = {"window_s": seconds, "reduced_audio_ctx": reduced, "runs": {}}
    try:
        for n_threads in (1, 2):
            for label, audio_ctx in (("default", 0), ("reduced", reduced)):
                request = InferenceRequest(n_threads=n_threads, audio_ctx=audio_ctx)
                wall = median_wall(lambda r=request: backend.transcribe(window, r), runs)
                text = " ".join(s.text for s in backend.transcribe(window, request))
                out["runs"][f"{label} nt={n_threads}"] = {
                    "audio_ctx": audio_ctx,
                    "n_threads": n_threads,
                    "wall_s": round(wall, 3),
                    "rtf": round(wall / seconds, 3),
                    "text": text,
                }
        return out
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="path of a GGML whisper model file")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    parser.add_argument("--rss-child", choices=["shared", "pywhispercpp"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = str(Path(args.model).resolve())
    if not Path(model).is_file():
        parser.error(f"--model {model} does not exist")
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child, model)))
        return

    load_at_start = os.getloadavg()
    model_mib = os.path.getsize(model) / MIB
    rss = {kind: measure_rss(kind, model) for kind in ("shared", "pywhispercpp")}
    throughput = measure_throughput(model, args.runs)
    audio_ctx = measure_audio_ctx(model, args.runs)
    saved = rss["pywhispercpp"]["added_mib"] - rss["shared"]["added_mib"]
    modes = throughput["modes"]
    base = modes["1 at a time x 1 thread"]["audio_s_per_wall_s"]
    report = {
        "model": model,
        "model_file_mib": round(model_mib, 1),
        "cpu_count": os.cpu_count(),
        # libgomp spins at barriers by default; on 2 busy cores that makes n_threads=2 several
        # times slower, so the policy and the machine's load belong next to the figures.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "rss_concurrency_2": rss,
        "rss_saved_mib": round(saved, 1),
        "rss_saved_vs_model_file": round(saved / model_mib, 2),
        "throughput": throughput,
        "throughput_ratio_vs_sequential_1_thread": {
            name: round(m["audio_s_per_wall_s"] / base, 2) for name, m in modes.items()
        },
        "audio_ctx": audio_ctx,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")


def print_table(r: dict[str, Any]) -> None:
    print(
        f"model {r['model']} ({r['model_file_mib']} MiB), {r['cpu_count']} CPUs, "
        f"OMP_WAIT_POLICY={r['omp_wait_policy']}, load {r['load_average_at_start']}\n"
    )
    print("RSS at concurrency 2 after warm-up (MiB over the imports):")
    for kind, m in r["rss_concurrency_2"].items():
        print(
            f"  {kind:<14} +{m['added_mib']:>7.1f}   (after load +"
            f"{m['after_load_mib'] - m['baseline_mib']:.1f}, load {m['load_s']} s)"
        )
    print(
        f"  saved by sharing: {r['rss_saved_mib']} MiB = {r['rss_saved_vs_model_file']} x "
        "the model file\n"
    )
    t = r["throughput"]
    print(f"Throughput, {t['clips']} clips, {t['audio_s']:.0f} s of audio (shared backend):")
    for name, m in t["modes"].items():
        ratio = r["throughput_ratio_vs_sequential_1_thread"][name]
        print(
            f"  {name:<26} {m['wall_s']:>6.2f} s  {m['audio_s_per_wall_s']:>6.2f} audio s/s"
            f"  ({ratio:.2f}x)"
        )
    a = r["audio_ctx"]
    print(f"\nOne {a['window_s']:.0f} s window, audio_ctx default vs {a['reduced_audio_ctx']}:")
    for name, m in a["runs"].items():
        print(f"  {name:<16} {m['wall_s']:>6.3f} s  RTF {m['rtf']:.3f}  {m['text']!r}")


if __name__ == "__main__":
    main()
