"""Live-session markers across nodes: a session id is live on at most one connection.

Normative: docs/PROTOCOL.md "Checkpoints and resume". The marker (``checkpoints.live_key``)
holds the owning consumer's channel name with a TTL, refreshed while the session lives. A resume
of a marked session probes the owner over the channel layer and takes the marker over when
nobody answers within ``LIVE_PROBE_TIMEOUT_S``, so a resume right after a node was SIGKILLed
does not wait for the TTL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from transcription import checkpoints, metrics
from transcription.events import ClientError, ErrorCode
from transcription.registry import NODE

log = logging.getLogger(__name__)

PROBE_TYPE = "asr.live_probe"
ACK_TYPE = "asr.live_ack"


def _live_elsewhere(session_id: str) -> ClientError:
    return ClientError(
        ErrorCode.SESSION_NOT_FOUND,
        f"Cannot resume: session {session_id} is live on another connection",
    )


async def claim(layer: Any, channel_name: str, session_id: str) -> None:
    """Mark ``session_id`` live on ``channel_name`` or raise ``SESSION_NOT_FOUND``."""
    if session_id in NODE.sessions:  # holds even while Redis is away
        raise _live_elsewhere(session_id)
    live = checkpoints.get_live_sessions()
    try:
        owner = await live.aclaim(session_id, channel_name)
        if owner is None:
            return
        if owner and not await _owner_answers(layer, owner, session_id):
            if await live.atakeover(session_id, owner, channel_name):
                log.info("took over session %s from %s (owner gone)", session_id, owner)
                return
    except Exception:
        # Redis away: without the marker the refusal holds on this node only (above); better
        # than refusing every session. Counted and logged.
        metrics.REDIS_ERRORS.labels(operation="live_claim").inc()
        log.warning("could not claim live marker of %s", session_id, exc_info=True)
        return
    raise _live_elsewhere(session_id)


async def _owner_answers(layer: Any, owner: str, session_id: str) -> bool:
    """Probe the owning consumer; a dead node's channel is silent. Waits on a channel of its
    own: the caller's dispatch is busy with the speech.config being handled."""
    reply = await layer.new_channel()
    await layer.send(owner, {"type": PROBE_TYPE, "session_id": session_id, "reply_channel": reply})
    try:
        await asyncio.wait_for(layer.receive(reply), checkpoints.LIVE_PROBE_TIMEOUT_S)
    except TimeoutError:
        return False
    return True


async def answer_probe(layer: Any, message: dict[str, Any], session_id: str) -> None:
    """Called with an ``asr.live_probe``: confirm when this connection owns the session."""
    reply = message.get("reply_channel")
    if session_id and message.get("session_id") == session_id and isinstance(reply, str):
        await layer.send(reply, {"type": ACK_TYPE, "session_id": session_id})


async def refresh_forever(channel_name: str, session_id: str) -> None:
    """Keep the marker fresh while the session lives (a tracked task of the consumer)."""
    live = checkpoints.get_live_sessions()
    while True:
        await asyncio.sleep(checkpoints.LIVE_REFRESH_S)
        try:
            if not await live.arefresh(session_id, channel_name):
                # Lost (expired during a Redis outage, or taken over): claim it back.
                await live.aclaim(session_id, channel_name)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="live_refresh").inc()
            log.warning("could not refresh live marker of %s", session_id, exc_info=True)


async def release(channel_name: str, session_id: str) -> None:
    """Drop the marker when the session ends (never raises)."""
    try:
        await checkpoints.get_live_sessions().arelease(session_id, channel_name)
    except Exception:
        metrics.REDIS_ERRORS.labels(operation="live_release").inc()
        log.warning("could not release live marker of %s", session_id, exc_info=True)
