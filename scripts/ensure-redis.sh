#!/usr/bin/env bash
# Print the Redis URL the tests use, starting the suite's own private redis-server if needed.
#
#   REDIS_TEST_URL=$(PY=.venv/bin/python scripts/ensure-redis.sh)   # what `make test` runs
#   scripts/ensure-redis.sh stop                                     # stop it, delete its files
#
# - REDIS_TEST_URL already set (the user chose a Redis): printed unchanged. The tests never flush
#   a Redis they did not start (tests/support/redisdb.py), unless REDIS_TEST_FLUSH=1 says so.
# - Otherwise: a private redis-server on 127.0.0.1, on a free port, in a temporary directory of
#   its own, without persistence. It keeps running after the tests so the next run reuses it
#   (a few MB of memory); `stop` ends it. Never the Redis on :6379 or any other one: a
#   developer's data there must survive `make test`.
#
# The state file records the server's pid, port, directory and INFO run_id (random per server
# start). The run_id is what makes a Redis "ours": the tests flush a database only when the
# server answering at REDIS_TEST_URL reports the run_id recorded here.
set -euo pipefail

PY=${PY:-.venv/bin/python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR="$ROOT/.make"
STATE="$STATE_DIR/test-redis.env"
LOCK="$STATE_DIR/test-redis.lock"

# run_id of the Redis at $1, or nothing when it does not answer.
run_id() {
  "$PY" - "$1" 2>/dev/null <<'EOF' || true
import sys, redis
print(redis.Redis.from_url(sys.argv[1], socket_timeout=1).info("server")["run_id"])
EOF
}

# Load a state file's PORT, PID, DIR, RUN_ID (empty when absent).
load_state() {
  PORT="" PID="" DIR="" RUN_ID=""
  if [ -f "${1:-$STATE}" ]; then
    # shellcheck disable=SC1090
    . "${1:-$STATE}"
  fi
}

# True when the recorded server is alive and is the very server recorded (not a reused port).
ours_alive() {
  [ -n "$PORT" ] && [ -n "$RUN_ID" ] && kill -0 "$PID" 2>/dev/null &&
    [ "$(run_id "redis://127.0.0.1:$PORT/0")" = "$RUN_ID" ]
}

# Remove what a previous private server left behind (its temporary directory, the state file).
forget() {
  case "$DIR" in
    "${TMPDIR:-/tmp}"/openasr-test-redis.*) rm -rf -- "$DIR" ;;
  esac
  rm -f -- "$STATE"
}

stop() {
  load_state
  if ours_alive; then
    "$PY" -c "import sys, redis; redis.Redis.from_url(sys.argv[1]).shutdown(nosave=True)" \
      "redis://127.0.0.1:$PORT/0" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  fi
  forget
}

# The state file is gone (`make clean`) but this tree's server may still run: each server's
# directory names its tree in `owner`. Adopt a live one; delete the directories of dead ones.
adopt() {
  local dir
  for dir in "${TMPDIR:-/tmp}"/openasr-test-redis.*; do
    [ -f "$dir/owner" ] && [ "$(cat "$dir/owner")" = "$ROOT" ] || continue
    load_state "$dir/state.env"
    if ours_alive; then
      cp "$dir/state.env" "$STATE"
      return 0
    fi
    rm -rf -- "$dir"
  done
  return 1
}

start() {
  local dir port pid id
  dir=$(mktemp -d "${TMPDIR:-/tmp}/openasr-test-redis.XXXXXX")
  # 9>&-: the daemon must not inherit the lock, or the next run would wait for it forever.
  for _ in 1 2 3; do # the free port may be taken between the probe and redis-server's bind
    port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    if redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 9>&-; then
      for _ in $(seq 50); do
        id=$(run_id "redis://127.0.0.1:$port/0")
        [ -n "$id" ] && [ -s "$dir/redis.pid" ] && break
        sleep 0.1
      done
      if [ -n "$id" ]; then
        pid=$(cat "$dir/redis.pid")
        printf 'PORT=%s\nPID=%s\nDIR=%s\nRUN_ID=%s\n' "$port" "$pid" "$dir" "$id" >"$dir/state.env"
        echo "$ROOT" >"$dir/owner"
        cp "$dir/state.env" "$STATE"
        return 0
      fi
    fi
  done
  echo "ensure-redis: could not start redis-server (log: $dir/redis.log)" >&2
  exit 1
}

if [ "${1:-}" != "stop" ] && [ -n "${REDIS_TEST_URL:-}" ]; then
  echo "$REDIS_TEST_URL"
  exit 0
fi

mkdir -p "$STATE_DIR"
exec 9>"$LOCK"
flock 9 # concurrent runs in one tree share one server instead of racing to start two

if [ "${1:-}" = "stop" ]; then
  stop
  exit 0
fi

load_state
if ! ours_alive; then
  forget
  adopt || start
  load_state
fi
echo "redis://127.0.0.1:$PORT/0"
