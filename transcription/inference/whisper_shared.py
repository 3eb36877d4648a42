"""SharedWhisperBackend: one copy of the weights, one whisper_state per concurrent inference.

pywhispercpp's Python API gives each Model its own whisper_context, i.e. its own copy of the
weights. whisper.cpp's C API separates the model (context) from the working memory of one
inference (state; whisper.cpp #523, maintainer's description in #2874), so this module binds
the libwhisper that pywhispercpp already loaded with ctypes: ``concurrency`` threads each run
``whisper_full_with_state`` on their own state over the same weights. ctypes.CDLL calls release
the GIL, so those threads run in parallel.

``whisper_full_params`` is a ~300-byte struct passed by value, so the binding mirrors whisper.h
of exactly v1.8.5 and refuses to run unless ``whisper_full_default_params_by_ref`` shows the
known defaults at the offsets declared here (``check_layout``).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_void_p,
)
from pathlib import Path
from typing import Any

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.inference.base import (
    AUDIO_CTX_PRIMER,
    apply_params,
    check_model_file,
    common_params,
    detected,
    dtw_context_params,
    effective_threads,
    model_name_from_path,
    primer_request,
    whisper_language,
)
from transcription.inference.filters import DEFAULT_FILTERS, FilterConfig, filter_segments
from transcription.inference.types import InferenceRequest, Segment
from transcription.inference.words import RawToken, read_segments
from transcription.languages import Detected

log = logging.getLogger(__name__)

EXPECTED_VERSION = "1.8.5"
WHISPER_SAMPLING_GREEDY = 0
WHISPER_SAMPLING_BEAM_SEARCH = 1
FLT_MAX = 3.4028234663852886e38


class BindingError(RuntimeError):
    """The ctypes binding does not match the installed libwhisper (wrong version or layout)."""


# --- whisper.h v1.8.5 structs, field for field ---


class WhisperAhead(Structure):
    _fields_ = [("n_text_layer", c_int), ("n_head", c_int)]


class WhisperAheads(Structure):
    _fields_ = [("n_heads", c_size_t), ("heads", POINTER(WhisperAhead))]


class WhisperContextParams(Structure):
    _fields_ = [
        ("use_gpu", c_bool),
        ("flash_attn", c_bool),
        ("gpu_device", c_int),
        ("dtw_token_timestamps", c_bool),
        ("dtw_aheads_preset", c_int),
        ("dtw_n_top", c_int),
        ("dtw_aheads", WhisperAheads),
        ("dtw_mem_size", c_size_t),
    ]


class WhisperTokenData(Structure):
    _fields_ = [
        ("id", c_int32),
        ("tid", c_int32),
        ("p", c_float),
        ("plog", c_float),
        ("pt", c_float),
        ("ptsum", c_float),
        ("t0", c_int64),
        ("t1", c_int64),
        ("t_dtw", c_int64),
        ("vlen", c_float),
    ]


class WhisperVadParams(Structure):
    _fields_ = [
        ("threshold", c_float),
        ("min_speech_duration_ms", c_int),
        ("min_silence_duration_ms", c_int),
        ("max_speech_duration_s", c_float),
        ("speech_pad_ms", c_int),
        ("samples_overlap", c_float),
    ]


class _Greedy(Structure):
    _fields_ = [("best_of", c_int)]


class _BeamSearch(Structure):
    _fields_ = [("beam_size", c_int), ("patience", c_float)]


class WhisperFullParams(Structure):
    _fields_ = [
        ("strategy", c_int),
        ("n_threads", c_int),
        ("n_max_text_ctx", c_int),
        ("offset_ms", c_int),
        ("duration_ms", c_int),
        ("translate", c_bool),
        ("no_context", c_bool),
        ("no_timestamps", c_bool),
        ("single_segment", c_bool),
        ("print_special", c_bool),
        ("print_progress", c_bool),
        ("print_realtime", c_bool),
        ("print_timestamps", c_bool),
        ("token_timestamps", c_bool),
        ("thold_pt", c_float),
        ("thold_ptsum", c_float),
        ("max_len", c_int),
        ("split_on_word", c_bool),
        ("max_tokens", c_int),
        ("debug_mode", c_bool),
        ("audio_ctx", c_int),
        ("tdrz_enable", c_bool),
        ("suppress_regex", c_char_p),
        ("initial_prompt", c_char_p),
        # New in 1.8 (absent from older whisper.h copies): shifts every later field by 8 bytes.
        ("carry_initial_prompt", c_bool),
        ("prompt_tokens", POINTER(c_int32)),
        ("prompt_n_tokens", c_int),
        ("language", c_char_p),
        ("detect_language", c_bool),
        ("suppress_blank", c_bool),
        ("suppress_nst", c_bool),
        ("temperature", c_float),
        ("max_initial_ts", c_float),
        ("length_penalty", c_float),
        ("temperature_inc", c_float),
        ("entropy_thold", c_float),
        ("logprob_thold", c_float),
        ("no_speech_thold", c_float),
        ("greedy", _Greedy),
        ("beam_search", _BeamSearch),
        ("new_segment_callback", c_void_p),
        ("new_segment_callback_user_data", c_void_p),
        ("progress_callback", c_void_p),
        ("progress_callback_user_data", c_void_p),
        ("encoder_begin_callback", c_void_p),
        ("encoder_begin_callback_user_data", c_void_p),
        ("abort_callback", c_void_p),
        ("abort_callback_user_data", c_void_p),
        ("logits_filter_callback", c_void_p),
        ("logits_filter_callback_user_data", c_void_p),
        ("grammar_rules", c_void_p),
        ("n_grammar_rules", c_size_t),
        ("i_start_rule", c_size_t),
        ("grammar_penalty", c_float),
        ("vad", c_bool),
        ("vad_model_path", c_char_p),
        ("vad_params", WhisperVadParams),
    ]


# --- loading the library ---


def find_libwhisper() -> Path:
    """Path of the libwhisper that pywhispercpp's extension is linked against.

    Binding that very file (dlopen returns the already-loaded handle) keeps one copy of ggml
    and its CPU backend registry in the process; the unmangled libwhisper.so next to it is a
    different build that would pull in a second one.
    """
    import _pywhispercpp  # noqa: F401  (loads pywhispercpp.libs/libwhisper-*.so into the process)

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if "/libwhisper" in path and os.path.isfile(path):
                    return Path(path)
    except OSError:
        pass  # no /proc (not Linux): fall back to the wheel's layout
    site = Path(_pywhispercpp.__file__).parent
    candidates = sorted(glob.glob(str(site / "pywhispercpp.libs" / "libwhisper*.so*")))
    if not candidates:
        raise BindingError(f"no libwhisper found next to {_pywhispercpp.__file__}")
    return Path(candidates[0])


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def load_library() -> ctypes.CDLL:
    """Open libwhisper once, declare the functions used here and check version and layout."""
    global _lib
    with _lib_lock:
        if _lib is None:
            path = find_libwhisper()
            try:
                lib = ctypes.CDLL(str(path))
                _declare(lib)
            except (OSError, AttributeError) as exc:
                raise BindingError(f"cannot bind {path}: {exc}") from exc
            version = lib.whisper_version().decode()
            if version != EXPECTED_VERSION:
                raise BindingError(
                    f"{path} is whisper.cpp {version}; this binding mirrors {EXPECTED_VERSION}"
                )
            check_layout(lib)
            _install_log_forwarding(lib)
            _lib = lib
        return _lib


def _declare(lib: ctypes.CDLL) -> None:
    ctx, state = c_void_p, c_void_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "whisper_version": (c_char_p, []),
        "whisper_context_default_params_by_ref": (POINTER(WhisperContextParams), []),
        "whisper_free_context_params": (None, [POINTER(WhisperContextParams)]),
        "whisper_full_default_params_by_ref": (POINTER(WhisperFullParams), [c_int]),
        "whisper_free_params": (None, [POINTER(WhisperFullParams)]),
        "whisper_init_from_file_with_params_no_state": (ctx, [c_char_p, WhisperContextParams]),
        "whisper_init_state": (state, [ctx]),
        "whisper_free_state": (None, [state]),
        "whisper_free": (None, [ctx]),
        "whisper_is_multilingual": (c_int, [ctx]),
        "whisper_lang_id": (c_int, [c_char_p]),
        "whisper_lang_max_id": (c_int, []),
        "whisper_pcm_to_mel_with_state": (c_int, [ctx, state, POINTER(c_float), c_int, c_int]),
        "whisper_lang_auto_detect_with_state": (
            c_int,
            [ctx, state, c_int, c_int, POINTER(c_float)],
        ),
        "whisper_token_eot": (c_int32, [ctx]),
        "whisper_full_with_state": (
            c_int,
            [ctx, state, WhisperFullParams, POINTER(c_float), c_int],
        ),
        "whisper_full_n_segments_from_state": (c_int, [state]),
        "whisper_full_get_segment_t0_from_state": (c_int64, [state, c_int]),
        "whisper_full_get_segment_t1_from_state": (c_int64, [state, c_int]),
        "whisper_full_get_segment_text_from_state": (c_char_p, [state, c_int]),
        "whisper_full_get_segment_no_speech_prob_from_state": (c_float, [state, c_int]),
        "whisper_full_n_tokens_from_state": (c_int, [state, c_int]),
        "whisper_full_get_token_data_from_state": (WhisperTokenData, [state, c_int, c_int]),
        # Token text can be a partial UTF-8 sequence: c_char_p yields bytes, never decoded here.
        "whisper_full_get_token_text_from_state": (c_char_p, [ctx, state, c_int, c_int]),
        "whisper_log_set": (None, [c_void_p, c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


# Known defaults of whisper.cpp 1.8.5 (whisper_full_default_params in src/whisper.cpp). They are
# read back through the ctypes struct: a field at a wrong offset reads a neighbour's value.
def _expected_full_defaults(strategy: int) -> dict[str, Any]:
    greedy = strategy == WHISPER_SAMPLING_GREEDY
    return {
        "strategy": strategy,
        "n_threads": min(4, os.cpu_count() or 1),
        "n_max_text_ctx": 16384,
        "offset_ms": 0,
        "duration_ms": 0,
        "translate": False,
        "no_context": True,
        "no_timestamps": False,
        "single_segment": False,
        "print_special": False,
        "print_progress": True,
        "print_realtime": False,
        "print_timestamps": True,
        "token_timestamps": False,
        "thold_pt": 0.01,
        "thold_ptsum": 0.01,
        "max_len": 0,
        "split_on_word": False,
        "max_tokens": 0,
        "debug_mode": False,
        "audio_ctx": 0,
        "tdrz_enable": False,
        "suppress_regex": None,
        "initial_prompt": None,
        "carry_initial_prompt": False,
        "prompt_n_tokens": 0,
        "language": b"en",
        "detect_language": False,
        "suppress_blank": True,
        "suppress_nst": False,
        "temperature": 0.0,
        "max_initial_ts": 1.0,
        "length_penalty": -1.0,
        "temperature_inc": 0.2,
        "entropy_thold": 2.4,
        "logprob_thold": -1.0,
        "no_speech_thold": 0.6,
        "greedy.best_of": 5 if greedy else -1,
        "beam_search.beam_size": -1 if greedy else 5,
        "beam_search.patience": -1.0,
        "new_segment_callback": None,
        "progress_callback": None,
        "encoder_begin_callback": None,
        "abort_callback": None,
        "logits_filter_callback": None,
        "grammar_rules": None,
        "n_grammar_rules": 0,
        "i_start_rule": 0,
        "grammar_penalty": 100.0,
        "vad": False,
        "vad_model_path": None,
        "vad_params.threshold": 0.5,
        "vad_params.min_speech_duration_ms": 250,
        "vad_params.min_silence_duration_ms": 100,
        "vad_params.max_speech_duration_s": FLT_MAX,
        "vad_params.speech_pad_ms": 30,
        "vad_params.samples_overlap": 0.1,
    }


_EXPECTED_CONTEXT_DEFAULTS: dict[str, Any] = {
    "use_gpu": True,
    "flash_attn": True,
    "gpu_device": 0,
    "dtw_token_timestamps": False,
    "dtw_aheads_preset": 0,
    "dtw_n_top": -1,
    "dtw_aheads.n_heads": 0,
    "dtw_mem_size": 128 * 1024 * 1024,
}


def check_layout(
    lib: ctypes.CDLL,
    full_params_type: type[Structure] = WhisperFullParams,
) -> None:
    """Raise BindingError unless the library's default params read back as the known defaults.

    ``full_params_type`` exists so a test can prove that a struct with a wrong offset is refused.
    """
    fn = lib.whisper_full_default_params_by_ref
    mismatches: list[str] = []
    for strategy in (WHISPER_SAMPLING_GREEDY, WHISPER_SAMPLING_BEAM_SEARCH):
        ptr = fn(strategy)
        if not ptr:
            raise BindingError("whisper_full_default_params_by_ref returned NULL")
        try:
            _check_allocation_size(ptr, ctypes.sizeof(full_params_type), mismatches)
            params = ctypes.cast(ptr, POINTER(full_params_type)).contents
            _compare(params, _expected_full_defaults(strategy), f"full[{strategy}]", mismatches)
        finally:
            lib.whisper_free_params(ptr)
    cptr = lib.whisper_context_default_params_by_ref()
    try:
        _check_allocation_size(cptr, ctypes.sizeof(WhisperContextParams), mismatches)
        _compare(cptr.contents, _EXPECTED_CONTEXT_DEFAULTS, "context", mismatches)
    finally:
        lib.whisper_free_context_params(cptr)
    if mismatches:
        raise BindingError("whisper.h layout mismatch: " + "; ".join(mismatches))


def _compare(struct: Structure, expected: dict[str, Any], label: str, out: list[str]) -> None:
    strings: list[tuple[str, int, bytes]] = []
    for dotted, want in expected.items():
        try:
            owner, name = _resolve_owner(struct, dotted)
            field_type = {f[0]: f[1] for f in owner._fields_}[name]
        except (AttributeError, KeyError):
            out.append(f"{label}.{dotted} missing")
            continue
        if field_type in (c_char_p, c_void_p) or issubclass(field_type, ctypes._Pointer):
            # Read pointers as plain addresses: at a wrong offset a "char *" holds garbage, and
            # dereferencing it would crash the process instead of failing the check.
            address = c_void_p.from_buffer(owner, getattr(type(owner), name).offset).value
            if isinstance(want, bytes):
                strings.append((dotted, address or 0, want))
                continue
            got: Any = address
        else:
            got = getattr(owner, name)
        if isinstance(want, float):
            ok = isinstance(got, float) and math.isclose(got, want, rel_tol=1e-6)
        else:
            ok = got == want
        if not ok:
            out.append(f"{label}.{dotted} = {got!r}, expected {want!r}")
    if out:
        return  # offsets are wrong: the string pointers cannot be trusted
    for dotted, address, want in strings:
        got_bytes = ctypes.string_at(address) if address else None
        if got_bytes != want:
            out.append(f"{label}.{dotted} = {got_bytes!r}, expected {want!r}")


def _resolve_owner(struct: Structure, dotted: str) -> tuple[Structure, str]:
    *parents, name = dotted.split(".")
    owner = struct
    for part in parents:
        owner = getattr(owner, part)
    return owner, name


def _check_allocation_size(ptr: Any, size: int, out: list[str]) -> None:
    # The by_ref functions return `new T`; malloc_usable_size is at least sizeof(T) and less
    # than 24 bytes more, so a struct declared here much bigger or smaller than T shows up.
    usable = _malloc_usable_size(ctypes.cast(ptr, c_void_p).value)
    if usable is not None and not size <= usable < size + 32:
        out.append(f"allocation of {usable} bytes does not fit a {size}-byte struct")


def _malloc_usable_size(address: int | None) -> int | None:
    try:
        fn = ctypes.CDLL(None).malloc_usable_size
    except AttributeError:
        return None
    fn.restype = c_size_t
    fn.argtypes = [c_void_p]
    return int(fn(address))


# whisper.cpp prints model details at INFO on every load; route them through logging.
_LOG_CALLBACK_TYPE = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)
_GGML_LOG_LEVEL_WARN = 3
_GGML_LOG_LEVEL_ERROR = 4
_whisper_log = logging.getLogger("whisper.cpp")
# What whisper.cpp logs (as an error) when the priming call stops as asked: not an error here.
_PRIMER_STOP = "encoder_begin_callback returned false"


@_LOG_CALLBACK_TYPE
def _forward_log(level: int, text: bytes | None, _user_data: int | None) -> None:
    message = (text or b"").decode("utf-8", errors="replace").rstrip()
    if not message:
        return
    if level == _GGML_LOG_LEVEL_ERROR and _PRIMER_STOP not in message:
        _whisper_log.error(message)
    elif level == _GGML_LOG_LEVEL_WARN:
        _whisper_log.warning(message)
    else:
        _whisper_log.debug(message)


_ENCODER_BEGIN_CALLBACK_TYPE = ctypes.CFUNCTYPE(c_bool, c_void_p, c_void_p, c_void_p)


@_ENCODER_BEGIN_CALLBACK_TYPE
def _refuse_encoding(_ctx: int | None, _state: int | None, _user_data: int | None) -> bool:
    """The priming call's encoder_begin_callback (base.AUDIO_CTX_PRIMER): no encoding."""
    return False


