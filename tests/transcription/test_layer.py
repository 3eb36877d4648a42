"""Tests for transcription/layer.py: the channel layer rides through a Redis outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from redis.exceptions import ConnectionError as RedisConnectionError

from transcription import layer
from transcription.layer import (
    OutageTolerantReceive,
    cancel_and_wait,
    receive_through_outages,
    send_soon,
)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer, "BACKOFF_S", (0.001,))


class Flaky:
    """A layer that fails ``failures`` times, then works."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RedisConnectionError("Connection refused")
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise self.error
        return {"type": "asr.result"}

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.sent.append(message)


async def test_a_receive_waits_for_redis_instead_of_raising() -> None:
    """Connection errors are retried until a message comes."""
    assert await receive_through_outages(Flaky(5).receive, "test") == {"type": "asr.result"}


async def test_a_send_is_retried_within_its_patience() -> None:
    """A send that fails a few times goes through; one that fails past its patience is given
    up (False), and a full channel is not retried."""
    flaky = Flaky(3)
    assert await send_soon(flaky, "c", {"type": "x"}, patience_s=5) is True
    assert flaky.sent == [{"type": "x"}]
    assert await send_soon(Flaky(10**6), "c", {"type": "x"}, patience_s=0.05) is False
    full = Flaky(1, ChannelFull())
    assert await send_soon(full, "c", {"type": "x"}, patience_s=5) is False
    assert full.failures == 0 and full.sent == []


async def test_a_consumer_s_channel_receive_is_outage_tolerant() -> None:
    """What channels assigns to ``channel_receive`` is wrapped in the retrying receive."""

    class Consumer(OutageTolerantReceive):
        pass

    consumer = Consumer()
    consumer.channel_receive = Flaky(3).receive
    assert await consumer.channel_receive() == {"type": "asr.result"}


async def test_a_task_that_survives_its_cancel_is_cancelled_until_it_ends() -> None:
    """One cancel() is not always enough on Python 3.11 (a cancel dropped by ``wait_for``):
    the task is cancelled again, and ``cancel_and_wait`` returns once it has ended."""
    never = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while True:
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancels += 1
                if cancels == 3:
                    raise

    task = asyncio.ensure_future(stubborn())
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished.set_result(None)
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task, finished]), 5)
    assert task.cancelled() and cancels == 3 and finished.result() is None


async def test_a_cancelled_consumer_receive_ends_even_if_the_layer_s_shrugs_it_off() -> None:
    """The consumer is closing (its receive is cancelled): the receive ends at once, and the
    layer receive under it, which shrugged off the cancel, is cancelled again until it ends."""

    class Consumer(OutageTolerantReceive):
        pass

    started, ended = asyncio.Event(), asyncio.Event()
    cancels = 0

    async def stubborn() -> dict[str, Any]:
        nonlocal cancels
        started.set()
        try:
            while True:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancels += 1
                    if cancels == 2:
                        raise
        finally:
            ended.set()

    consumer = Consumer()
    consumer.channel_receive = stubborn
    receive = asyncio.ensure_future(consumer.channel_receive())
    await started.wait()
    receive.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(receive, 5)
    await asyncio.wait_for(ended.wait(), 5)
    assert cancels == 2
