#!/bin/sh
# OpenASR container entrypoint: one image, the role is the first argument.
#
#   server            daphne (python -m openasr_site.server); extra args are passed on
#   worker            inference worker (manage.py runworker asr.inference); needs REDIS_URL
#   migrate           manage.py migrate --noinput (run once per release, before the servers)
#   manage ARGS...    any manage.py command, e.g. `manage createsuperuser`
#   healthcheck       the image's HEALTHCHECK: /health for a server, the Redis heartbeat of
#                     this host's worker for a worker
#
# Runs under tini (PID 1) and `exec`s the role's process, so SIGTERM reaches Python directly
# (the server drains live sessions for WSS_SHUTDOWN_GRACE_S, see openasr_site/server.py).
# Works outside the image too (tests/deploy runs it): the app directory is this script's
# parent, Python is the first `python` on PATH (override with OPENASR_PYTHON).
set -eu

APP_DIR=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${OPENASR_PYTHON:-python}
ROLE_FILE=${OPENASR_ROLE_FILE:-/tmp/openasr-role}
# The heartbeat key prefix of transcription/inference/heartbeat.py (WORKER_KEY_PREFIX);
# tests/deploy checks that the two agree.
WORKER_KEY_PREFIX="openasr:worker:"

die() {
    echo "openasr-entrypoint: $*" >&2
    exit 64
}

usage() {
    die "usage: entrypoint.sh server [ARGS...] | worker | migrate | manage ARGS... | healthcheck"
}

# Refuse the example Secret's placeholders (k8s/secret.example.yaml): applying the example
# unchanged must not give a running cluster a publicly known key.
refuse_placeholders() {
    for name in DJANGO_SECRET_KEY WSS_API_KEY REDIS_URL DATABASE_URL; do
        eval "value=\${$name:-}"
        case "$value" in
            *CHANGE-ME*) die "$name still holds the example placeholder (CHANGE-ME): set a real value" ;;
        esac
    done
}

# Prometheus multiprocess mode keeps one file per process under PROMETHEUS_MULTIPROC_DIR (it
# must exist before the first metric is created). /tmp outlives a container restart in the same
# pod (emptyDir), so the long-running roles remove the previous process's files first; their
# counters would otherwise be added to the new ones. `migrate`/`manage` may run next to a live
# server (docker exec) and must not wipe its files.
prepare_metrics_dir() {
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
        mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        if [ "$1" = server ] || [ "$1" = worker ]; then
            find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
        fi
    fi
}

# An image built with MODEL=... names its model in models/IMAGE_MODEL (Dockerfile); it is the
# default unless WSS_MODEL or WHISPER_MODEL_PATH chooses another.
# An empty WSS_MODEL (compose passes one through) means "not set", not a model named "".
default_model() {
    if [ -z "${WSS_MODEL:-}" ]; then
        unset WSS_MODEL
        if [ -z "${WHISPER_MODEL_PATH:-}" ] && [ -f "$APP_DIR/models/IMAGE_MODEL" ]; then
            WSS_MODEL=$(cat "$APP_DIR/models/IMAGE_MODEL")
            export WSS_MODEL
        fi
    fi
}

# Without DATABASE_URL the API-key table is SQLite in OPENASR_VAR_DIR (/var/lib/openasr in the
# image, the one writable place besides /tmp: the app's own directory is on the read-only root
# filesystem), and the server migrates it before it starts, so the image alone serves with its
# embedded defaults. With DATABASE_URL set the `migrate` role owns the schema (run once per
# release); a server never migrates a shared database.
DEFAULT_SQLITE=false
default_database() {
    if [ -z "${DATABASE_URL:-}" ]; then
        var_dir=${OPENASR_VAR_DIR:-$APP_DIR/var}
        mkdir -p "$var_dir"
        DATABASE_URL="sqlite:///$var_dir/db.sqlite3"
        export DATABASE_URL
        DEFAULT_SQLITE=true
    fi
}

prepare() {
    refuse_placeholders
    prepare_metrics_dir "$1"
    default_model
    default_database
    if [ "$1" = server ] || [ "$1" = worker ]; then
        echo "$1" > "$ROLE_FILE" 2>/dev/null || true
    fi
    cd "$APP_DIR"
}

healthcheck() {
    role=$(cat "$ROLE_FILE" 2>/dev/null || echo server)
    case "$role" in
        server)
            exec "$PYTHON" - <<'EOF'
import os, sys, urllib.request
port = os.environ.get("WSS_PORT") or "9090"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except OSError as exc:
    print(f"/health: {exc}", file=sys.stderr)
    sys.exit(1)
EOF
            ;;
        worker)
            # the worker id starts with the host name (transcription/worker.py WORKER_ID)
            WORKER_KEY_PREFIX=$WORKER_KEY_PREFIX exec "$PYTHON" - <<'EOF'
import os, socket, sys
import redis
client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=3)
pattern = os.environ["WORKER_KEY_PREFIX"] + socket.gethostname() + "-*"
sys.exit(0 if next(iter(client.scan_iter(match=pattern, count=1000)), None) else 1)
EOF
            ;;
        *)
            exit 0
            ;;
    esac
}

[ $# -ge 1 ] || usage
role=$1
shift

case "$role" in
    server)
        prepare server
        # Every node must sign checkpoints with the same key, or a session cannot resume on
        # another node: with Redis (scale-out) a generated per-container key is refused.
        if [ -n "${REDIS_URL:-}" ] && [ -z "${DJANGO_SECRET_KEY:-}" ]; then
            die "DJANGO_SECRET_KEY must be set when REDIS_URL is set (all servers share it)"
        fi
        if [ "$DEFAULT_SQLITE" = true ]; then
            "$PYTHON" manage.py migrate --noinput -v 0 \
                || die "cannot migrate the default SQLite database in ${DATABASE_URL#sqlite:///}"
        fi
        exec "$PYTHON" -m openasr_site.server "$@"
        ;;
    worker)
        [ $# -eq 0 ] || usage
        prepare worker
        [ -n "${REDIS_URL:-}" ] || die "the worker role needs REDIS_URL (the channel layer)"
        exec "$PYTHON" manage.py runworker asr.inference
        ;;
    migrate)
        [ $# -eq 0 ] || usage
        prepare migrate
        exec "$PYTHON" manage.py migrate --noinput
        ;;
    manage)
        [ $# -ge 1 ] || usage
        prepare manage
        exec "$PYTHON" manage.py "$@"
        ;;
    healthcheck)
        healthcheck
        ;;
    *)
        usage
        ;;
esac
