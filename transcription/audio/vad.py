"""Streaming voice activity detection on 16 kHz audio, one probability per 32 ms frame.

Normative: ``docs/PROTOCOL.md`` "Windows and events": a window in which the speech gate
finds no speech is not transcribed (silence and noise must produce no invented text). The
detectors here only score frames; ``buffer.AudioBuffer`` turns scores into speech flags, spans
and pauses.

``SileroVad`` runs the ONNX files shipped in the ``silero-vad`` wheel through onnxruntime. The
package's Python modules import torch, so the files are located with ``find_spec`` (which does
not execute the package) and never through ``importlib.resources.files("silero_vad")``.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import logging
import math
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

VadKind = Literal["silero", "energy", "off"]

FRAME_SAMPLES = 512  # 32 ms at 16 kHz: the only frame size Silero accepts at this rate
FRAME_MS = FRAME_SAMPLES * 1000 // SAMPLE_RATE_HZ
DEFAULT_THRESHOLD = 0.5

# Silero settings
SILERO_CONTEXT_SAMPLES = 64  # the previous frame's tail, prepended as silero's OnnxWrapper does
SILERO_STATE_SHAPE = (2, 1, 128)  # LSTM (h, c); the sequence model takes them as two inputs
SILERO_STOCK_FILE = "silero_vad.onnx"
# Same weights exported to score many frames in one call with bit-identical results
# (silero-vad PR #784); present in silero-vad >= 6.2. Preferred because a streaming session
# scores one frame per call most of the time, and the call overhead dominates.
SILERO_SEQUENCE_FILE = "silero_vad_16k_sequence.onnx"
SILERO_MAX_FRAMES_PER_CALL = 512  # bounds the transient memory of one call (~16 s of audio)

# Gain normalisation: Silero's score depends on level, and real recordings can peak near
# -45 dBFS (shared/speech dev_02..04; measured: at -60 dBFS peak Silero finds almost no speech).
# Frames are scaled towards a target by a level tracked with instant attack and slow release,
# never attenuated and never boosted beyond the cap. Noise stays noise at any gain (measured:
# white and pink noise from -80 to -10 dBFS score below 0.1), so boosting quiet noise is safe.
GAIN_TARGET_DBFS = -26.0
GAIN_MAX_DB = 30.0
GAIN_RELEASE_DB_PER_S = 3.0
_LEVEL_FLOOR = 1e-10  # -200 dBFS: keeps log10 finite on digital silence
_POWER_FLOOR = _LEVEL_FLOOR**2

# Energy gate settings
ENERGY_THRESHOLD_DB = 12.0  # a frame this far above the noise floor scores 0.5
ENERGY_SLOPE_DB = 3.0  # width of the logistic around the threshold
ENERGY_FLOOR_WINDOW_MS = 3000  # noise floor = quietest frame of this trailing window
ENERGY_ABS_FLOOR_DBFS = -90.0  # levels are clamped here, so digital silence is a floor, not -inf


class VadUnavailableError(RuntimeError):
    """The Silero model cannot be loaded (onnxruntime or the model file is missing)."""


class SpeechDetector(Protocol):
    """Scores 16 kHz audio per 512-sample frame; keeps a partial frame for the next call."""

    threshold: float

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Called as samples arrive; returns one float32 probability per completed frame."""
        ...

    def reset(self) -> None:
        """Forgets all state, as for a new stream."""
        ...


class _Framer:
    """Cuts a stream of samples into whole frames, holding the remainder between calls."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)

    def split(self, samples: np.ndarray) -> np.ndarray:
        """Returns the completed frames as an (n, FRAME_SAMPLES) float32 array."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        data = np.concatenate((self._pending, samples)) if self._pending.size else samples
        n = data.size // FRAME_SAMPLES
        # Copy the remainder: it must not keep the caller's (possibly large) array alive.
        self._pending = data[n * FRAME_SAMPLES :].copy()
        return data[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)


def _frame_dbfs(frames: np.ndarray) -> np.ndarray:
    """RMS level of each frame in dBFS (float64, finite)."""
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    dbfs: np.ndarray = 20.0 * np.log10(np.maximum(rms, _LEVEL_FLOOR))
    return dbfs


# --- Silero ---


def silero_model_dir() -> Path | None:
    """Directory of the ONNX files in the installed silero-vad wheel, or None if absent."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class _SileroModel:
    """One shared onnxruntime session; scores frames given an explicit per-stream state."""

    def __init__(self, path: Path, sequence: bool) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # The VAD runs on the event loop next to every other session: one core, no thread pool.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The sequence export carries unused initialisers; onnxruntime warns about them on load.
        options.log_severity_level = 3
        self.path = path
        self.sequence = sequence
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)

    def score(self, inputs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, 64 + 512) context-prefixed frames in order; returns (probs, new state)."""
        if self.sequence:
            probs: list[np.ndarray] = []
            for first in range(0, len(inputs), SILERO_MAX_FRAMES_PER_CALL):
                block = inputs[first : first + SILERO_MAX_FRAMES_PER_CALL]
                p, h, c = self._session.run(
                    ["speech_probs", "hn", "cn"], {"input": block, "h": state[:1], "c": state[1:]}
                )
                probs.append(p)
                state = np.concatenate((h, c))
            return np.concatenate(probs).astype(np.float32, copy=False), state
        # The stock export scores one frame per call: its batch axis means independent streams,
        # not consecutive frames.
        out = np.empty(len(inputs), dtype=np.float32)
        for i, row in enumerate(inputs):
            p, state = self._session.run(
                None, {"input": row[np.newaxis], "state": state, "sr": self._sr}
            )
            out[i] = p[0, 0]
        return out, state


