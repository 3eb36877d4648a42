"""Server configuration: read once from the environment and ``server.toml``, validated, typed.

Every setting has one entry in ``SETTINGS``: its environment variable (the C++ seed's names where
the seed has one), its place in ``server.toml`` (``WSS_CONFIG_PATH``), its parser, default and
meaning. Environment variables win over the file. ``load_config`` turns them into one frozen
``ServerConfig`` with a typed field per setting (``settings.OPENASR``). A bad value stops
start-up with a message that names the variable and what it accepts (``ConfigError``), and so
does a combination of settings the server cannot run with (``ServerConfig.__post_init__``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin, get_type_hints

from transcription.languages import UnknownLanguage, normalize_language

BASE_DIR = Path(__file__).resolve().parent.parent

# A static key is compared as sent: make guessing it as hopeless as guessing a database key's
# 256-bit secret (32 hex characters are 128 bits, the least we accept).
API_KEY_MIN_CHARS = 32

LogLevel = Literal["trace", "debug", "info", "warn", "warning", "error"]
LogFormat = Literal["text", "json"]
Backend = Literal["shared", "pywhispercpp", "fake"]
AudioCtx = Literal["auto", "full"]
Prompt = Literal["none", "transcript"]
Vad = Literal["silero", "energy", "off"]
StreamingPolicy = Literal["windowed", "local_agreement"]

T = TypeVar("T")


class ConfigError(Exception):
    """A setting has a value the server cannot run with; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} has value {raw!r}: not a valid bool (use true or false)")


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} has value {raw!r}: not an integer") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise ConfigError(f"{name} has value {value}: must be an integer {bounds}")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} has value {raw!r}: not a number") from None
        if not lo <= value <= hi:  # also refuses nan
            raise ConfigError(f"{name} has value {value}: must be between {lo:g} and {hi:g}")
        return value

    return parse


def _choice(literal: Any) -> Callable[[str, str], str]:
    """A parser for one of the strings of a ``Literal`` type (the type is the one list)."""
    choices: tuple[str, ...] = get_args(literal)

    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} has value {raw!r}: must be one of {', '.join(choices)}")
        return value

    return parse


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _language(name: str, raw: str) -> str:
    try:
        return normalize_language(raw)
    except UnknownLanguage as exc:
        raise ConfigError(f"{name} has value {raw!r}: {exc}") from None


def _list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _host_ports(name: str, raw: str) -> tuple[str, ...]:
    """``host:port`` items, comma separated; each port between 1 and 65535."""
    items = _list(name, raw)
    for item in items:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"{name} has item {item!r}: must be host:port (port 1-65535)")
    return items


