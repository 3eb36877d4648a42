"""Django settings for OpenASR. Server behaviour lives in ``openasr_site.config`` (read once)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from openasr_site.config import BASE_DIR, ConfigError, load_config
from transcription.redis_pool import channel_layer_host

# whisper.cpp's OpenMP threads spin while waiting by default; with more busy threads than cores
# (2 inference threads next to daphne, a second worker, ...) one window then takes 10-20x longer.
# Must be set before libgomp loads (first pywhispercpp import), i.e. here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    OPENASR = load_config()
except ConfigError as exc:  # fail at start-up, naming the variable
    sys.stderr.write(f"openasr: configuration error: {exc}\n")
    raise SystemExit(2) from None


DEFAULT_ALLOWED_HOSTS = "localhost,127.0.0.1,[::1]"


def _csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def read_or_create_secret(path: Path) -> str:
    """The secret kept in ``path``, created on first use, readable by this user only.

    The new file is written under a unique temporary name opened with ``O_CREAT | O_EXCL`` and
    mode 0600 (so it is never readable by others, whatever the umask), then hard-linked to
    ``path``: ``link`` never replaces an existing file, so when two processes start at once the
    loser reads the winner's complete file and both use the same key.
    """
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        pass
    else:
        if not key:
            raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new secret")
        if path.stat().st_mode & 0o077:  # written by an older version before its chmod
            os.chmod(path, 0o600)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text().strip()  # another process won the race: use its key
        except OSError:
            # A filesystem without hard links: replace (atomic, but a racing process may have
            # read the key this overwrites; re-read so this process uses what is on disk).
            os.replace(tmp, path)
            return path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return key


# DJANGO_SECRET_KEY, or a per-checkout key kept in var/ so dev restarts keep checkpoints and API
# keys valid.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip() or read_or_create_secret(
    Path(os.environ.get("OPENASR_VAR_DIR", BASE_DIR / "var")) / "secret_key"
)
# Old secrets still accepted while verifying (API-key digests, checkpoint signatures, Django's
# own sessions and tokens); everything new is made with SECRET_KEY.
SECRET_KEY_FALLBACKS = _csv(os.environ.get("DJANGO_SECRET_KEY_FALLBACKS", ""))
DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() in {"1", "true", "yes"}
# Hosts this server answers, HTTP and WebSocket (transcription/auth/middleware.py): never "*"
# by default, or a DNS-rebinding page could reach a developer's server as "its own host".
ALLOWED_HOSTS = _csv(os.environ.get("DJANGO_ALLOWED_HOSTS") or DEFAULT_ALLOWED_HOSTS)

INSTALLED_APPS = [
    # ours first: transcription's runworker overrides channels' (bounded prefetch)
    "transcription",
    "health",
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_prometheus",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "openasr_site.urls"
ASGI_APPLICATION = "openasr_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    )
}

if OPENASR.redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's 5 s default read timeout equals channels_redis's blocking receive
                # timeout, so an idle worker would die; a value in the URL still wins. With
                # REDIS_SENTINELS, the master the Sentinels name (channels_redis's Sentinel
                # support), followed across failovers.
                "hosts": [channel_layer_host(OPENASR, socket_timeout_s=15)],
                # windows are up to 60 s of int16 audio (~1.9 MB); results must not expire
                # while a busy worker drains the queue
                "capacity": 500,
                "expiry": 120,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 500, "expiry": 120},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

from openasr_site.logconfig import build_logging_config  # noqa: E402

LOGGING_CONFIG = None
LOGGING = build_logging_config(OPENASR.log_level, OPENASR.log_format)
import logging.config  # noqa: E402

logging.config.dictConfig(LOGGING)