@functools.cache
def load_silero_model(prefer_sequence: bool = True) -> _SileroModel:
    """Loads the Silero ONNX model once per process (sessions are thread-safe to run).

    Raises VadUnavailableError when onnxruntime or the model file is missing.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise VadUnavailableError("onnxruntime is not installed") from exc
    data = silero_model_dir()
    if data is None:
        raise VadUnavailableError("the silero-vad package is not installed")
    candidates = [(data / SILERO_STOCK_FILE, False)]
    if prefer_sequence:
        candidates.insert(0, (data / SILERO_SEQUENCE_FILE, True))
    for path, sequence in candidates:
        if path.is_file():
            try:
                return _SileroModel(path, sequence)
            except Exception as exc:  # onnxruntime raises its own unrelated exception types
                raise VadUnavailableError(f"cannot load {path}: {exc}") from exc
    raise VadUnavailableError(f"no Silero ONNX model in {data}")


class SileroVad:
    """Silero VAD v5+ streaming over one session's audio, with level normalisation."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        normalize_gain: bool = True,
        model: _SileroModel | None = None,
    ) -> None:
        self.threshold = threshold
        self.normalize_gain = normalize_gain
        self._model = model if model is not None else load_silero_model()
        self._framer = _Framer()
        self.reset()

    def reset(self) -> None:
        """Forgets the model state, the context, the tracked level and any partial frame."""
        self._framer.reset()
        self._state = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT_SAMPLES, dtype=np.float32)
        # Start as if the last loud frame were long gone: the first frames get the full gain.
        self._level_db = GAIN_TARGET_DBFS - GAIN_MAX_DB

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Called as 16 kHz samples arrive; scores every completed frame in one model call."""
        frames = self._framer.split(samples)
        if len(frames) == 0:
            return np.zeros(0, dtype=np.float32)
        if self.normalize_gain:
            frames = self._apply_gain(frames)
        contexts = np.empty((len(frames), SILERO_CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -SILERO_CONTEXT_SAMPLES:]
        self._context = frames[-1, -SILERO_CONTEXT_SAMPLES:].copy()
        inputs = np.ascontiguousarray(np.concatenate((contexts, frames), axis=1))
        probs, self._state = self._model.score(inputs, self._state)
        return probs

    def _apply_gain(self, frames: np.ndarray) -> np.ndarray:
        # Envelope with instant attack and linear (in dB) release; a scalar loop, because most
        # calls carry one frame and a dozen tiny numpy calls per frame would cost more.
        release_db = GAIN_RELEASE_DB_PER_S * FRAME_MS / 1000.0
        mean_square = np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES
        gains = np.empty(len(frames), dtype=np.float32)
        level_db = self._level_db
        for i, power in enumerate(mean_square.tolist()):
            level_db = max(10.0 * math.log10(max(power, _POWER_FLOOR)), level_db - release_db)
            gain_db = min(max(GAIN_TARGET_DBFS - level_db, 0.0), GAIN_MAX_DB)
            gains[i] = 10.0 ** (gain_db / 20.0)
        self._level_db = level_db
        out = frames * gains[:, np.newaxis]
        # In-place ufuncs: np.clip's Python wrapper costs more than the clipping itself here.
        np.minimum(out, 1.0, out=out)
        np.maximum(out, -1.0, out=out)
        return out


# --- energy fallback ---


class EnergyVad:
    """RMS gate against an adaptive noise floor: the fallback when Silero is unavailable.

    The floor is the quietest frame of the last few seconds (minimum statistics), so it follows
    steady background noise but not speech, which always dips between words. Noise that starts
    after a stretch of digital silence scores as speech until the window has moved past it.
    """

    def __init__(
        self, threshold_db: float = ENERGY_THRESHOLD_DB, threshold: float = DEFAULT_THRESHOLD
    ) -> None:
        self.threshold_db = threshold_db
        self.threshold = threshold
        self._framer = _Framer()
        self._levels: collections.deque[float] = collections.deque(
            maxlen=ENERGY_FLOOR_WINDOW_MS // FRAME_MS
        )

    def reset(self) -> None:
        """Forgets the noise floor and any partial frame."""
        self._framer.reset()
        self._levels.clear()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Called as 16 kHz samples arrive; returns a logistic score of level above the floor."""
        frames = self._framer.split(samples)
        out = np.empty(len(frames), dtype=np.float32)
        for i, level in enumerate(np.maximum(_frame_dbfs(frames), ENERGY_ABS_FLOOR_DBFS)):
            self._levels.append(float(level))
            above = level - min(self._levels) - self.threshold_db
            out[i] = 1.0 / (1.0 + math.exp(-above / ENERGY_SLOPE_DB))
        return out


class NoVad:
    """No gate: every frame is speech."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._framer = _Framer()

    def reset(self) -> None:
        """Forgets any partial frame."""
        self._framer.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Returns 1.0 for every completed frame."""
        return np.ones(len(self._framer.split(samples)), dtype=np.float32)


def make_vad(kind: VadKind, threshold: float | None = None) -> SpeechDetector:
    """Called once per session from the server's VAD setting; ``threshold`` is a probability.

    "silero" falls back to the energy gate, with a warning, when the model cannot be loaded.
    """
    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0.0 < thr < 1.0:
        raise ValueError(f"VAD threshold must be between 0 and 1 (exclusive), got {thr}")
    if kind == "silero":
        try:
            return SileroVad(thr)
        except VadUnavailableError:
            logger.warning("Silero VAD unavailable; using the energy VAD instead", exc_info=True)
            return EnergyVad(threshold=thr)
    if kind == "energy":
        return EnergyVad(threshold=thr)
    if kind == "off":
        return NoVad(thr)
    raise ValueError(f"VAD kind must be 'silero', 'energy' or 'off', got {kind!r}")