def _install_log_forwarding(lib: ctypes.CDLL) -> None:
    # The callback object is module-level, so it outlives every call the library can make.
    lib.whisper_log_set(ctypes.cast(_forward_log, c_void_p), None)


# --- the backend ---


class _StateReader:
    """ResultReader over one whisper_state after whisper_full_with_state."""

    def __init__(self, lib: ctypes.CDLL, ctx: int, state: int) -> None:
        self._lib, self._ctx, self._state = lib, ctx, state

    def eot(self) -> int:
        return int(self._lib.whisper_token_eot(self._ctx))

    def n_segments(self) -> int:
        return int(self._lib.whisper_full_n_segments_from_state(self._state))

    def segment_span(self, i: int) -> tuple[int, int]:
        lib = self._lib
        return (
            int(lib.whisper_full_get_segment_t0_from_state(self._state, i)),
            int(lib.whisper_full_get_segment_t1_from_state(self._state, i)),
        )

    def n_tokens(self, i: int) -> int:
        return int(self._lib.whisper_full_n_tokens_from_state(self._state, i))

    def token(self, i: int, j: int) -> RawToken:
        data = self._lib.whisper_full_get_token_data_from_state(self._state, i, j)
        text = self._lib.whisper_full_get_token_text_from_state(self._ctx, self._state, i, j)
        return RawToken(
            id=data.id, text=text or b"", t0=data.t0, t1=data.t1, p=float(data.p), t_dtw=data.t_dtw
        )

    def no_speech_prob(self, i: int) -> float:
        return float(self._lib.whisper_full_get_segment_no_speech_prob_from_state(self._state, i))


