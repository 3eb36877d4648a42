"""Admission from measured speed (``transcription/admission.py``), with hand-made numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from transcription import admission
from transcription.admission import AdmissionState, session_weight
from transcription.events import ClientError, ErrorCode
from transcription.inference.messages import JobResult
from transcription.modelinfo import served_models
from transcription.protocol import SpeechConfig


def _config(window_ms: int = 5000, overlap_ms: int = 500) -> SpeechConfig:
    return SpeechConfig(
        language="en",
        sample_rate=16000,
        encoding="pcm_s16le",
        window_duration_ms=window_ms,
        overlap_duration_ms=overlap_ms,
        model_id="tiny.en",
    )


def test_weight_counts_the_overlap_transcribed_twice() -> None:
    """A 5 s window every 4.5 s sends 5/4.5 audio seconds to inference per second."""
    assert session_weight(5000, 500) == pytest.approx(5 / 4.5)
    assert session_weight(2000, 0) == 1.0
    assert session_weight(2000, 1000) == 2.0


def test_overlap_beyond_half_the_window_buys_no_weight() -> None:
    """A legal 1000/999 ms config weighs two sessions at most, not a thousand."""
    assert session_weight(1000, 999) == 2.0


def test_one_session_demands_at_most_one_inference_slot() -> None:
    """However slow the model, a session with one window in flight uses one slot at most."""
    state = AdmissionState()
    state.observe(3.0, 1.0)  # three times slower than real time
    state.reserve("a", 2.0)
    assert state.demand() == pytest.approx(1.0)


def test_unknown_speed_admits() -> None:
    """Before any window is measured only the fixed limits apply."""
    state = AdmissionState()
    for i in range(50):
        assert state.decide(capacity=1, weight=1.0).admitted
        state.reserve(f"c{i}", 1.0)


def test_ewma_starts_at_first_sample_and_moves_by_alpha() -> None:
    """The first result sets the RTF; later ones move it by ``alpha`` of the difference."""
    state = AdmissionState(alpha=0.5)
    state.observe(inference_s=2.0, audio_s=5.0)
    assert state.rtf == pytest.approx(0.4)
    state.observe(inference_s=1.0, audio_s=5.0)
    assert state.rtf == pytest.approx(0.3)


@pytest.mark.parametrize("inference_s,audio_s", [(1.0, 0.0), (-1.0, 5.0), (float("nan"), 5.0)])
def test_bogus_figures_are_ignored(inference_s: float, audio_s: float) -> None:
    """An empty window or a broken figure does not poison the measured speed."""
    state = AdmissionState()
    state.observe(inference_s, audio_s)
    assert state.rtf is None


def test_rtf_04_on_one_slot_fits_two_realtime_sessions() -> None:
    """RTF 0.4, one slot, headroom 0.9, 5 s/0.5 s windows: two sessions fit, the third not."""
    state = AdmissionState(headroom=0.9)
    state.observe(2.0, 5.0)
    weight = session_weight(5000, 500)
    first = state.decide(1, weight)
    assert first.admitted
    state.reserve("a", weight)
    second = state.decide(1, weight)
    assert second.admitted and second.demand == pytest.approx(0.4 * 2 * 5 / 4.5)
    state.reserve("b", weight)
    third = state.decide(1, weight)
    assert not third.admitted
    assert third.budget == pytest.approx(0.9)


def test_capacity_scales_with_slots() -> None:
    """Two slots hold twice the sessions of one at the same measured speed."""
    state = AdmissionState(headroom=1.0)
    state.observe(1.0, 4.0)  # RTF 0.25: four weight-1 sessions per slot
    admitted = 0
    while state.decide(2, 1.0).admitted:
        state.reserve(str(admitted), 1.0)
        admitted += 1
    assert admitted == 8


def test_release_makes_room_again() -> None:
    """A closed connection's share is freed for the next session."""
    state = AdmissionState(headroom=1.0)
    state.observe(1.0, 2.0)
    state.reserve("a", 1.0)
    state.reserve("b", 1.0)
    assert not state.decide(1, 1.0).admitted
    state.release("b")
    assert state.decide(1, 1.0).admitted
    state.release("never-reserved")  # idempotent


def test_own_reservation_is_not_counted_twice() -> None:
    """A repeated check for the same connection replaces its reservation, not adds to it."""
    state = AdmissionState(headroom=1.0)
    state.observe(1.0, 2.0)
    state.reserve("a", 2.0)
    assert state.decide(1, 2.0, key="a").admitted
    assert not state.decide(1, 2.0, key="b").admitted


def test_headroom_zero_turns_admission_off() -> None:
    """``WSS_ADMISSION_HEADROOM=0`` admits regardless of speed (benchmarks ramp past capacity)."""
    state = AdmissionState(headroom=0.0)
    state.observe(10.0, 1.0)
    assert state.decide(1, 1.0).admitted


def test_no_workers_refuses_a_second_session_once_speed_is_known() -> None:
    """With Redis and no live heartbeat the capacity is zero: nothing fits beside a session."""
    state = AdmissionState()
    state.observe(1.0, 10.0)
    state.reserve("a", 1.0)
    assert not state.decide(0, 1.0).admitted


