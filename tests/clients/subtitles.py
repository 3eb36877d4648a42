"""Strict little SRT and WebVTT parsers for the client tests (cue times in ms, text)."""

from __future__ import annotations

import re

_SRT_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2}):(\d{2}):(\d{2}),(\d{3})$")
_VTT_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2}):(\d{2}):(\d{2})\.(\d{3})$")


def _ms(parts: tuple[str, ...]) -> int:
    h, m, s, ms = (int(p) for p in parts)
    assert m < 60 and s < 60
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def parse_srt(text: str) -> list[tuple[int, int, str]]:
    """Cues of a SubRip file; raises AssertionError on any deviation from the format."""
    cues = []
    blocks = [b for b in text.strip("\n").split("\n\n")] if text.strip() else []
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(n), f"cue {n}: bad index {lines[0]!r}"
        match = _SRT_TIME.match(lines[1])
        assert match, f"cue {n}: bad timing line {lines[1]!r}"
        assert 1 <= len(lines[2:]) <= 2 and all(line.strip() for line in lines[2:])
        cues.append((_ms(match.groups()[:4]), _ms(match.groups()[4:]), " ".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[tuple[int, int, str]]:
    """Cues of a WebVTT file (no cue ids, no settings); raises AssertionError otherwise."""
    assert text.startswith("WEBVTT\n"), "missing WEBVTT header"
    blocks = text.strip("\n").split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        lines = block.split("\n")
        match = _VTT_TIME.match(lines[0])
        assert match, f"bad timing line {lines[0]!r}"
        body = lines[1:]
        assert 1 <= len(body) <= 2 and all(line.strip() for line in body)
        assert not any("-->" in line or "<" in line for line in body)
        cues.append((_ms(match.groups()[:4]), _ms(match.groups()[4:]), " ".join(body)))
    return cues


def assert_monotone(cues: list[tuple[int, int, str]]) -> None:
    """Every cue ends after it starts and starts no earlier than the previous one ends."""
    previous_end = 0
    for start, end, _ in cues:
        assert start < end, (start, end)
        assert start >= previous_end, (start, previous_end)
        previous_end = end
