from __future__ import annotations

import ctypes
import threading
from ctypes import Structure
from pathlib import Path

import numpy as np
import pytest

from tests.transcription.inference.conftest import normalise
from transcription.inference import whisper_shared as ws
from transcription.inference.types import InferenceRequest


def _struct_without(field_name: str) -> type[Structure]:
    fields = [f for f in ws.WhisperFullParams._fields_ if f[0] != field_name]
    return type("BrokenParams", (Structure,), {"_fields_": fields})


def test_binds_the_libwhisper_that_pywhispercpp_links() -> None:
    """The binding opens pywhispercpp's own libwhisper, not the second copy beside it."""
    path = ws.find_libwhisper()
    assert path.parent.name == "pywhispercpp.libs"
    assert path.name.startswith("libwhisper")


def test_layout_self_check_accepts_the_declared_structs() -> None:
    """The library's default params read back as the known 1.8.5 defaults."""
    ws.check_layout(ws.load_library())


def test_layout_self_check_refuses_a_wrong_offset() -> None:
    """A struct missing one field (every later offset wrong) is refused."""
    with pytest.raises(ws.BindingError, match="layout mismatch"):
        ws.check_layout(ws.load_library(), _struct_without("carry_initial_prompt"))


def test_layout_self_check_refuses_a_missing_tail_field() -> None:
    """A struct that is too short at the end is refused too."""
    with pytest.raises(ws.BindingError):
        ws.check_layout(ws.load_library(), _struct_without("vad_params"))


@pytest.mark.parametrize("strategy", [0, 1])
def test_defaults_match_pywhispercpp_field_for_field(strategy: int) -> None:
    """Every field pywhispercpp (compiled against whisper.h) exposes reads the same via ctypes."""
    import _pywhispercpp as pw

    theirs = pw.whisper_full_default_params(pw.whisper_sampling_strategy(strategy))
    ours = ws._copy_default_params(ws.load_library(), strategy)
    skipped = {
        "progress_callback",
        "prompt_tokens",
        "vad_params",
        "greedy",
        "beam_search",
        "language",
        "initial_prompt",
        "suppress_regex",
        "vad_model_path",
    }
    names = [
        n
        for n in dir(theirs)
        if not n.startswith("_")
        and n not in skipped
        and not callable(getattr(theirs, n))
        and hasattr(ours, n)
        and not n.endswith("user_data")
    ]
    assert len(names) >= 30
    for name in names:
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name)), name
    assert ours.greedy.best_of == theirs.greedy["best_of"]
    assert ours.beam_search.beam_size == theirs.beam_search["beam_size"]
    assert ours.language.decode() == theirs.language
    for name in (
        "threshold",
        "min_speech_duration_ms",
        "min_silence_duration_ms",
        "speech_pad_ms",
        "samples_overlap",
    ):
        assert getattr(ours.vad_params, name) == pytest.approx(getattr(theirs.vad_params, name))


def test_token_data_struct_size_matches_whisper_h() -> None:
    """whisper_token_data is 56 bytes (ids, four floats, three int64 times, vlen, padding)."""
    assert ctypes.sizeof(ws.WhisperTokenData) == 56


@pytest.mark.slow
def test_transcribes_speech(
    shared_backend: ws.SharedWhisperBackend, speech: tuple[np.ndarray, str]
) -> None:
    """The shared backend returns the spoken sentence."""
    audio, text = speech
    segments = shared_backend.transcribe(audio, InferenceRequest(n_threads=2))
    heard = normalise(" ".join(s.text for s in segments))
    assert heard == normalise(text)


@pytest.mark.slow
def test_reports_no_speech_probability(
    shared_backend: ws.SharedWhisperBackend, speech: tuple[np.ndarray, str]
) -> None:
    """Segments carry whisper's no-speech probability, low for clear speech."""
    segments = shared_backend.transcribe(speech[0], InferenceRequest(n_threads=2))
    assert segments and all(0.0 <= s.no_speech_prob < 0.5 for s in segments)


@pytest.mark.slow
def test_dtw_timestamps_keep_the_words_and_move_their_times(
    model_path: Path, shared_backend: ws.SharedWhisperBackend, speech: tuple[np.ndarray, str]
) -> None:
    """A backend loaded with DTW hears the same sentence; its word times come from t_dtw
    (they differ from the t0/t1 ones) and stay monotone inside the audio."""
    audio, text = speech
    request = InferenceRequest(n_threads=2)
    dtw = ws.SharedWhisperBackend(model_path, concurrency=1, n_threads=2, dtw=True)
    try:
        words = [w for s in dtw.transcribe(audio, request) for w in s.words]
    finally:
        dtw.close()
    plain = [w for s in shared_backend.transcribe(audio, request) for w in s.words]
    assert normalise(" ".join(w.text for w in words)) == normalise(text)
    assert [(w.start_ms, w.end_ms) for w in words] != [(w.start_ms, w.end_ms) for w in plain]
    ends = [w.end_ms for w in words]
    assert ends == sorted(ends) and ends[-1] <= len(audio) * 1000 // 16000


@pytest.mark.slow
def test_same_words_as_pywhispercpp(
    shared_backend: ws.SharedWhisperBackend, pwc_backend: object, speech: tuple[np.ndarray, str]
) -> None:
    """Both backends give the same words, times and probabilities on the same audio."""
    audio, _ = speech
    request = InferenceRequest(n_threads=2)
    ours = shared_backend.transcribe(audio, request)
    theirs = pwc_backend.transcribe(audio, request)  # type: ignore[attr-defined]
    assert [w for s in ours for w in s.words] == [w for s in theirs for w in s.words]


@pytest.mark.slow
def test_two_concurrent_calls_both_return_correct_text(
    model_path: Path, speech_pair: list[tuple[np.ndarray, str]]
) -> None:
    """Two threads on one context with two states each get their own clip's text."""
    backend = ws.SharedWhisperBackend(model_path, concurrency=2, n_threads=1)
    try:
        results: dict[int, str] = {}
        barrier = threading.Barrier(2)

        def run(i: int) -> None:
            barrier.wait()
            segs = backend.transcribe(speech_pair[i][0], InferenceRequest(n_threads=1))
            results[i] = " ".join(s.text for s in segs)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert {i: normalise(t) for i, t in results.items()} == {
            i: normalise(text) for i, (_, text) in enumerate(speech_pair)
        }
    finally:
        backend.close()


@pytest.mark.slow
def test_prompt_and_beam_do_not_leak_into_the_next_call(
    shared_backend: ws.SharedWhisperBackend, speech: tuple[np.ndarray, str]
) -> None:
    """A call with a prompt and beam search leaves the next default call unchanged."""
    audio, _ = speech
    plain = shared_backend.transcribe(audio, InferenceRequest(n_threads=2))
    shared_backend.transcribe(
        audio, InferenceRequest(n_threads=2, beam_size=3, prompt="Zebra xylophone quartz.")
    )
    assert shared_backend.transcribe(audio, InferenceRequest(n_threads=2)) == plain


@pytest.mark.slow
def test_missing_model_file_is_refused_before_loading(tmp_path: Path) -> None:
    """A path that does not exist raises FileNotFoundError (nothing is downloaded)."""
    with pytest.raises(FileNotFoundError):
        ws.SharedWhisperBackend(tmp_path / "ggml-nope.bin", concurrency=1, n_threads=1)