def test_a_session_alone_is_admitted_even_when_too_slow() -> None:
    """A model slower than real time still serves one client: refusing it protects nobody."""
    state = AdmissionState()
    state.observe(inference_s=10.0, audio_s=5.0)  # RTF 2
    assert state.decide(1, 1.0).admitted
    state.reserve("a", 1.0)
    assert not state.decide(1, 1.0).admitted
    assert state.decide(1, 1.0, key="a").admitted  # its own second config


@given(
    rtf=st.floats(0.01, 3.0),
    capacity=st.integers(1, 8),
    weights=st.lists(st.floats(1.0, 4.0), max_size=40),
)
def test_admitted_demand_never_exceeds_the_budget(
    rtf: float, capacity: int, weights: list[float]
) -> None:
    """Whatever arrives, two or more sessions admitted once speed is known fit the budget."""
    state = AdmissionState(headroom=0.9)
    state.observe(rtf, 1.0)
    for i, weight in enumerate(weights):
        if state.decide(capacity, weight).admitted:
            state.reserve(str(i), weight)
    # Only a lone first session may exceed the budget on its own.
    assert len(state.weights) <= 1 or state.demand() <= capacity * 0.9 + 1e-9


# --- the thin async edge ---


def _result(*, inference_s: float, audio_s: float) -> JobResult:
    return JobResult("s", 0, 0, ok=True, inference_s=inference_s, audio_s=audio_s)


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> AdmissionState:
    """The default model's pool, empty, on a node with one in-process slot."""
    cfg = replace(settings.OPENASR, redis_url="", worker_concurrency=1, admission_headroom=0.9)
    monkeypatch.setattr(admission.settings, "OPENASR", cfg, raising=False)
    state = AdmissionState()
    monkeypatch.setattr(admission, "POOLS", {served_models(cfg)[0].model_id: state})
    return state


async def test_admit_raises_session_limit_when_full(fresh_state: AdmissionState) -> None:
    """The edge turns a refusal into SESSION_LIMIT naming the demand and the speed."""
    admission.observe(_result(inference_s=2.0, audio_s=5.0))
    await admission.admit("a", _config())
    await admission.admit("b", _config())
    with pytest.raises(ClientError) as refused:
        await admission.admit("c", _config())
    assert refused.value.code == ErrorCode.SESSION_LIMIT
    assert "real-time factor 0.400" in refused.value.message
    assert not await admission.room_for_one(5000, 500)
    admission.release("a")
    assert await admission.room_for_one(5000, 500)


async def test_capacity_with_redis_sums_worker_heartbeats(
    fresh_state: AdmissionState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis a pool's capacity is the sum of the ``concurrency`` of the live workers
    serving its model (a heartbeat without a model serves the default one)."""

    async def workers(url: str) -> tuple[dict[str, Any], ...]:
        return (
            {"worker_id": "w1", "concurrency": 2, "model": "whisper-base"},
            {"worker_id": "w2", "concurrency": 1, "model": "whisper-tiny.en"},
            {"worker_id": "w3", "concurrency": 4},
        )

    monkeypatch.setattr(admission, "live_workers", workers)
    cfg = replace(admission.settings.OPENASR, redis_url="redis://x", models=("base",))
    monkeypatch.setattr(admission.settings, "OPENASR", cfg, raising=False)
    default = served_models(cfg)[0].model_id
    assert await admission.worker_capacity("whisper-base") == 2.0
    assert await admission.worker_capacity() == await admission.worker_capacity(default)
    assert await admission.worker_capacity("whisper-nope") == 0.0


async def test_each_pool_admits_against_its_own_speed(fresh_state: AdmissionState) -> None:
    """A slow model's pool being full does not refuse a session of another model."""
    admission.observe(_result(inference_s=2.0, audio_s=5.0), model_id="whisper-slow")
    await admission.admit("a", _config(), "whisper-slow")
    await admission.admit("b", _config(), "whisper-slow")
    with pytest.raises(ClientError):
        await admission.admit("c", _config(), "whisper-slow")
    await admission.admit("c", _config(), "whisper-fast")
    admission.release("a")
    await admission.admit("d", _config(), "whisper-slow")


def test_result_without_figures_is_ignored(fresh_state: AdmissionState) -> None:
    """An ``asr.result`` without figures (no audio) changes nothing."""
    admission.observe(_result(inference_s=0.0, audio_s=0.0))
    assert fresh_state.rtf is None


def test_windows_of_an_over_overlapped_session_do_not_set_the_speed(
    fresh_state: AdmissionState,
) -> None:
    """A 1000/999 ms session's windows (full context: a 1 s window costs like a 20 s one) are
    not measured, so one such client cannot make the node refuse everyone else."""
    admission.observe(_result(inference_s=1.2, audio_s=1.0), 1000, 999)
    assert fresh_state.rtf is None
    admission.observe(_result(inference_s=0.6, audio_s=5.0), 5000, 500)
    assert fresh_state.rtf == pytest.approx(0.12)
