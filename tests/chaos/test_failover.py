"""Failures against real processes while a caption streams in real time (docs/DEPLOYING.md "What a
failure costs"): a SIGKILLed worker, a Redis killed and restarted, a Sentinel failover and a
SIGKILLed node. Each run must give every sentence exactly once, close normally, and leave every
process that was not killed alive and ready without a restart by hand."""

from __future__ import annotations

import pytest

from tests.support import speech
from tests.support.client import CLOSE_NORMAL, config
from tests.support.failover import Outcome, run_scenario
from tests.support.wer import normalize, repeated_bigrams

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SENTENCE_WORDS_HEARD = 0.7  # tiny.en on these voices gets ~97 % of the words (TEST_SPEECH.md)


def assert_every_sentence_once(outcome: Outcome, recording: speech.Composition) -> None:
    """Every sentence in the captions (mostly right), none repeated, no error, close 1000."""
    run = outcome.run
    context = f"{outcome.figures()}\n{run.text!r}\n{outcome.logs[-6000:]}"
    assert run.errors == [], context
    assert run.close_codes[-1] == CLOSE_NORMAL, context
    assert run.final_text is not None, context
    assert repeated_bigrams(run.text, recording.text) == 0, context
    heard = normalize(run.text)
    for sentence in speech.SENTENCES[: len(recording.spans_ms)]:
        words = normalize(sentence)
        assert sum(w in heard for w in words) >= SENTENCE_WORDS_HEARD * len(words), (
            sentence,
            context,
        )
    assert outcome.processes_alive, context


async def scenario(name: str, env: dict[str, str], recording: speech.Composition) -> Outcome:
    outcome = await run_scenario(name, env, speech.to_pcm16(recording.audio), config())
    print(name, outcome.figures())
    return outcome


async def test_a_sigkilled_worker_costs_seconds(
    chaos_env: dict[str, str], recording: speech.Composition
) -> None:
    """The worker running the session's window is SIGKILLed (another is idle, a replacement
    starts): the window is re-sent once the heartbeat stops, every sentence comes once."""
    outcome = await scenario("worker_kill", chaos_env, recording)
    assert_every_sentence_once(outcome, recording)


async def test_a_redis_restart_closes_no_session(
    chaos_env: dict[str, str], recording: speech.Composition
) -> None:
    """Redis SIGKILLed and restarted 4 s later (append-only file): the session rides through,
    the worker reconnects by itself, /ready reports the outage and is 200 again without a
    restart."""
    outcome = await scenario("redis_restart", chaos_env, recording)
    assert_every_sentence_once(outcome, recording)
    assert outcome.outage_reported and outcome.ready_again_s is not None


async def test_a_sentinel_failover_closes_no_session(
    chaos_env: dict[str, str], recording: speech.Composition
) -> None:
    """With a real Sentinel and a replica, the master is SIGKILLed and the replica promoted:
    servers and workers follow the Sentinel to it, the session rides through."""
    outcome = await scenario("sentinel_failover", chaos_env, recording)
    assert_every_sentence_once(outcome, recording)
    assert outcome.outage_reported and outcome.ready_again_s is not None


async def test_a_sigkilled_node_resumes_on_another(
    chaos_env: dict[str, str], recording: speech.Composition
) -> None:
    """The client's node is SIGKILLed: resumed on the other node by session id, the captions
    go on from the checkpoint, every sentence once."""
    outcome = await scenario("node_kill", chaos_env, recording)
    assert_every_sentence_once(outcome, recording)
    assert outcome.run.first_resumed_at is not None
