"""Tests for transcription/audio/vad.py (docs/PROTOCOL.md "Windows and events": the speech gate)."""

from __future__ import annotations

import logging
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.speech import SENTENCES, Composition, compose
from transcription.audio import vad as vad_module
from transcription.audio.buffer import AudioBuffer
from transcription.audio.vad import (
    FRAME_SAMPLES,
    SILERO_SEQUENCE_FILE,
    EnergyVad,
    NoVad,
    SileroVad,
    SpeechDetector,
    VadUnavailableError,
    load_silero_model,
    make_vad,
    silero_model_dir,
)

RATE_HZ = 16000
SHARED_SPEECH = Path(__file__).resolve().parents[4] / "shared" / "speech"
# Pauses long enough to be pauses (PROTOCOL windows cut there), short enough to keep tests fast.
PAUSES_MS = (700, 1200, 400)
SPAN_TOLERANCE_MS = 100


def _dbfs(signal: np.ndarray, level_db: float) -> np.ndarray:
    """``signal`` scaled to an RMS of ``level_db`` dBFS, as float32."""
    rms = np.sqrt(np.mean(np.square(signal, dtype=np.float64)))
    return (signal * (10 ** (level_db / 20) / rms)).astype(np.float32)


def _white(seconds: float, level_db: float, seed: int = 0) -> np.ndarray:
    return _dbfs(np.random.default_rng(seed).standard_normal(int(seconds * RATE_HZ)), level_db)


def _pink(seconds: float, level_db: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * RATE_HZ)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    return _dbfs(np.fft.irfft(spectrum / np.sqrt(freqs), n), level_db)


def _stream(detector: SpeechDetector, audio: np.ndarray, chunk: int = 320) -> np.ndarray:
    """Feeds ``audio`` in 20 ms chunks, as a session would; returns all probabilities."""
    probs = [detector.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    return np.concatenate([*probs, np.zeros(0, np.float32)])


def _spans(detector: SpeechDetector, audio: np.ndarray) -> list[tuple[int, int]]:
    buffer = AudioBuffer(capacity_ms=len(audio) * 1000 // RATE_HZ + 1000, vad=detector)
    for i in range(0, len(audio), 320):
        buffer.push(audio[i : i + 320])
    buffer.finish()
    return buffer.speech_spans(buffer.start_ms, buffer.end_ms)


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768


@pytest.fixture(scope="module")
def layout() -> Composition:
    """Four flite sentences with pauses of 0.4-1.2 s, 0.5 s lead-in and 0.8 s tail."""
    return compose(SENTENCES[:4], ["flite-rms"], pauses_ms=PAUSES_MS, lead_ms=500, tail_ms=800)


def _assert_spans_match(
    found: list[tuple[int, int]], truth: tuple[tuple[int, int], ...], tolerance_ms: int
) -> None:
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for (s, e), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) <= tolerance_ms and abs(e - te) <= tolerance_ms, (found, truth)


# --- Silero ---


def test_silero_loads_the_bundled_model_without_torch() -> None:
    """The model comes from the silero-vad wheel's data folder, and torch is never imported."""
    import sys

    model = load_silero_model()
    assert model.path.parent == silero_model_dir()
    assert "torch" not in sys.modules


def test_silero_one_probability_per_completed_frame() -> None:
    """Probabilities come one per 512-sample frame; a partial frame waits for more samples."""
    vad = SileroVad()
    assert vad.process(np.zeros(FRAME_SAMPLES - 1, np.float32)).size == 0
    assert vad.process(np.zeros(1, np.float32)).size == 1
    out = vad.process(np.zeros(3 * FRAME_SAMPLES + 100, np.float32))
    assert out.size == 3 and out.dtype == np.float32
    assert vad.process(np.zeros(FRAME_SAMPLES - 100, np.float32)).size == 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(0, 16000), max_size=30))
def test_silero_any_chunking_gives_same_probabilities(layout: Composition, cuts: list[int]) -> None:
    """Any split of the input into chunks gives the same per-frame probabilities as one call."""
    audio = layout.audio[:16000]
    one_shot = SileroVad().process(audio)
    vad = SileroVad()
    parts = np.split(audio, sorted(cuts))
    chunked = np.concatenate([vad.process(p) for p in parts])
    np.testing.assert_allclose(chunked, one_shot, atol=1e-5)


def test_silero_reset_starts_over(layout: Composition) -> None:
    """After reset the detector scores like a fresh one."""
    vad = SileroVad()
    first = vad.process(layout.audio[:20000])
    vad.process(layout.audio[20000:30000])
    vad.reset()
    np.testing.assert_allclose(vad.process(layout.audio[:20000]), first, atol=1e-6)


def test_silero_stock_and_sequence_models_agree(layout: Composition) -> None:
    """The batched sequence export scores exactly like the stock per-frame model."""
    data = silero_model_dir()
    if data is None or not (data / SILERO_SEQUENCE_FILE).is_file():
        pytest.skip("this silero-vad has no sequence model")
    stock = _stream(SileroVad(model=load_silero_model(prefer_sequence=False)), layout.audio)
    sequence = _stream(SileroVad(model=load_silero_model()), layout.audio)
    np.testing.assert_allclose(sequence, stock, atol=1e-5)


