"""The languages a session may ask for, and how ``"auto"`` settles on one (sans-IO).

The codes are Whisper's (``LANGUAGES`` in openai/whisper ``whisper/tokenizer.py``, the same list
and order as ``g_lang`` in whisper.cpp ``src/whisper.cpp``: a language's id there is its index
here). ``normalize_language`` is the one place a client's ``language`` becomes a code:
``speech.config``, the compatible APIs and ``WSS_LANGUAGE`` all go through it, so no code that
whisper.cpp would refuse ever reaches a worker (docs/PROTOCOL.md "speech.config").

``"auto"`` asks the worker to detect the language of a window (whisper.cpp's per-state language
detection). ``LanguageLock`` decides when the detections are clear enough to keep one language
for the rest of the session, so that later windows do not flip languages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AUTO = "auto"
ENGLISH = "en"
# What a session asks of the model: text in the language spoken, or English text of it
# (whisper.cpp's ``translate``; multilingual models only).
Task = Literal["transcribe", "translate"]
TRANSCRIBE: Task = "transcribe"
TRANSLATE: Task = "translate"

# Whisper's languages, in whisper.cpp's id order (en = 0 ... yue = 99).
LANGUAGES: tuple[tuple[str, str], ...] = (
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
)
CODES: frozenset[str] = frozenset(code for code, _ in LANGUAGES)
_BY_NAME: dict[str, str] = {name: code for code, name in LANGUAGES}

WHERE_CODES_COME_FROM = (
    "a Whisper language code (en, de, es, fr, ... as listed in openai/whisper "
    "whisper/tokenizer.py LANGUAGES), optionally with a region (en-US), its English name "
    "(german), or 'auto' to detect it"
)


class UnknownLanguage(ValueError):
    """A ``language`` value that is neither a Whisper language nor ``"auto"``."""


def normalize_language(value: str) -> str:
    """A client's language as the code a worker is given: ``"de-DE"`` → ``"de"``,
    ``"German"`` → ``"de"``, ``"AUTO"`` → ``"auto"``. Raises ``UnknownLanguage``."""
    text = value.strip().lower().replace("_", "-")
    if text == AUTO or text in CODES:
        return text
    if text in _BY_NAME:
        return _BY_NAME[text]
    primary = text.split("-", 1)[0]
    if "-" in text and primary in CODES:
        return primary  # a BCP 47 tag with a region or script: Whisper knows the language only
    raise UnknownLanguage(f"{value[:16]!r} is not {WHERE_CODES_COME_FROM}")


def needs_multilingual(code: str, task: Task = TRANSCRIBE) -> bool:
    """True when an English-only model cannot serve ``code`` (a normalised language) with
    ``task``: any language but English, and any translation (English-only models have no
    translate task: whisper.cpp ignores the flag for them)."""
    return code != ENGLISH or task == TRANSLATE


# --- "auto": from per-window detections to one language ---

# A detection this sure locks at once: on clear speech Whisper's top language takes > 0.9 of
# the probability mass within a few seconds; confusable pairs (es/pt, de/nl, no/nn) stay lower.
LOCK_MIN_PROBABILITY = 0.8
# Otherwise the language with the most probability summed over this many windows of speech is
# locked: a session never keeps detecting (each detection costs one more encoder pass).
LOCK_AFTER_WINDOWS = 3


@dataclass(frozen=True, slots=True)
class Detected:
    """The language one window was transcribed in, and how sure the detection was."""

    code: str
    probability: float


class LanguageLock:
    """The language of one session. A given language is fixed from the start; ``"auto"`` sends
    windows for detection (``request``) until ``observe`` has seen a clear detection, then keeps
    that language. Reports what it knows with ``current``."""

    def __init__(self, requested: str, *, resumed: Detected | None = None) -> None:
        self.requested = requested
        self.locked: Detected | None = None
        if requested != AUTO:
            self.locked = Detected(requested, 1.0)
        elif resumed is not None and resumed.code in CODES:
            self.locked = resumed  # a resumed session keeps the language it detected
        self.last: Detected | None = None
        self._mass: dict[str, float] = {}
        self._windows = 0

    @property
    def detecting(self) -> bool:
        return self.locked is None

    @property
    def request(self) -> str:
        """The language a window is sent with: the locked code, or ``"auto"``."""
        return self.locked.code if self.locked else AUTO

    @property
    def current(self) -> Detected | None:
        """The locked language, else the last window's detection (None before any)."""
        return self.locked or self.last

    def fields(self, known: Detected | None) -> dict[str, str | float]:
        """``language`` (and for a detected one ``language_probability``) of a phrase or a
        checkpoint: extra fields, none while an ``auto`` session has detected nothing."""
        if known is None:
            return {}
        if self.requested != AUTO:
            return {"language": known.code}
        return {"language": known.code, "language_probability": round(known.probability, 4)}

    def observe(self, code: str, probability: float) -> None:
        """Called with each window's result; ``code`` is empty when the worker detected
        nothing (a window transcribed in the language it was given)."""
        if self.locked is not None or code not in CODES:
            return
        probability = min(1.0, max(0.0, probability))
        self.last = Detected(code, probability)
        self._windows += 1
        self._mass[code] = self._mass.get(code, 0.0) + probability
        if probability >= LOCK_MIN_PROBABILITY:
            self.locked = self.last
        elif self._windows >= LOCK_AFTER_WINDOWS:
            best = max(self._mass, key=lambda c: self._mass[c])
            self.locked = Detected(best, self._mass[best] / self._windows)
