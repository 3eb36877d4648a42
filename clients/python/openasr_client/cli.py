"""The ``openasr`` command: ``openasr transcribe FILE`` and ``openasr mic``.

Results go to stdout (or ``-o``); progress, live partial text and errors go to stderr, so the
output can be piped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from openasr_client import __version__
from openasr_client.audio import MIC_SAMPLE_RATE_HZ, AudioError, microphone_chunks, open_audio
from openasr_client.events import (
    Checkpoint,
    ConfigAck,
    EndOfStream,
    Error,
    Event,
    Hypothesis,
    Phrase,
)
from openasr_client.files import API_KEY_ENV, DEFAULT_URL, default_api_key
from openasr_client.transcriber import Transcriber, TranscriberError, stream_audio
from openasr_client.transcript import FORMATS, Transcript, render

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BAR_WIDTH = 24


class Progress:
    """A progress bar with live partial text on stderr; plain lines when not a terminal."""

    def __init__(self, total_ms: int | None, stream: TextIO, enabled: bool = True) -> None:
        self.total_ms = total_ms
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.done_ms = 0
        self.partial = ""
        self._last_draw = 0.0
        self._last_step = -1
        self._finished = False

    def on_event(self, event: Event) -> None:
        """Called for every event: advance on checkpoints and phrases, show hypotheses."""
        if isinstance(event, Checkpoint):
            self.done_ms = max(self.done_ms, event.last_audio_ms)
        elif isinstance(event, Phrase):
            self.done_ms = max(self.done_ms, event.end)
            self.partial = event.text
        elif isinstance(event, Hypothesis):
            self.partial = event.text
        elif isinstance(event, Error):
            self.message(f"server error {event.code}: {event.message}")
        elif isinstance(event, ConfigAck) and event.resumed:
            self.message(f"connection lost: resumed at {event.last_audio_ms / 1000:.1f} s")
        if isinstance(event, EndOfStream):
            self.finish()
        else:
            self.draw()

    def percent(self) -> int:
        """Share of the audio transcribed so far (100 only when the stream ended)."""
        if self._finished:
            return 100
        if not self.total_ms:
            return 0
        return min(99, self.done_ms * 100 // self.total_ms)

    def draw(self, force: bool = False) -> None:
        """Redraw (at most 10 times a second on a terminal; every 10 % otherwise)."""
        if not self.enabled:
            return
        pct = self.percent()
        if self.tty:
            now = time.monotonic()
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            filled = pct * BAR_WIDTH // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            head = f"[{bar}] {pct:3d}% {_clock(self.done_ms)}"
            room = shutil.get_terminal_size((80, 20)).columns - len(head) - 2
            text = self.partial[-room:] if room > 10 else ""
            self.stream.write(f"\r\x1b[K{head}  {text}")
        else:
            step = pct // 10
            if step == self._last_step and not force:
                return
            self._last_step = step
            self.stream.write(f"progress {pct:3d}% {_clock(self.done_ms)} {self.partial}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (an error, a resume), keeping the bar below it."""
        if self.tty and self.enabled:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"openasr: {text}\n")
        self.stream.flush()

    def finish(self) -> None:
        """The stream ended: draw 100 % and leave the line."""
        if self._finished:
            return
        self._finished = True
        if self.total_ms:
            self.done_ms = max(self.done_ms, self.total_ms)
        self.draw(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``openasr``."""
    parser = argparse.ArgumentParser(prog="openasr", description="OpenASR streaming client")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=os.environ.get("OPENASR_URL", DEFAULT_URL))
        p.add_argument(
            "--api-key", default=None, help=f"API key (default: ${API_KEY_ENV}); sent as a header"
        )
        p.add_argument("--window", type=int, default=5000, metavar="MS", help="window (ms)")
        p.add_argument("--overlap", type=int, default=500, metavar="MS", help="overlap (ms)")
        p.add_argument("--language", default="en")
        p.add_argument("--format", choices=FORMATS, default="text")
        p.add_argument("-o", "--output", metavar="OUT", help="write the result here")
        p.add_argument("--no-progress", action="store_true", help="no progress on stderr")

    t = sub.add_parser("transcribe", help="transcribe an audio file")
    t.add_argument("file")
    common(t)
    t.add_argument("--realtime", action="store_true", help="send at real-time speed")
    t.add_argument("--no-resume", action="store_true", help="fail instead of resuming")
    m = sub.add_parser("mic", help="transcribe the default microphone until Ctrl-C")
    common(m)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="openasr: %(message)s")
    try:
        transcript: Transcript | None
        if args.command == "transcribe":
            transcript = asyncio.run(_transcribe(args))
        else:
            transcript = asyncio.run(_mic(args))
    except AudioError as exc:
        print(f"openasr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TranscriberError as exc:
        print(f"\nopenasr: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    if transcript is None:
        return EXIT_OK
    output = render(transcript, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(output)
    else:
        sys.stdout.write(output)
        sys.stdout.flush()
    return EXIT_OK


def _transcriber(args: argparse.Namespace, sample_rate: int, realtime: bool) -> Transcriber:
    return Transcriber(
        args.url,
        args.api_key or default_api_key(),
        sample_rate=sample_rate,
        language=args.language,
        window_ms=args.window,
        overlap_ms=args.overlap,
        realtime=realtime,
        resume=not getattr(args, "no_resume", False),
    )


async def _transcribe(args: argparse.Namespace) -> Transcript:
    source = open_audio(args.file)
    progress = Progress(source.duration_ms, sys.stderr, enabled=not args.no_progress)
    async with _transcriber(args, source.sample_rate, args.realtime) as transcriber:
        events = await stream_audio(transcriber, source.chunks(), progress.on_event)
    progress.finish()
    return Transcript.from_events(events)


async def _mic(args: argparse.Namespace) -> Transcript | None:
    chunks = microphone_chunks(MIC_SAMPLE_RATE_HZ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    progress = Progress(None, sys.stderr, enabled=not args.no_progress)
    print("openasr: listening; press Ctrl-C to stop", file=sys.stderr)

    live_text = not args.output and args.format == "text"

    def on_event(event: Event) -> None:
        if isinstance(event, Phrase) and live_text:
            if progress.tty and progress.enabled:
                sys.stderr.write("\r\x1b[K")
            sys.stdout.write(event.text + "\n")
            sys.stdout.flush()
        elif isinstance(event, Hypothesis | Error):
            progress.on_event(event)

    try:
        async with _transcriber(args, MIC_SAMPLE_RATE_HZ, realtime=False) as transcriber:
            events = await stream_audio(transcriber, chunks, on_event, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    progress.finish()
    # Text to the terminal was printed phrase by phrase; print nothing twice.
    return None if live_text else Transcript.from_events(events)