def test_silero_spans_match_speech_layout(layout: Composition) -> None:
    """Speech spans found by Silero match the sentence layout within ~100 ms."""
    _assert_spans_match(_spans(SileroVad(), layout.audio), layout.spans_ms, SPAN_TOLERANCE_MS)


def test_silero_spans_survive_low_background_noise(layout: Composition) -> None:
    """With white noise at -50 dBFS under everything, the spans still match the layout."""
    noisy = layout.audio + _white(len(layout.audio) / RATE_HZ, -50.0, seed=3)
    _assert_spans_match(_spans(SileroVad(), noisy), layout.spans_ms, SPAN_TOLERANCE_MS)


def test_silero_pause_near_finds_the_pause(layout: Composition) -> None:
    """pause_near returns a point inside the real pause between two sentences."""
    buffer = AudioBuffer(vad=SileroVad())
    buffer.push(layout.audio)
    pause_start = layout.spans_ms[1][1]
    pause_end = layout.spans_ms[2][0]  # a 1.2 s pause
    cut = buffer.pause_near(pause_start + 400, search_ms=1500)
    assert cut is not None and pause_start < cut < pause_end
    # Inside a sentence, far from any pause of 150 ms, there is none to find.
    s, e = layout.spans_ms[1]
    assert buffer.pause_near(s + 1200, search_ms=300, min_pause_ms=250) is None


@pytest.mark.parametrize("level_db", [-60.0, -30.0, -10.0])
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_silero_noise_is_not_speech(kind: str, level_db: float) -> None:
    """White and pink noise, quiet or loud, never score as speech (gain normalisation or not)."""
    noise = (_white if kind == "white" else _pink)(10.0, level_db)
    vad = SileroVad()
    probs = _stream(vad, noise)
    assert probs.max() < vad.threshold - 0.15
    buffer = AudioBuffer(vad=SileroVad())
    buffer.push(noise)
    assert not buffer.has_speech(buffer.start_ms, buffer.end_ms)
    assert buffer.speech_spans(buffer.start_ms, buffer.end_ms) == []


def test_silero_silence_is_not_speech() -> None:
    """Digital silence never scores as speech."""
    vad = SileroVad()
    assert _stream(vad, np.zeros(5 * RATE_HZ, np.float32)).max() < vad.threshold - 0.15


def _peak_dbfs(audio: np.ndarray, level_db: float) -> np.ndarray:
    """``audio`` scaled so that its loudest sample sits at ``level_db`` dBFS."""
    return (audio * (10 ** (level_db / 20) / float(np.max(np.abs(audio))))).astype(np.float32)


def _speech_frames(comp: Composition, n_frames: int) -> np.ndarray:
    """Per Silero frame: True inside a sentence of ``comp``."""
    mask = np.zeros(n_frames, dtype=bool)
    frames_per_ms = RATE_HZ / 1000 / FRAME_SAMPLES
    for start_ms, end_ms in comp.spans_ms:
        mask[int(start_ms * frames_per_ms) : int(end_ms * frames_per_ms)] = True
    return mask


@pytest.fixture(scope="module", params=["hibari", "flite-rms", "festival-slt"])
def quiet_speech(request: pytest.FixtureRequest) -> Composition:
    """Four sentences of one voice whose loudest sample is at -45 dBFS (as quiet as the
    quietest real recordings in shared/speech), with pauses of 0.4-1.2 s."""
    comp = compose(SENTENCES[12:16], [request.param], pauses_ms=PAUSES_MS, lead_ms=500)
    return Composition(_peak_dbfs(comp.audio, -45.0), comp.text, comp.spans_ms)


@pytest.mark.parametrize("gain_db", [0.0, -20.0])
def test_silero_finds_very_quiet_generated_speech(
    quiet_speech: Composition, gain_db: float
) -> None:
    """Generated speech peaking at -45 dBFS is speech, and still is 20 dB quieter still; the
    pauses between its sentences are not (the CI variant of the real-speech test below)."""
    probs = _stream(SileroVad(), quiet_speech.audio * 10 ** (gain_db / 20))
    speech = _speech_frames(quiet_speech, len(probs))
    hit = float(np.mean(probs[speech] >= 0.5))
    false_alarm = float(np.mean(probs[~speech] >= 0.5))
    assert hit >= 0.8, f"{hit:.2f} of the speech frames scored speech (measured 0.94-0.96)"
    assert false_alarm <= 0.1, f"{false_alarm:.2f} of the pause frames scored speech"