class SharedWhisperBackend:
    """Backend over one whisper_context and ``concurrency`` whisper_states."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        concurrency: int,
        n_threads: int,
        dtw: bool = False,
        filters: FilterConfig = DEFAULT_FILTERS,
    ) -> None:
        self.model_path = check_model_file(model_path)
        self.model_name = model_name_from_path(self.model_path)
        self.concurrency = concurrency
        self.n_threads = n_threads
        self._filters = filters
        self._lib = lib = load_library()
        self._defaults = {
            strategy: _copy_default_params(lib, strategy)
            for strategy in (WHISPER_SAMPLING_GREEDY, WHISPER_SAMPLING_BEAM_SEARCH)
        }
        cparams_ptr = lib.whisper_context_default_params_by_ref()
        try:
            cparams = WhisperContextParams.from_buffer_copy(cparams_ptr.contents)
        finally:
            lib.whisper_free_context_params(cparams_ptr)
        cparams.use_gpu = False  # CPU-only wheel; keeps the load log free of GPU probing
        if dtw:
            for name, value in dtw_context_params(self.model_name).items():
                setattr(cparams, name, value)
        ctx = lib.whisper_init_from_file_with_params_no_state(os.fsencode(self.model_path), cparams)
        if not ctx:
            raise ValueError(f"whisper.cpp could not load {self.model_path}")
        self._ctx: int | None = ctx
        self._states: list[int] = []
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        try:
            for _ in range(concurrency):
                state = lib.whisper_init_state(ctx)
                if not state:
                    raise MemoryError("whisper_init_state failed")
                self._states.append(state)
                self._free.put(state)
        except BaseException:
            self.close()
            raise
        self.multilingual = bool(lib.whisper_is_multilingual(ctx))
        self._eot = int(lib.whisper_token_eot(ctx))

    def transcribe(self, samples: np.ndarray, request: InferenceRequest) -> list[Segment]:
        """Run whisper on ``samples`` with a free state (waits for one if all are busy)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        params, keepalive = self._params(request)
        with self._checkout() as state:
            rc = self._lib.whisper_full_with_state(
                self._ctx, state, params, audio.ctypes.data_as(POINTER(c_float)), len(audio)
            )
            if rc != 0:
                raise RuntimeError(f"whisper_full_with_state failed with code {rc}")
            audio_ms = len(audio) * 1000 // SAMPLE_RATE_HZ
            segments = read_segments(_StateReader(self._lib, self._open_ctx(), state), audio_ms)
        del keepalive
        return filter_segments(segments, self._filters)

    def detect_language(self, samples: np.ndarray, request: InferenceRequest) -> Detected:
        """whisper.cpp's language detection on a free state: the mel of ``samples``, one
        encoder pass, the language tokens' probabilities (whisper_lang_auto_detect)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        n_threads = effective_threads(request, self.n_threads)
        probs = (c_float * (int(self._lib.whisper_lang_max_id()) + 1))()
        with self._checkout() as state:
            ctx = self._open_ctx()
            self._prime_audio_ctx(ctx, state, request)
            samples_ptr = audio.ctypes.data_as(POINTER(c_float))
            rc = self._lib.whisper_pcm_to_mel_with_state(
                ctx, state, samples_ptr, len(audio), n_threads
            )
            if rc != 0:
                raise RuntimeError(f"whisper_pcm_to_mel_with_state failed with code {rc}")
            lang_id = self._lib.whisper_lang_auto_detect_with_state(ctx, state, 0, n_threads, probs)
        return detected(lang_id, probs[lang_id] if lang_id >= 0 else 0.0)

    def _prime_audio_ctx(self, ctx: int, state: int, request: InferenceRequest) -> None:
        """Store ``request``'s audio_ctx in ``state`` for the detection (``AUDIO_CTX_PRIMER``)."""
        params, keepalive = self._params(primer_request(request))
        params.encoder_begin_callback = ctypes.cast(_refuse_encoding, c_void_p).value
        primer = AUDIO_CTX_PRIMER.ctypes.data_as(POINTER(c_float))
        rc = self._lib.whisper_full_with_state(ctx, state, params, primer, len(AUDIO_CTX_PRIMER))
        del keepalive
        if rc != 0:
            raise RuntimeError(f"whisper_full_with_state failed with code {rc}")

    def close(self) -> None:
        """Free every state and the context; idempotent."""
        for state in self._states:
            self._lib.whisper_free_state(state)
        self._states = []
        if self._ctx:
            self._lib.whisper_free(self._ctx)
            self._ctx = None

    def _open_ctx(self) -> int:
        if self._ctx is None:
            raise RuntimeError("backend is closed")
        return self._ctx

    @contextmanager
    def _checkout(self) -> Iterator[int]:
        if self._ctx is None:
            raise RuntimeError("backend is closed")
        state = self._free.get()
        try:
            yield state
        finally:
            self._free.put(state)

    def _params(self, request: InferenceRequest) -> tuple[WhisperFullParams, list[bytes]]:
        """A fresh params struct for one call; the bytes it points to are returned to keep."""
        beam = request.beam_size > 1
        strategy = WHISPER_SAMPLING_BEAM_SEARCH if beam else WHISPER_SAMPLING_GREEDY
        params = WhisperFullParams.from_buffer_copy(self._defaults[strategy])
        language = _language(request.language, self.multilingual)
        prompt = request.prompt.encode("utf-8") if request.prompt else None
        keepalive = [b for b in (language, prompt) if b is not None]
        params.n_threads = effective_threads(request, self.n_threads)
        if beam:
            params.beam_search.beam_size = request.beam_size
        params.language = language
        params.initial_prompt = prompt
        apply_params(params, common_params(request))
        return params, keepalive


def _copy_default_params(lib: ctypes.CDLL, strategy: int) -> WhisperFullParams:
    ptr = lib.whisper_full_default_params_by_ref(strategy)
    try:
        return WhisperFullParams.from_buffer_copy(ptr.contents)
    finally:
        lib.whisper_free_params(ptr)


def _language(language: str, multilingual: bool) -> bytes:
    return whisper_language(language, multilingual).encode()
