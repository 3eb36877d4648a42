"""The channel layer through a Redis outage: receives that wait for Redis to come back instead of
raising, and sends that are retried for a while.

channels_redis raises whatever redis-py raises when Redis is away (connection refused, a
timeout, ``LOADING`` while it reads its append-only file, ``READONLY`` from a replica that was
just demoted by Sentinel). Left alone, that exception ends a consumer's ``await_many_dispatch``
and daphne closes the socket with 1011, and it ends a worker's listener and the worker process
(docs/DEPLOYING.md "What a failure costs"). Here both keep trying, with a short backoff, and
count each failure in ``openasr_redis_errors_total``. The messages themselves are the sender's
business (``inference/client.py`` re-sends a window whose job or result was lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from channels.exceptions import ChannelFull

from transcription import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # then 1 s between tries until Redis answers
# A task still running this long after cancel() is cancelled again (``cancel_and_wait``).
RECANCEL_S = 0.05


def backoff_s(failures: int) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
    return BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]


async def receive_through_outages(
    receive: Callable[[], Awaitable[dict[str, Any]]], what: str
) -> dict[str, Any]:
    """``await receive()``, retried until Redis answers (cancellation still ends it)."""
    failures = 0
    while True:
        try:
            message = await receive()
        except Exception:
            failures += 1
            metrics.REDIS_ERRORS.labels(operation="layer_receive").inc()
            if failures == 1:
                log.warning("channel layer receive failed (%s); retrying", what, exc_info=True)
            await asyncio.sleep(backoff_s(failures))
            continue
        if failures:
            log.info("channel layer receive restored (%s) after %d failures", what, failures)
        return message


async def send_soon(layer: Any, channel: str, message: dict[str, Any], patience_s: float) -> bool:
    """Send ``message``, retrying for up to ``patience_s`` while Redis is away; False when it
    could not be sent (logged and counted). A full channel is not retried: its reader is
    gone or far behind."""
    give_up_at = time.monotonic() + patience_s
    failures = 0
    while True:
        try:
            await layer.send(channel, message)
            return True
        except ChannelFull:
            log.warning("channel %s is full; %s dropped", channel, message.get("type"))
            return False
        except Exception:
            failures += 1
            metrics.REDIS_ERRORS.labels(operation="layer_send").inc()
            if time.monotonic() + backoff_s(failures) > give_up_at:
                log.warning("could not send %s to %s", message.get("type"), channel, exc_info=True)
                return False
            if failures == 1:
                log.warning("channel layer send failed; retrying", exc_info=True)
            await asyncio.sleep(backoff_s(failures))


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and return once every one has ended (those already done are left as
    they are).

    One ``cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` drops a
    cancellation that arrives just as the operation it awaits completes (CPython gh-86296,
    fixed in 3.12), and redis-py sends every command through it when a socket timeout is set.
    A channels_redis receive that lost its cancel goes on waiting in BZPOPMIN until a message
    comes, which on a quiet channel is never, so whoever awaits it would wait as long. A task
    still running ``RECANCEL_S`` after a cancel is cancelled again.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)


async def cancellable(awaitable: Awaitable[T]) -> T:
    """``await awaitable`` in a task of its own, so that cancelling this call ends at once and
    that task soon after (``cancel_and_wait``): awaited directly, a task that shrugs off the
    cancel would keep its awaiter waiting with it."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task})
    finally:
        await cancel_and_wait([task])  # nothing to do once it has ended
    return task.result()


class OutageTolerantReceive:
    """Mixin for a channels consumer: its channel-layer receive rides through Redis outages.

    ``AsyncConsumer.__call__`` assigns ``self.channel_receive`` and hands it to
    ``await_many_dispatch``, which would end the consumer on the first exception; this data
    descriptor keeps what channels assigns and gives back a receive that retries instead, and
    that ends when ``await_many_dispatch`` cancels it as the consumer closes (``cancellable``;
    else the consumer would stay open until daphne's ``application_close_timeout`` killed it).
    """

    _layer_receive: Callable[[], Awaitable[dict[str, Any]]]

    async def answer_early(self, message: dict[str, Any]) -> bool:
        """Called with each channel-layer message as it arrives, before it waits for the
        consumer's dispatch (busy with a frame, maybe); True when it was fully handled here."""
        return False

    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        layer_receive = self._layer_receive

        async def receive() -> dict[str, Any]:
            while True:
                message = await cancellable(receive_through_outages(layer_receive, "consumer"))
                if not await self.answer_early(message):
                    return message

        return receive

    @channel_receive.setter
    def channel_receive(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._layer_receive = receive
