"""``transcription/languages.py``: Whisper's language codes and the "auto" lock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcription.languages import (
    AUTO,
    CODES,
    LANGUAGES,
    LOCK_AFTER_WINDOWS,
    Detected,
    LanguageLock,
    UnknownLanguage,
    normalize_language,
)


def test_the_list_is_whisper_cpps_in_id_order() -> None:
    """Every code is whisper.cpp's, at its id (whisper_lang_str(i) == LANGUAGES[i])."""
    pw = pytest.importorskip("_pywhispercpp")
    assert pw.whisper_lang_max_id() + 1 == len(LANGUAGES) == len(CODES)
    assert [pw.whisper_lang_str(i) for i in range(len(LANGUAGES))] == [c for c, _ in LANGUAGES]


@given(st.text(max_size=20))
def test_any_string_is_a_code_auto_or_refused(text: str) -> None:
    """normalize_language never returns anything but a Whisper code or "auto"."""
    try:
        code = normalize_language(text)
    except UnknownLanguage:
        return
    assert code in CODES or code == AUTO


def test_a_given_language_is_locked_from_the_start() -> None:
    """language "de": every window is sent as "de"; detections change nothing."""
    lock = LanguageLock("de")
    lock.observe("fr", 0.99)
    assert (lock.request, lock.current) == ("de", Detected("de", 1.0))


def test_auto_locks_on_the_first_clear_detection() -> None:
    """A window detected with p >= 0.8 locks its language; later windows are sent with it."""
    lock = LanguageLock(AUTO)
    assert lock.request == AUTO and lock.current is None
    lock.observe("es", 0.55)
    assert lock.detecting and lock.current == Detected("es", 0.55)
    lock.observe("es", 0.93)
    lock.observe("pt", 0.99)
    assert (lock.request, lock.current) == ("es", Detected("es", 0.93))


def test_auto_locks_the_most_likely_language_after_a_few_unclear_windows() -> None:
    """No clear window: after LOCK_AFTER_WINDOWS the language with the most mass is locked."""
    lock = LanguageLock(AUTO)
    for code, p in [("es", 0.6), ("pt", 0.7), ("es", 0.6)][:LOCK_AFTER_WINDOWS]:
        lock.observe(code, p)
    assert lock.request == "es"
    assert lock.current == Detected("es", pytest.approx(1.2 / LOCK_AFTER_WINDOWS))


def test_a_window_without_a_detection_does_not_count() -> None:
    """An empty code (no detection reported) leaves the lock detecting."""
    lock = LanguageLock(AUTO)
    for _ in range(LOCK_AFTER_WINDOWS + 1):
        lock.observe("", 0.0)
    assert lock.detecting


def test_a_resumed_session_keeps_its_language() -> None:
    """auto with the checkpoint's detected language starts locked on it."""
    lock = LanguageLock(AUTO, resumed=Detected("fr", 0.97))
    assert (lock.request, lock.current) == ("fr", Detected("fr", 0.97))