def _api_key(name: str, raw: str) -> str:
    """The static key: empty (none) or at least ``API_KEY_MIN_CHARS`` characters. The message
    never repeats the value: it is a secret even when it is a bad one."""
    key = raw.strip()
    if key and len(key) < API_KEY_MIN_CHARS:
        raise ConfigError(
            f"{name} is {len(key)} characters long: a static API key must be at least "
            f"{API_KEY_MIN_CHARS} (generate one with `openssl rand -hex 32`), or empty for none"
        )
    return key


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One configuration knob: env name, attribute, parser, default, ``server.toml`` place."""

    env: str
    attr: str
    parse: Callable[[str, str], T]
    default: str
    toml: tuple[str, str] | None = None
    doc: str = ""


SETTINGS: tuple[Setting[Any], ...] = (
    # --- the C++ seed's variables, with the seed's defaults ---
    Setting(
        "WHISPER_MODEL_PATH",
        "model_path",
        _str,
        "",
        ("model", "path"),
        "GGML model file; wins over WSS_MODEL. Empty: models/ggml-<WSS_MODEL>.bin",
    ),
    Setting(
        "WSS_API_KEY",
        "api_key",
        _api_key,
        "",
        ("auth", "api_key"),
        f"Static API key accepted besides database keys, at least {API_KEY_MIN_CHARS} characters "
        "(empty: none)",
    ),
    Setting("WSS_PORT", "port", _int(1, 65535), "9090", ("server", "port"), "Listen port"),
    Setting("WSS_HOST", "host", _str, "0.0.0.0", ("server", "host"), "Bind address"),
    Setting(
        "WSS_MAX_SESSIONS",
        "max_sessions",
        _int(1, 100000),
        "20",
        ("server", "max_sessions"),
        "Concurrent transcription sessions per node",
    ),
    Setting(
        "WSS_LANGUAGE",
        "language",
        _language,
        "en",
        ("inference", "language"),
        "Default language: a Whisper language code, or auto (detect it; multilingual models)",
    ),
    Setting(
        "WSS_BEAM_SIZE",
        "beam_size",
        _int(1, 16),
        "1",
        ("inference", "beam_size"),
        "Whisper beam size (1 = greedy: on our corpus as good as 5 and half the cost)",
    ),
    Setting(
        "WSS_INFERENCE_THREADS",
        "inference_threads",
        _int(1, 256),
        "4",
        ("inference", "threads"),
        "Threads per inference (capped at the CPU count)",
    ),
    Setting(
        "WSS_WINDOW_DURATION_MS",
        "window_ms",
        _int(1000, 60000),
        "20000",
        ("audio", "window_duration_ms"),
        "Default window",
    ),
    Setting(
        "WSS_OVERLAP_DURATION_MS",
        "overlap_ms",
        _int(0, 59999),
        "2000",
        ("audio", "overlap_duration_ms"),
        "Default window overlap",
    ),
    Setting(
        "WSS_LOG_LEVEL",
        "log_level",
        _choice(LogLevel),
        "info",
        ("logging", "level"),
        "Log level",
    ),
    Setting(
        "WSS_LOG_FORMAT",
        "log_format",
        _choice(LogFormat),
        "text",
        ("logging", "format"),
        "text or json (one object per line)",
    ),
    # --- ours ---
    Setting(
        "WSS_MODEL",
        "model_name",
        _str,
        "tiny.en",
        ("model", "name"),
        "Bundled model to use when WHISPER_MODEL_PATH is empty (tiny.en, base): the default "
        "model, and the one a worker serves",
    ),
    Setting(
        "WSS_MODELS",
        "models",
        _list,
        "",
        ("model", "served"),
        "More bundled models this deployment serves, one worker pool each, picked by a "
        "session's model_id (comma separated). Empty: with REDIS_URL the default model only; "
        "without, every bundled model installed in models/",
    ),
    Setting(
        "WSS_REQUIRE_AUTH",
        "require_auth",
        _bool,
        "false",
        ("auth", "require"),
        "Refuse to start without any API key",
    ),
    Setting(
        "WSS_TRUSTED_PROXIES",
        "trusted_proxies",
        _list,
        "",
        ("auth", "trusted_proxies"),
        "Addresses whose X-Forwarded-For is believed (comma separated)",
    ),
    Setting(
        "WSS_ALLOWED_ORIGINS",
        "allowed_origins",
        _list,
        "",
        ("auth", "allowed_origins"),
        "Browser origins allowed to open a WebSocket (empty: same host only)",
    ),
    Setting(
        "WSS_AUTH_FAILURE_LIMIT",
        "auth_failure_limit",
        _int(1),
        "10",
        ("auth", "failure_limit"),
        "Auth failures per IP per window before HTTP 429",
    ),
    Setting(
        "WSS_AUTH_FAILURE_WINDOW_S",
        "auth_failure_window_s",
        _int(1),
        "60",
        ("auth", "failure_window_s"),
        "Window of the auth failure limit",
    ),
    Setting(
        "WSS_API_KEY_CACHE_S",
        "api_key_cache_s",
        _float(0, 60),
        "2",
        ("auth", "key_cache_s"),
        "How long a database key lookup is cached: a revoked or expired key is refused, and its "
        "live sessions end, within this time",
    ),
    Setting(
        "WSS_KEY_ROTATION_GRACE_S",
        "key_rotation_grace_s",
        _int(0),
        "86400",
        ("auth", "key_rotation_grace_s"),
        "How long a rotated API key keeps working next to its replacement",
    ),
    Setting(
        "WSS_MAX_CONNECTIONS",
        "max_connections",
        _int(1),
        "100",
        ("server", "max_connections"),
        "Open WebSocket connections per node",
    ),
    Setting(
        "WSS_MAX_FRAME_BYTES",
        "max_frame_bytes",
        _int(1024),
        str(16 * 1024 * 1024),
        ("server", "max_frame_bytes"),
        "Largest WebSocket frame (close 1009 beyond)",
    ),
    Setting(
        "WSS_IDLE_TIMEOUT_S",
        "idle_timeout_s",
        _int(1),
        "120",
        ("server", "idle_timeout_s"),
        "Close a connection silent for this long",
    ),
    Setting(
        "WSS_MAX_TRANSCRIPT_BYTES",
        "max_transcript_bytes",
        _int(1024),
        str(1024 * 1024),
        ("server", "max_transcript_bytes"),
        "Transcript cap per session",
    ),
    Setting(
        "WSS_MAX_SESSION_S",
        "max_session_s",
        _int(1),
        "7200",
        ("server", "max_session_s"),
        "Session duration cap (audio time)",
    ),
    Setting(
        "WSS_AUDIO_BUFFER_MS",
        "audio_buffer_ms",
        _int(1000, 600000),
        "30000",
        ("audio", "buffer_ms"),
        "Audio waiting for transcription per session",
    ),
    Setting(
        "WSS_MAX_MESSAGES_PER_S",
        "max_messages_per_s",
        _int(1),
        "1000",
        ("server", "max_messages_per_s"),
        "Per-session message rate limit",
    ),
    Setting(
        "WSS_MAX_AUDIO_BYTES_PER_S",
        "max_audio_bytes_per_s",
        _int(1000),
        "2000000",
        ("server", "max_audio_bytes_per_s"),
        "Per-session audio byte rate limit",
    ),
    Setting(
        "WSS_CONFIG_TIMEOUT_S",
        "config_timeout_s",
        _int(1),
        "10",
        ("server", "config_timeout_s"),
        "Close a connection that sends no speech.config this long after connecting (4008)",
    ),
    Setting(
        "WSS_MAX_CONNECTIONS_PER_KEY",
        "max_connections_per_key",
        _int(0),
        "50",
        ("server", "max_connections_per_key"),
        "Open WebSocket connections per API key per node, HTTP 429 beyond (0: no cap)",
    ),
    Setting(
        "WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN",
        "max_new_sessions_per_key_per_min",
        _int(0),
        "120",
        ("server", "max_new_sessions_per_key_per_min"),
        "Session starts (resumes included) per API key per minute, counted across nodes in "
        "Redis; RATE_LIMITED beyond (0: off)",
    ),
    Setting(
        "WSS_MAX_AUDIO_SPEED",
        "max_audio_speed",
        _float(1, 1000),
        "100",
        ("server", "max_audio_speed"),
        "Times real time a client may send audio after a burst of 60 s (beyond: RATE_LIMITED)",
    ),
    Setting(
        "WSS_MAX_OUTGOING_BYTES",
        "max_outgoing_bytes",
        _int(65536),
        str(8 * 1024 * 1024),
        ("server", "max_outgoing_bytes"),
        "Unsent event bytes per connection before it is closed with 1008 (client not reading)",
    ),
    Setting(
        "WSS_MAX_UPLOAD_BYTES",
        "max_upload_bytes",
        _int(1024),
        str(25 * 1024 * 1024),
        ("server", "max_upload_bytes"),
        "Largest file POST /v1/audio/transcriptions accepts (HTTP 413 beyond; OpenAI's 25 MB)",
    ),
    Setting(
        "WSS_MAX_UPLOAD_S",
        "max_upload_s",
        _int(1),
        "3600",
        ("server", "max_upload_s"),
        "Longest audio POST /v1/audio/transcriptions transcribes (HTTP 413 beyond)",
    ),
    Setting(
        "WSS_BACKEND",
        "backend",
        _choice(Backend),
        "shared",
        ("inference", "backend"),
        "shared = one model copy for all contexts",
    ),
    Setting(
        "WSS_WORKER_CONCURRENCY",
        "worker_concurrency",
        _int(1, 64),
        "1",
        ("inference", "worker_concurrency"),
        "Inferences a worker runs at once",
    ),
    Setting(
        "WSS_ADMISSION_HEADROOM",
        "admission_headroom",
        _float(0, 1),
        "0.9",
        ("inference", "admission_headroom"),
        "Refuse sessions beyond this share of measured worker capacity (0: off)",
    ),
    Setting(
        "WSS_AUDIO_CTX",
        "audio_ctx",
        _choice(AudioCtx),
        "auto",
        ("inference", "audio_ctx"),
        "auto: windows of English-only models encode the audio present plus padding silence "
        "(about 4x faster; multilingual models keep full); full: the padded 30 s window "
        "Whisper was trained on",
    ),
    Setting(
        "WSS_DTW_TIMESTAMPS",
        "dtw_timestamps",
        _bool,
        "false",
        ("inference", "dtw_timestamps"),
        "true: word times from whisper.cpp's DTW token timestamps (alignment heads of the model; "
        "turns flash attention off); false: from its token timestamps t0/t1",
    ),
    Setting(
        "WSS_PROMPT",
        "prompt",
        _choice(Prompt),
        "none",
        ("inference", "prompt"),
        "transcript: condition each window on the committed tail of the transcript (Whisper's "
        "prompt); none: every window is heard on its own (measured better: base 4.2 % vs 5.8 % "
        "WER at 5 s windows, 4.6 % vs 12.1 % at 2 s; tiny.en within one or two words)",
    ),
    Setting(
        "WSS_INTERIM_MS",
        "interim_ms",
        _int(0, 60000),
        "1000",
        ("inference", "interim_ms"),
        "Interim passes: while a live session waits for its next window, the audio since its "
        "last window is heard every this much new speech for speech.hypothesis only (commits "
        "nothing; run only by an idle worker slot, dropped after 1.5 s unheard); 0: off",
    ),
    Setting(
        "WSS_INFERENCE_TIMEOUT_S",
        "inference_timeout_s",
        _float(1, 600),
        "30",
        ("inference", "timeout_s"),
        "Longest wait for a window's result before it is re-sent (once inference times are "
        "measured the wait is 3x the measured time, at least 3 s; a dead worker's window is "
        "re-sent as soon as its heartbeat stops)",
    ),
    Setting(
        "WSS_INFERENCE_RETRIES",
        "inference_retries",
        _int(0, 10),
        "2",
        ("inference", "retries"),
        "Re-sends of one window before giving up",
    ),
    Setting(
        "WSS_VAD",
        "vad",
        _choice(Vad),
        "silero",
        ("audio", "vad"),
        "Speech gate",
    ),
    Setting(
        "WSS_VAD_THRESHOLD",
        "vad_threshold",
        _float(0, 1),
        "0.5",
        ("audio", "vad_threshold"),
        "Speech probability threshold",
    ),
    Setting(
        "WSS_STREAMING_POLICY",
        "streaming_policy",
        _choice(StreamingPolicy),
        "windowed",
        ("audio", "streaming_policy"),
        "How windows are chosen and merged",
    ),
    Setting(
        "WSS_CHECKPOINT_TTL_S",
        "checkpoint_ttl_s",
        _int(60),
        "86400",
        ("checkpoints", "ttl_s"),
        "How long checkpoints stay resumable",
    ),
    Setting(
        "WSS_ACCEPT_UNSIGNED_CHECKPOINTS",
        "accept_unsigned_checkpoints",
        _bool,
        "false",
        ("checkpoints", "accept_unsigned"),
        "Accept C++-server checkpoints (no signature)",
    ),
    Setting(
        "WSS_SHUTDOWN_GRACE_S",
        "shutdown_grace_s",
        _float(0, 600),
        "25",
        ("server", "shutdown_grace_s"),
        "Time to finish live sessions on SIGTERM",
    ),
    Setting(
        "WSS_FAKE_BACKEND_RTF",
        "fake_backend_rtf",
        _float(0, 100),
        "0.05",
        ("inference", "fake_rtf"),
        "Test only: speed of WSS_BACKEND=fake (seconds per audio second)",
    ),
    Setting(
        "WSS_FAKE_BACKEND_FAIL",
        "fake_backend_fail",
        _bool,
        "false",
        ("inference", "fake_fail"),
        "Test only: WSS_BACKEND=fake raises on every window (a failing worker)",
    ),
    Setting(
        "REDIS_URL",
        "redis_url",
        _str,
        "",
        ("redis", "url"),
        "Redis for channel layer, checkpoints, rate limits; empty: in-process",
    ),
    Setting(
        "REDIS_SENTINELS",
        "redis_sentinels",
        _host_ports,
        "",
        ("redis", "sentinels"),
        "Redis Sentinel addresses (host:port, comma separated): the master is found through "
        "them and followed across failovers; REDIS_URL then gives only the password and "
        "database. Empty: REDIS_URL's host is used",
    ),
    Setting(
        "REDIS_SENTINEL_MASTER",
        "redis_sentinel_master",
        _str,
        "mymaster",
        ("redis", "sentinel_master"),
        "Name of the master the Sentinels monitor",
    ),
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The validated configuration of this process, ``settings.OPENASR`` (meaning of each field:
    ``SETTINGS``). Built by ``load_config``; tests derive variants with ``dataclasses.replace``,
    which validates them the same way."""

    # --- the C++ seed's variables ---
    model_path: str
    api_key: str = field(repr=False)  # a secret: never in a repr or a log line
    port: int
    host: str
    max_sessions: int
    language: str
    beam_size: int
    inference_threads: int
    window_ms: int
    overlap_ms: int
    log_level: LogLevel
    log_format: LogFormat
    # --- ours ---
    model_name: str
    models: tuple[str, ...]
    require_auth: bool
    trusted_proxies: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    auth_failure_limit: int
    auth_failure_window_s: int
    api_key_cache_s: float
    key_rotation_grace_s: int
    max_connections: int
    max_frame_bytes: int
    idle_timeout_s: int
    max_transcript_bytes: int
    max_session_s: int
    audio_buffer_ms: int
    max_messages_per_s: int
    max_audio_bytes_per_s: int
    config_timeout_s: int
    max_connections_per_key: int
    max_new_sessions_per_key_per_min: int
    max_audio_speed: float
    max_outgoing_bytes: int
    max_upload_bytes: int
    max_upload_s: int
    backend: Backend
    worker_concurrency: int
    admission_headroom: float
    audio_ctx: AudioCtx
    dtw_timestamps: bool
    prompt: Prompt
    interim_ms: int
    inference_timeout_s: float
    inference_retries: int
    vad: Vad
    vad_threshold: float
    streaming_policy: StreamingPolicy
    checkpoint_ttl_s: int
    accept_unsigned_checkpoints: bool
    shutdown_grace_s: float
    fake_backend_rtf: float
    fake_backend_fail: bool
    redis_url: str = field(repr=False)  # may carry the Redis password
    redis_sentinels: tuple[str, ...]
    redis_sentinel_master: str

    def __post_init__(self) -> None:
        """Called on every construction: each field has its declared type, and settings that
        depend on each other agree (the error names the variables)."""
        _check_types(self)
        if self.overlap_ms >= self.window_ms:
            raise ConfigError(
                "WSS_OVERLAP_DURATION_MS must be smaller than WSS_WINDOW_DURATION_MS "
                f"({self.overlap_ms} >= {self.window_ms})"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            # the value is not echoed: a URL may carry a password
            raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.redis_sentinels and not self.redis_url.startswith("redis://"):
            raise ConfigError(
                "REDIS_SENTINELS needs REDIS_URL set to a redis:// URL (its password and "
                "database are used for the master the Sentinels name)"
            )
        if self.redis_sentinels and not self.redis_sentinel_master:
            raise ConfigError("REDIS_SENTINEL_MASTER must not be empty with REDIS_SENTINELS")

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``REDIS_SENTINELS`` as (host, port) pairs (empty without Sentinel)."""
        pairs = (item.rpartition(":") for item in self.redis_sentinels)
        return [(host.strip("[]"), int(port)) for host, _, port in pairs]

    @property
    def effective_threads(self) -> int:
        """Threads per inference: more than the CPUs only slows whisper.cpp down."""
        return max(1, min(self.inference_threads, os.cpu_count() or 1))


@cache
def _field_types() -> dict[str, Any]:
    return get_type_hints(ServerConfig)


def _check_types(config: ServerConfig) -> None:
    """Fail loudly when a field does not hold its declared type (a parser or a test that built
    a config by hand got it wrong): the typed object must not lie to mypy's readers."""
    for name, declared in _field_types().items():
        value = getattr(config, name)
        if get_origin(declared) is Literal:
            ok = value in get_args(declared)
        elif get_origin(declared) is tuple:
            ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        elif declared is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif declared is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, declared)
        if not ok:
            raise ConfigError(f"setting {name} has value {value!r}: not a {declared}")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"WSS_CONFIG_PATH: {path} is not valid TOML: {exc}") from None


