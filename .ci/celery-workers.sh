#!/usr/bin/env bash
# Celery workers for the distributed-runs test (tests/assets/test_celery_executor.py), on the
# server pass's PostgreSQL and Redis: their own database `aura_celery`, Redis db 10 for data and
# db 9 as the broker (never the suite's dbs 14/15), AURA_HOME and logs in a directory of their own.
#
#   .ci/celery-workers.sh start [N]   # N workers (default 2), one step at a time each; waits
#                                     # until all answer a ping
#   .ci/celery-workers.sh stop        # stops them (TERM, then KILL after 30 s), removes the dir
#   set -a; . "$(.ci/celery-workers.sh env)"; set +a   # the workers' environment, for the test
#   .ci/celery-workers.sh test [ARGS]  # the server pass's Celery step: start 2, run the test
#                                     # (or pytest ARGS) in their environment, stop them (trap)
#
# Overrides: AURA_CELERY_DIR (state directory), AURA_CELERY_PG_URL, AURA_CELERY_REDIS_URL,
# AURA_CELERY_BROKER, PY (the Python of the venv, default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DIR=${AURA_CELERY_DIR:-${TMPDIR:-/tmp}/aura-celery-$(id -un)}
PG=${AURA_CELERY_PG_URL:-postgresql://postgres@127.0.0.1:5432/aura_celery}

write_env() {
  mkdir -p "$DIR/home"
  cat > "$DIR/env" <<ENV
AURA_HOME=$DIR/home
AURA_PG_URL=$PG
AURA_CATALOG_NAME=celery
AURA_REDIS_URL=${AURA_CELERY_REDIS_URL:-redis://127.0.0.1:6379/10}
AURA_CELERY_BROKER=${AURA_CELERY_BROKER:-redis://127.0.0.1:6379/9}
DAGSTER_HOME=$DIR/home/dagster
AURA_DAGSTER_STORAGE_URL=postgresql+psycopg2://${PG#*://}
PYTHONPATH=$(pwd)${PYTHONPATH:+:$PYTHONPATH}
AURA_TEST_CELERY=1
ENV
}

start() {
  local count=${1:-2}
  write_env
  set -a; . "$DIR/env"; set +a
  PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"; export PATH
  # A fresh start (the state directory is new): the workers' own database recreated, their
  # broker and data dbs emptied, the Dagster home and storage made before any worker opens them.
  "$PY" - <<'PYTHON'
import psycopg
import redis
from psycopg import sql
from urllib.parse import urlsplit, urlunsplit
from lakehouse.settings import Settings
from aura_assets.instance import open_instance

settings = Settings.from_env()
url = urlsplit(settings.pg_url)
name = sql.Identifier(url.path.lstrip("/"))
with psycopg.connect(urlunsplit(url._replace(path="/postgres")), autocommit=True) as conn:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
for db in (settings.redis_url, settings.celery_broker):
    redis.Redis.from_url(db).flushdb()
from celery import Celery

already = Celery(broker=settings.celery_broker).control.ping(timeout=1.0)
if already:  # e.g. left by a start whose stop never ran: their code and home may be stale
    raise SystemExit(f"== workers already listen on this broker: {already}; stop them first")
open_instance(settings).dispose()
PYTHON
  for i in $(seq "$count"); do
    celery --workdir "$(pwd)" -A aura_assets.celery_worker worker --detach -Q dagster -c 1 -n "aura$i@%h" \
      --pidfile "$DIR/aura$i.pid" --logfile "$DIR/aura$i.log" --loglevel INFO
  done
  "$PY" - "$count" <<'PYTHON'
import os, sys, time
from celery import Celery

app = Celery(broker=os.environ["AURA_CELERY_BROKER"])

wanted, deadline, answered = int(sys.argv[1]), time.monotonic() + 120, []
while time.monotonic() < deadline:
    answered = app.control.ping(timeout=1.0)
    if len(answered) >= wanted:
        print(f"== {len(answered)} celery workers up: {sorted(k for a in answered for k in a)}")
        sys.exit(0)
    time.sleep(1)
sys.exit(f"== only {len(answered)} of {wanted} celery workers answered in 120 s; see the logs")
PYTHON
}

stop() {
  local pids=()
  for file in "$DIR"/aura*.pid; do
    [ -f "$file" ] && pids+=("$(cat "$file")")
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$DIR"
}

run_test() {
  trap stop EXIT
  start 2
  set -a; . "$DIR/env"; set +a
  "$PY" -m pytest -q -p no:cacheprovider "${@:-tests/assets/test_celery_executor.py}"
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  test) shift; run_test "$@" ;;
  stop) stop ;;
  env) write_env; echo "$DIR/env" ;;
  *) echo "usage: $0 start [N] | stop | env | test [PYTEST ARGS]" >&2; exit 2 ;;
esac