def test_silero_gain_normalisation_rescues_generated_speech_at_minus_65_dbfs(
    quiet_speech: Composition,
) -> None:
    """At -65 dBFS peak the plain model loses most of the speech; with the gain normalisation
    it finds it (the CI variant of the real-speech test below)."""
    audio = quiet_speech.audio * 0.1
    speech = _speech_frames(quiet_speech, len(audio) // FRAME_SAMPLES)
    plain = float(np.mean(_stream(SileroVad(normalize_gain=False), audio)[speech] >= 0.5))
    normalised = float(np.mean(_stream(SileroVad(), audio)[speech] >= 0.5))
    assert normalised > plain + 0.3, (
        f"speech frames found: {normalised:.2f} normalised, {plain:.2f} plain "
        "(measured 0.94-0.96 against 0.00-0.24)"
    )


@pytest.mark.parametrize("name", ["dev_02", "dev_03", "dev_04"])
def test_silero_finds_very_quiet_real_speech(name: str) -> None:
    """Real speech peaking around -45 dBFS is speech, and still is 20 dB quieter still."""
    path = SHARED_SPEECH / f"{name}.wav"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    audio = _read_wav(path)
    for gain in (1.0, 0.1):
        probs = _stream(SileroVad(), audio * gain)
        assert np.mean(probs >= 0.5) > 0.5, f"{name} at gain {gain}: {np.mean(probs >= 0.5):.2f}"


def test_silero_gain_normalisation_rescues_speech_at_minus_65_dbfs() -> None:
    """Without the gain normalisation the quietest speech would be lost; with it, it is found."""
    path = SHARED_SPEECH / "dev_03.wav"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    audio = _read_wav(path) * 0.1  # peak about -66 dBFS
    plain = _stream(SileroVad(normalize_gain=False), audio)
    normalised = _stream(SileroVad(), audio)
    assert np.mean(normalised >= 0.5) > np.mean(plain >= 0.5) + 0.3


def test_silero_cpu_cost_is_small(layout: Composition) -> None:
    """Streaming Silero in 20 ms chunks costs well under 25 ms of CPU per second of audio."""
    vad = SileroVad()
    _stream(vad, layout.audio[:RATE_HZ])  # warm up the session
    start = time.process_time()
    _stream(vad, layout.audio)
    cost_ms_per_s = (time.process_time() - start) * 1000 / (len(layout.audio) / RATE_HZ)
    assert cost_ms_per_s < 25.0


# --- energy fallback ---


def test_energy_silence_is_not_speech() -> None:
    """Digital silence is never speech for the energy gate."""
    assert EnergyVad().process(np.zeros(3 * RATE_HZ, np.float32)).max() < 0.5


def test_energy_steady_noise_settles_to_non_speech() -> None:
    """Steady white noise is below the adaptive floor's threshold from its first frames."""
    probs = _stream(EnergyVad(), _white(6.0, -30.0))
    assert probs.max() < 0.5


def test_energy_spans_roughly_match_speech_layout(layout: Composition) -> None:
    """The energy gate finds the same sentences, with coarser edges (within 250 ms)."""
    _assert_spans_match(_spans(EnergyVad(), layout.audio), layout.spans_ms, 250)


def test_energy_one_probability_per_completed_frame() -> None:
    """The energy gate also keeps a partial frame for the next call."""
    vad = EnergyVad()
    assert vad.process(np.zeros(700, np.float32)).size == 1
    assert vad.process(np.zeros(324, np.float32)).size == 1


# --- no VAD ---


def test_no_vad_calls_every_frame_speech() -> None:
    """NoVad returns 1.0 for every completed frame."""
    vad = NoVad()
    np.testing.assert_array_equal(vad.process(np.zeros(1100, np.float32)), [1.0, 1.0])
    np.testing.assert_array_equal(vad.process(np.zeros(1000, np.float32)), [1.0, 1.0])


# --- factory ---


@pytest.mark.parametrize(
    ("kind", "cls"), [("silero", SileroVad), ("energy", EnergyVad), ("off", NoVad)]
)
def test_make_vad_builds_each_kind(kind: str, cls: type) -> None:
    """make_vad returns the detector for the setting, with the given probability threshold."""
    detector = make_vad(kind, 0.6)  # type: ignore[arg-type]
    assert isinstance(detector, cls)
    assert detector.threshold == 0.6


def test_make_vad_default_threshold() -> None:
    """Without a threshold the detectors use 0.5."""
    assert make_vad("silero").threshold == 0.5


def test_make_vad_falls_back_to_energy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When Silero cannot load, "silero" gives the energy gate and logs a warning."""

    def unavailable(prefer_sequence: bool = True) -> None:
        raise VadUnavailableError("onnxruntime is not installed")

    monkeypatch.setattr(vad_module, "load_silero_model", unavailable)
    with caplog.at_level(logging.WARNING, logger=vad_module.__name__):
        detector = make_vad("silero", 0.55)
    assert isinstance(detector, EnergyVad) and detector.threshold == 0.55
    assert "energy VAD" in caplog.text


@pytest.mark.parametrize(("kind", "threshold"), [("webrtc", 0.5), ("silero", 0.0), ("off", 1.0)])
def test_make_vad_rejects_bad_settings(kind: str, threshold: float) -> None:
    """An unknown kind or a threshold outside (0, 1) is a ValueError."""
    with pytest.raises(ValueError, match="VAD"):
        make_vad(kind, threshold)  # type: ignore[arg-type]