def _raw_from_toml(found: object) -> str:
    """A ``server.toml`` value as the string the environment would hold."""
    if isinstance(found, bool):
        return str(found).lower()
    if isinstance(found, list):
        return ",".join(str(item) for item in found)
    return str(found)


def load_config(environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read every setting (env over ``server.toml`` over default) and check invariants.
    Called once per process, by ``openasr_site.settings``."""
    env = os.environ if environ is None else environ
    config_path = env.get("WSS_CONFIG_PATH", "config/server.toml")
    path = Path(config_path)
    if not path.is_absolute():
        path = BASE_DIR / path
    file_values: dict[str, Any] = {}
    if path.is_file():
        file_values = _load_toml(path)
    elif "WSS_CONFIG_PATH" in env:
        raise ConfigError(f"WSS_CONFIG_PATH: {config_path} does not exist")

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw: str | None = env.get(setting.env)
        if raw is None and setting.toml is not None:
            section, key = setting.toml
            table = file_values.get(section)
            found = table.get(key) if isinstance(table, dict) else None
            if found is not None:
                raw = _raw_from_toml(found)
        values[setting.attr] = setting.parse(setting.env, setting.default if raw is None else raw)
    return ServerConfig(**values)


# One field per setting, one setting per field: a new setting cannot be half added.
if {s.attr for s in SETTINGS} != {f.name for f in fields(ServerConfig)}:  # pragma: no cover
    raise RuntimeError("openasr_site.config: SETTINGS and ServerConfig fields differ")
