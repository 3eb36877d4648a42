#!/usr/bin/env bash
# Print a Redis URL for the tests: the local Redis on 6379 if it answers, else start a private
# redis-server on a free port (it stops with the machine; data is not persisted).
set -euo pipefail
PY=${PY:-.venv/bin/python}
ping() { "$PY" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()" "$1" 2>/dev/null; }
if ping redis://127.0.0.1:6379/0; then echo "redis://127.0.0.1:6379/0"; exit 0; fi
mkdir -p .make
if [ -f .make/redis.port ] && ping "redis://127.0.0.1:$(cat .make/redis.port)/0"; then
  echo "redis://127.0.0.1:$(cat .make/redis.port)/0"; exit 0
fi
port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$PWD/.make" --pidfile "$PWD/.make/redis.pid" --logfile "$PWD/.make/redis.log" >&2
echo "$port" > .make/redis.port
for _ in $(seq 50); do ping "redis://127.0.0.1:$port/0" && break; sleep 0.1; done
echo "redis://127.0.0.1:$port/0"
