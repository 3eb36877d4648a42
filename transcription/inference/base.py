"""What every inference backend shares: the ``Backend`` interface, the model-file check and the
whisper.cpp parameters each call sets. The implementations import from here; ``backend.py``
picks one."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.inference.types import InferenceRequest, Segment
from transcription.languages import AUTO, CODES, ENGLISH, LANGUAGES, Detected
from transcription.modelfiles.ggml import GGML_MAGIC

# First four bytes of a GGML whisper file: the uint32 magic, little-endian ("lmgg").
GGML_MAGIC_BYTES = GGML_MAGIC.to_bytes(4, "little")


@runtime_checkable
class Backend(Protocol):
    """Transcribes 16 kHz mono float32 audio; safe for up to ``concurrency`` calling threads."""

    model_name: str
    model_path: Path
    multilingual: bool
    concurrency: int

    def transcribe(self, samples: np.ndarray, request: InferenceRequest) -> list[Segment]:
        """Blocking; called from a worker thread. Times are ms from the start of ``samples``."""
        ...

    def detect_language(self, samples: np.ndarray, request: InferenceRequest) -> Detected:
        """Blocking; called from a worker thread for a window of a multilingual model sent
        with language "auto": its most likely language and that language's probability."""
        ...

    def close(self) -> None:
        """Free the model; called once at shutdown, after every transcribe() has returned."""
        ...


def check_model_file(model_path: str | Path) -> Path:
    """Return the absolute path of an existing GGML file, or raise FileNotFoundError/ValueError.

    pywhispercpp treats a path that does not exist as a model *name* and downloads it, and a
    file it cannot parse loads "successfully" into a NULL context that segfaults on first use
    (WHISPER_FACTS.md, failure modes), so both are refused here before any loader sees them.
    """
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(len(GGML_MAGIC_BYTES))
    if magic != GGML_MAGIC_BYTES:
        raise ValueError(f"model file {path} is not a GGML whisper model (bad magic {magic!r})")
    return path


def effective_threads(request: InferenceRequest, n_threads: int) -> int:
    """Threads for one call: the request's wish, capped by the backend's configured budget."""
    if request.n_threads <= 0:
        return n_threads
    return min(request.n_threads, n_threads)


def whisper_language(language: str, multilingual: bool) -> str:
    """The ``language`` whisper.cpp is given for a request: English-only models take nothing
    but "en"; a multilingual one takes a Whisper code, or "auto" (whisper.cpp detects the
    language of the window). Sessions send only codes checked at ``speech.config``; anything
    else is detected rather than failed: no language value may fail a window in the worker."""
    if not multilingual:
        return ENGLISH
    code = language.strip().lower()
    return code if code in CODES else AUTO


def run_window(
    backend: Backend, samples: np.ndarray, request: InferenceRequest
) -> tuple[list[Segment], Detected | None]:
    """One window on a worker thread: a multilingual model asked for "auto" (or a code it does
    not know) first detects the language, then transcribes the window in it, and says which
    (docs/PROTOCOL.md "Language detection"); any other request is transcribed as given."""
    detection = None
    if backend.multilingual and whisper_language(request.language, True) == AUTO:
        detection = backend.detect_language(samples, request)
        request = replace(request, language=detection.code)
    return backend.transcribe(samples, request), detection


# whisper.cpp's language detection encodes with the audio_ctx that the last whisper_full on the
# same state stored (whisper_full_with_state is the only writer of state->exp_n_audio_ctx, and
# its own detection runs before the store), so a detection after an interim pass (a short
# audio_ctx) would hear only its first second or two. A whisper_full on this primer whose
# encoder_begin_callback says no stores the request's audio_ctx and stops before encoding
# (the callback is asked right before each encode; under 100 ms whisper.cpp returns before the
# store): each backend runs one before a detection, for the cost of a 0.5 s mel.
AUDIO_CTX_PRIMER = np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.float32)


def primer_request(request: InferenceRequest) -> InferenceRequest:
    """The request of the priming call: ``request``'s audio_ctx, a given language (no
    detection of its own), nothing else that costs."""
    return replace(request, language=ENGLISH, prompt="", beam_size=1, translate=False)


def detected(lang_id: int, probability: float) -> Detected:
    """whisper_lang_auto_detect's answer as a code (its ids index ``LANGUAGES``)."""
    if not 0 <= lang_id < len(LANGUAGES):
        raise RuntimeError(f"whisper.cpp language detection failed (id {lang_id})")
    return Detected(LANGUAGES[lang_id][0], float(probability))


def model_name_from_path(path: Path) -> str:
    """``ggml-tiny.en.bin`` -> ``tiny.en``; any other file name -> its stem."""
    name = path.name
    if name.startswith("ggml-"):
        name = name[len("ggml-") :]
    return name.removesuffix(".bin")


# whisper.h v1.8.5 ``enum whisper_alignment_heads_preset``: the cross-attention heads that
# follow the audio, which DTW token timestamps align tokens with (whisper.cpp #1485).
DTW_AHEADS_PRESETS = {
    "tiny.en": 3,
    "tiny": 4,
    "base.en": 5,
    "base": 6,
    "small.en": 7,
    "small": 8,
    "medium.en": 9,
    "medium": 10,
    "large-v1": 11,
    "large-v2": 12,
    "large-v3": 13,
    "large-v3-turbo": 14,
}


def dtw_context_params(model_name: str) -> dict[str, Any]:
    """The ``whisper_context_params`` fields that turn on DTW token timestamps (``t_dtw``) for
    ``model_name`` (``tiny.en``, ``base-q8_0`` ...); ValueError for a model without a preset.

    whisper.cpp ignores DTW while flash attention is on (DTW reads the attention weights that
    flash attention never materialises), so it is turned off here.
    """
    architecture = re.sub(r"-(q\d\w*|f16|f32)$", "", model_name)
    preset = DTW_AHEADS_PRESETS.get(architecture)
    if preset is None:
        raise ValueError(
            f"WSS_DTW_TIMESTAMPS: no alignment-head preset for model {model_name!r} "
            f"(known: {', '.join(DTW_AHEADS_PRESETS)})"
        )
    return {"flash_attn": False, "dtw_token_timestamps": True, "dtw_aheads_preset": preset}


# The prompt is the committed tail: 64 tokens of context are plenty, and a long prompt both
# slows decoding and invites prompt-echo loops.
PROMPT_MAX_TOKENS = 64


def common_params(request: InferenceRequest) -> dict[str, Any]:
    """The ``whisper_full_params`` fields both backends set on every call, by name.

    Set every time because pywhispercpp's params persist on the instance between calls.
    """
    return {
        "detect_language": False,
        "carry_initial_prompt": False,
        "n_max_text_ctx": PROMPT_MAX_TOKENS,
        "audio_ctx": max(0, request.audio_ctx),
        "max_tokens": max(0, request.max_tokens),
        "token_timestamps": True,
        "no_context": True,
        "no_timestamps": False,
        "single_segment": False,
        "suppress_blank": True,
        "suppress_nst": True,
        # whisper_full_with_state adds the task token for multilingual models only: an
        # English-only model ignores it
        "translate": request.translate,
        "offset_ms": 0,
        "duration_ms": 0,
        "print_special": False,
        "print_progress": False,
        "print_realtime": False,
        "print_timestamps": False,
    }


def apply_params(params: Any, values: dict[str, Any]) -> None:
    """Set ``values`` on a params object (pywhispercpp's or our ctypes struct)."""
    for name, value in values.items():
        setattr(params, name, value)
