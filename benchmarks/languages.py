"""Languages: WER of real German, Spanish and French speech offline vs streamed, and whether
``"auto"`` detects and locks the right language (issue #21, docs/PROTOCOL.md "Language
detection").

For each language of ``../shared/speech/multi`` (FLEURS read sentences, five clips each, read in
place), with one multilingual model (``base``): offline WER (whole clip in one backend call,
language given), streaming WER through a real daphne at 5000/500 ms windows with the language
given and with ``"auto"``, the language each ``"auto"`` session locked (the last phrase's
``language``) and its probability, and how many clips locked the right one. WER is pooled (all
word errors / all reference words) after Whisper's basic normaliser on both sides, as the
clips' README asks, per language and over all three.

Usage: ``python benchmarks/languages.py [--quick] [--model base] [--corpus DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import database_url, model_path, progress, table, timed_session, write_result

from tests.support.client import config
from tests.support.multi import MULTI_DIR, Clip, basic_word_errors, read_clips
from tests.support.server import Server, start_server

LANGUAGES = ("de", "es", "fr")
WINDOW = (5000, 500)


def pooled(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Pooled WER (percent) of (reference, hypothesis) pairs."""
    counts = [basic_word_errors(ref, hyp) for ref, hyp in pairs]
    errors = sum(e for e, _ in counts)
    words = sum(n for _, n in counts)
    return {"wer_pct": 100 * errors / max(words, 1), "errors": errors, "ref_words": words}


def offline(model: str, clips: Sequence[Clip]) -> list[str]:
    """Each clip in one backend call with its language given (the bar streaming is held to)."""
    from transcription.inference.backend import load_backend
    from transcription.inference.types import InferenceRequest

    backend = load_backend("shared", model_path(model), concurrency=1, n_threads=2)
    try:
        return [
            " ".join(
                s.text.strip()
                for s in backend.transcribe(
                    clip.samples, InferenceRequest(language=clip.language, n_threads=2)
                )
            )
            for clip in clips
        ]
    finally:
        backend.close()


async def streamed(server: Server, clip: Clip, language: str) -> dict[str, Any]:
    """One clip streamed as fast as backpressure allows: its text, and the language and
    probability its last phrase and checkpoint report."""
    payload = config(language=language, window_duration_ms=WINDOW[0], overlap_duration_ms=WINDOW[1])
    session = await timed_session(server.url, clip.pcm, payload, realtime=False, timeout_s=300)
    if session.refused or session.errors:
        raise RuntimeError(f"{clip.name}: stream failed: {session.refused or session.errors}")
    phrases = [e["payload"] for _, e in session.of("speech.phrase") if e["payload"]["text"]]
    checkpoints = [e["payload"] for _, e in session.of("speech.checkpoint")]
    last = phrases[-1] if phrases else {}
    return {
        "text": session.text,
        "language": last.get("language"),
        "language_probability": last.get("language_probability"),
        "phrase_languages": sorted({p.get("language") or "" for p in phrases}),
        "checkpoint_language": checkpoints[-1].get("language") if checkpoints else None,
    }


def run(model: str, clips: Sequence[Clip]) -> dict[str, Any]:
    progress(f"languages: {model}: offline over {len(clips)} clips")
    result: dict[str, Any] = {"model": model, "offline": offline(model, clips)}
    server = start_server(
        {
            "WSS_MODEL": model,
            "WSS_MODELS": model,
            "WSS_ADMISSION_HEADROOM": "0",
            "WSS_IDLE_TIMEOUT_S": "600",
            "DATABASE_URL": database_url(),
        },
        timeout=120,
    )
    try:
        for mode in ("given", "auto"):
            progress(f"languages: {model}: streaming {WINDOW[0]}/{WINDOW[1]} ms, language {mode}")
            result[mode] = [
                asyncio.run(streamed(server, c, c.language if mode == "given" else "auto"))
                for c in clips
            ]
    finally:
        server.stop()
    return result


def rows_of(result: dict[str, Any], clips: Sequence[Clip]) -> list[dict[str, Any]]:
    """One row per language and one pooled: WER offline, streamed with the language given and
    with auto (and each one's excess over offline), clips locked right, mean probability."""
    rows = []
    for language in [*LANGUAGES, "all"]:
        picked = [i for i, c in enumerate(clips) if language in ("all", c.language)]
        if not picked:
            continue
        refs = [clips[i].reference for i in picked]
        off = pooled([(r, result["offline"][i]) for r, i in zip(refs, picked, strict=True)])
        given = pooled([(r, result["given"][i]["text"]) for r, i in zip(refs, picked, strict=True)])
        auto = pooled([(r, result["auto"][i]["text"]) for r, i in zip(refs, picked, strict=True)])
        right = [
            i
            for i in picked
            if result["auto"][i]["language"] == clips[i].language
            and result["auto"][i]["phrase_languages"] == [clips[i].language]
        ]
        probs = [result["auto"][i]["language_probability"] or 0.0 for i in picked]
        seconds = sum(len(clips[i].pcm) / 32000 for i in picked)
        rows.append(
            {
                "language": f"{language} ({len(picked)} clips, {seconds:.0f} s, "
                f"{off['ref_words']} words)",
                "offline WER %": off["wer_pct"],
                "given WER %": given["wer_pct"],
                "given Δ": given["wer_pct"] - off["wer_pct"],
                "auto WER %": auto["wer_pct"],
                "auto Δ": auto["wer_pct"] - off["wer_pct"],
                "auto locked right": f"{len(right)}/{len(picked)}",
                "locked as": ", ".join(
                    sorted({str(result["auto"][i]["language"]) for i in picked})
                ),
                "mean probability": sum(probs) / len(probs),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two clips per language")
    parser.add_argument("--model", default="base", help="a multilingual model")
    parser.add_argument("--corpus", type=Path, default=MULTI_DIR, help="the multi speech folder")
    parser.add_argument("--name", default="languages", help="results/<name>.json")
    args = parser.parse_args()
    clips = [
        c for lang in LANGUAGES for c in read_clips(lang, args.corpus)[: 2 if args.quick else None]
    ]
    if not clips:
        raise SystemExit(f"no real multilingual speech at {args.corpus}")
    total_s = sum(len(c.pcm) / 32000 for c in clips)
    progress(f"languages: {len(clips)} clips, {total_s:.0f} s")
    result = run(args.model, clips)
    rows = rows_of(result, clips)
    md = (
        f"### Languages, {args.model}, {len(clips)} real FLEURS clips ({total_s:.0f} s), "
        f"streamed at {WINDOW[0]}/{WINDOW[1]} ms as fast as backpressure allows; WER after "
        "Whisper's basic normaliser; Δ = streamed − offline (points); offline: whole clip, "
        "language given\n\n" + table(rows, list(rows[0]))
    )
    write_result(
        args.name,
        {
            "model": args.model,
            "window_ms": list(WINDOW),
            "clips": [
                {"name": c.name, "language": c.language, "reference": c.reference} for c in clips
            ],
            "result": result,
            "rows": rows,
            "quick": args.quick,
        },
        md,
    )


if __name__ == "__main__":
    main()
