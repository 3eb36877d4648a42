"""Failover: the caption gap each failure costs a live session (docs/DEPLOYING.md "What a failure
costs").

One real-time stream of generated speech (four sentences, ~17 s, tiny.en, 5000/500 ms windows)
through a fresh deployment per scenario (``tests/support/failover.py``, the chaos tests' own
harness): no failure (the reference), the worker running the window SIGKILLed (a second worker
idle, a replacement started), Redis SIGKILLed and restarted 4 s later (append-only file), the
Redis master SIGKILLed under a Sentinel that promotes its replica, and the client's node
SIGKILLed (resumed on the other node by session id).

Figures: ``caption gap`` is the time from the failure to the next caption; ``max delay`` the
largest delay of a caption behind the end of the speech it transcribes (a 5 s window alone
makes that ~5 s); ``inference p50`` the median inference time of a window in that run (the
"plus one inference" of the targets); ``ready again`` when ``/ready`` was 200 again after the
Redis failures; ``reconnect → phrase`` the time from the resume's upgrade to its first caption,
of which the speaker may still be saying that caption's last words (``speaking after reconnect``);
``resume cost`` is what is left: from the later of the reconnect and the end of that speech to
the caption.

Usage: ``python benchmarks/failover.py [--quick] [--scenarios worker_kill node_kill ...]
[--name failover]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from common import database_url, model_path, progress, table, window_timings, write_result

from tests.support import speech
from tests.support.client import config
from tests.support.failover import BASELINE, SCENARIOS, run_scenario

COLUMNS = (
    "scenario",
    "closed",
    "errors",
    "caption gap s",
    "max delay s",
    "inference p50 s",
    "ready again s",
    "reconnect → phrase s",
    "speaking after reconnect s",
    "resume cost s",
)


async def _one(scenario: str, env: dict[str, str], pcm: bytes) -> dict[str, Any]:
    progress(f"failover: {scenario}")
    try:
        outcome = await run_scenario(scenario, env, pcm, config())
    except Exception as exc:  # a scenario the code under test does not survive
        return {"scenario": scenario, "closed": f"run failed: {type(exc).__name__}: {exc}"[:120]}
    figures = outcome.figures()
    inference = [w["inference_s"] for w in window_timings(outcome.server_logs)]
    return {
        "scenario": scenario,
        "closed": ",".join(str(int(c)) if c is not None else "-" for c in figures["close_codes"]),
        "errors": ", ".join(e["code"] for e in outcome.run.errors) or "0",
        "caption gap s": figures["caption_gap_s"],
        "max delay s": figures["max_caption_delay_s"],
        "inference p50 s": round(statistics.median(inference), 2) if inference else None,
        "ready again s": figures.get("ready_again_s"),
        "reconnect → phrase s": figures.get("reconnect_to_first_phrase_s"),
        "speaking after reconnect s": figures.get("speaking_after_reconnect_s"),
        "resume cost s": figures.get("resume_cost_s"),
        "figures": figures,
        "inference_s": inference,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=[BASELINE, *SCENARIOS])
    parser.add_argument("--name", default="failover", help="results/<name>.json")
    parser.add_argument("--quick", action="store_true", help="the worker and node kills only")
    args = parser.parse_args()
    if args.quick:
        args.scenarios = ["worker_kill", "node_kill"]
    env = {
        "WHISPER_MODEL_PATH": str(model_path("tiny.en")),
        "DATABASE_URL": database_url(),
        "DJANGO_SECRET_KEY": "openasr-failover-bench-secret-0123456789-abcdefghijkl",
        "WSS_ADMISSION_HEADROOM": "0",
        "WSS_LOG_LEVEL": "debug",  # window-timing lines
    }
    recording = speech.compose(speech.SENTENCES[:4], speech.VOICES[:2])
    pcm = speech.to_pcm16(recording.audio)
    rows = [await _one(s, env, pcm) for s in args.scenarios]
    markdown = "### Caption gap per failure (one real-time session, tiny.en)\n\n" + table(
        rows, COLUMNS
    )
    write_result(args.name, {"rows": rows}, markdown)


if __name__ == "__main__":
    asyncio.run(main())
