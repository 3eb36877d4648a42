"""PyWhisperCppBackend: a pool of pywhispercpp models, one copy of the weights per slot.

The fallback when the shared ctypes binding cannot be used. Each concurrent inference checks
out its own ``Model``; ``whisper_full`` releases the GIL (pywhispercpp ``src/main.cpp``), so
slots run in parallel, at the price of ~144 MiB (tiny.en) per extra slot.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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

if TYPE_CHECKING:
    from pywhispercpp.model import ContextParams


class _Slot:
    """One pywhispercpp Model with its own greedy and beam-search params objects."""

    def __init__(self, model_path: Path, dtw: bool) -> None:
        import _pywhispercpp as pw
        from pywhispercpp.model import Model

        # Model() with a path that does not exist downloads from a hub, and an unreadable file
        # gives a NULL context; check_model_file has ruled out both before we get here.
        # Logs are left on stderr: pywhispercpp's redirect swaps fd 2 for the whole process,
        # which would swallow other threads' output while a model loads.
        context_params: dict[str, Any] = {"use_gpu": False}
        if dtw:
            context_params |= dtw_context_params(model_name_from_path(model_path))
            # pybind11 takes the preset as its enum type, not as the int whisper.h declares
            preset = context_params["dtw_aheads_preset"]
            context_params["dtw_aheads_preset"] = pw.whisper_alignment_heads_preset(preset)
        self.model = Model(str(model_path), context_params=cast("ContextParams", context_params))
        self.ctx = self.model._ctx  # type: ignore[attr-defined]
        strategies = pw.whisper_sampling_strategy
        # Params persist on whatever object holds them, so each slot owns one per strategy and
        # transcribe() sets every field that matters on every call.
        self.greedy = pw.whisper_full_default_params(strategies.WHISPER_SAMPLING_GREEDY)
        self.beam = pw.whisper_full_default_params(strategies.WHISPER_SAMPLING_BEAM_SEARCH)


class _ContextReader:
    """ResultReader over a pywhispercpp context after whisper_full."""

    def __init__(self, pw: Any, ctx: Any) -> None:
        self._pw, self._ctx = pw, ctx

    def eot(self) -> int:
        return int(self._pw.whisper_token_eot(self._ctx))

    def n_segments(self) -> int:
        return int(self._pw.whisper_full_n_segments(self._ctx))

    def segment_span(self, i: int) -> tuple[int, int]:
        pw = self._pw
        return int(pw.whisper_full_get_segment_t0(self._ctx, i)), int(
            pw.whisper_full_get_segment_t1(self._ctx, i)
        )

    def n_tokens(self, i: int) -> int:
        return int(self._pw.whisper_full_n_tokens(self._ctx, i))

    def token(self, i: int, j: int) -> RawToken:
        data = self._pw.whisper_full_get_token_data(self._ctx, i, j)
        # whisper_full_get_token_text returns str and fails on partial UTF-8 tokens; the bytes
        # variant does not decode.
        text = self._pw.whisper_token_to_bytes(self._ctx, data.id)
        return RawToken(
            id=int(data.id),
            text=text,
            t0=int(data.t0),
            t1=int(data.t1),
            p=data.p,
            t_dtw=int(data.t_dtw),
        )

    def no_speech_prob(self, i: int) -> float:
        # pywhispercpp 1.5.1 does not expose whisper_full_get_segment_no_speech_prob.
        return 0.0


class PyWhisperCppBackend:
    """Backend over a pool of ``concurrency`` pywhispercpp models."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        concurrency: int,
        n_threads: int,
        dtw: bool = False,
        filters: FilterConfig = DEFAULT_FILTERS,
    ) -> None:
        import _pywhispercpp as pw

        self._pw = pw
        self.model_path = check_model_file(model_path)
        self.model_name = model_name_from_path(self.model_path)
        self.concurrency = concurrency
        self.n_threads = n_threads
        self._filters = filters
        self._slots = [_Slot(self.model_path, dtw) for _ in range(concurrency)]
        self._free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        for slot in self._slots:
            self._free.put(slot)
        self.multilingual = bool(pw.whisper_is_multilingual(self._slots[0].ctx))

    def transcribe(self, samples: np.ndarray, request: InferenceRequest) -> list[Segment]:
        """Run whisper on ``samples`` with a free model (waits for one if all are busy)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        with self._checkout() as slot:
            params = self._params(slot, request)
            rc = self._pw.whisper_full(slot.ctx, params, audio, len(audio))
            if rc != 0:
                raise RuntimeError(f"whisper_full failed with code {rc}")
            audio_ms = len(audio) * 1000 // SAMPLE_RATE_HZ
            segments = read_segments(_ContextReader(self._pw, slot.ctx), audio_ms)
        return filter_segments(segments, self._filters)

    def detect_language(self, samples: np.ndarray, request: InferenceRequest) -> Detected:
        """whisper.cpp's language detection with a free model: the mel of ``samples``, one
        encoder pass, the language tokens' probabilities (whisper_lang_auto_detect)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        n_threads = effective_threads(request, self.n_threads)
        # Filled in place: a C-contiguous float32 array is passed to C without a copy.
        probs = np.zeros(int(self._pw.whisper_lang_max_id()) + 1, dtype=np.float32)
        with self._checkout() as slot:
            # The detection's audio_ctx is the last whisper_full's (base.AUDIO_CTX_PRIMER).
            primer = self._params(slot, primer_request(request))
            primer.set_encoder_begin_callback(lambda _ctx: False)
            try:
                rc = self._pw.whisper_full(
                    slot.ctx, primer, AUDIO_CTX_PRIMER, len(AUDIO_CTX_PRIMER)
                )
            finally:
                primer.clear_encoder_begin_callback()
            if rc != 0:
                raise RuntimeError(f"whisper_full failed with code {rc}")
            rc = self._pw.whisper_pcm_to_mel(slot.ctx, audio, len(audio), n_threads)
            if rc != 0:
                raise RuntimeError(f"whisper_pcm_to_mel failed with code {rc}")
            lang_id = int(self._pw.whisper_lang_auto_detect(slot.ctx, 0, n_threads, probs))
        return detected(lang_id, float(probs[lang_id]) if lang_id >= 0 else 0.0)

    def close(self) -> None:
        """Drop the models (pywhispercpp frees each context when its Model is collected)."""
        self._slots = []
        self._free = queue.SimpleQueue()

    @contextmanager
    def _checkout(self) -> Iterator[_Slot]:
        if not self._slots:
            raise RuntimeError("backend is closed")
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    def _params(self, slot: _Slot, request: InferenceRequest) -> Any:
        beam = request.beam_size > 1
        params = slot.beam if beam else slot.greedy
        if beam:
            params.beam_search = {"beam_size": request.beam_size, "patience": -1.0}
        params.n_threads = effective_threads(request, self.n_threads)
        params.language = whisper_language(request.language, self.multilingual)
        params.initial_prompt = request.prompt
        apply_params(params, common_params(request))
        return params
