"""Streaming policies: which span of the audio buffer to transcribe next, and what to commit.

One policy per session, chosen by the server's ``streaming_policy`` setting
(``WSS_STREAMING_POLICY``) through ``make_policy``. The contract a policy keeps with the
session (normative: ``docs/PROTOCOL.md`` "Windows and events") is in ``base.py``; the two
policies are ``windowed.py`` (default: windows cut at pauses, text final W/2 to W after it was
spoken, about 1.15-1.4x compute) and ``local_agreement.py`` (whisper_streaming's
LocalAgreement-2: stable text one to two seconds behind the speaker, several times the compute).
"""

from __future__ import annotations

from typing import Literal

from transcription.policy.base import StreamingPolicy, usable_ms
from transcription.policy.local_agreement import LocalAgreementPolicy
from transcription.policy.windowed import SHORT_MAX_SPAN_MS, WindowedPolicy

PolicyName = Literal["windowed", "local_agreement"]
POLICY_NAMES: tuple[PolicyName, ...] = ("windowed", "local_agreement")


def make_policy(
    name: PolicyName,
    window_ms: int,
    overlap_ms: int,
    buffer_ms: int | None = None,
    *,
    interim_spans: bool = True,
) -> StreamingPolicy:
    """The session's policy for the server's ``streaming_policy`` setting (ValueError if the
    name is unknown: settings are read as strings). ``buffer_ms`` bounds every span to what
    the session's buffer holds below its backpressure mark; ``interim_spans=False``: the
    session runs interim passes itself, short windows send none of their own."""
    if name == "windowed":
        max_span_ms = None
        if buffer_ms is not None:
            max_span_ms = min(max(SHORT_MAX_SPAN_MS, 3 * window_ms), usable_ms(buffer_ms))
        return WindowedPolicy(
            window_ms, overlap_ms, max_span_ms=max_span_ms, interim_spans=interim_spans
        )
    if name == "local_agreement":
        return LocalAgreementPolicy(min(1000, window_ms // 2), max_buffer_ms=window_ms)
    raise ValueError(f"streaming policy must be one of {', '.join(POLICY_NAMES)}, not {name!r}")
