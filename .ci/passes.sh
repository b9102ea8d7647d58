#!/usr/bin/env bash
# `make test`: lint and every test pass, in lanes that run side by side.
#
# The passes share no state: each has its own PostgreSQL databases and Redis dbs (below), the
# object store and the Redis Cluster are servers of their own on their own ports, the embedded
# pass touches only temporary directories. A pass waits on processes, PostgreSQL, Redis and disk
# for a good part of its time; two lanes beside it fill those waits on a 2-core machine.
#
#   lane 1: embedded, then celery
#   lane 2: lint, then servers, then the Redis Cluster
#   lane 3: the object store (selection), then reliability
#
# Each pass writes its log to $AURA_TEST_LOGS/<pass>.log (default .test-logs); a line a minute
# says how far the running passes are; at the end every pass's summary line, and the failures
# of a pass that failed. Exit status: 0 when every pass that could run passed.
#
# Overrides: PY (the venv's Python), AURA_TEST_JOBS (pytest-xdist workers per pass, default 2),
# AURA_TEST_LOGS. One pass alone: `make test-embedded`, `make test-servers`, ...
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${AURA_TEST_JOBS:-2}
LOGS=${AURA_TEST_LOGS:-.test-logs}
rm -rf "$LOGS" && mkdir -p "$LOGS"
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --durations=20"  # each log says where time went
PG=${AURA_TEST_PG_SERVER:-postgresql://postgres@127.0.0.1:5432}
REDIS=${AURA_TEST_REDIS_SERVER:-redis://127.0.0.1:6379}
START=$(date +%s)

servers_up() {
  "$PY" -c "import socket; [socket.create_connection(('127.0.0.1', p), 1).close() for p in (5432, 6379)]" \
    2>/dev/null
}

# A pass is the Makefile's target (or .ci script) of the same name, on JOBS workers and its own
# databases: worker gwN of a pass uses <db>_gwN and Redis db <index> - N (tests/helpers.py
# worker_urls); Celery's workers use aura_celery and Redis dbs 10 and 9.
MAKE_PASS=(make --no-print-directory PY="$PY" JOBS="$JOBS")
lint() { "${MAKE_PASS[@]}" lint; }
embedded() { "${MAKE_PASS[@]}" test-embedded; }
servers() {
  AURA_TEST_PG_URL="$PG/test" AURA_TEST_REDIS_URL="$REDIS/15" "${MAKE_PASS[@]}" test-servers
}
celery() { PY=$PY bash .ci/celery-workers.sh test; }
objstore() {
  AURA_TEST_PG_URL="$PG/objstore" AURA_TEST_REDIS_URL="$REDIS/8" OBJSTORE_JOBS=$JOBS \
    PY=$PY bash .ci/objstore.sh --quick
}
rcluster() { "${MAKE_PASS[@]}" test-rcluster; }
reliability() {  # on PostgreSQL and Redis when they answer (the target decides)
  AURA_TEST_PG_URL="$PG/reliability" AURA_TEST_REDIS_URL="$REDIS/5" "${MAKE_PASS[@]}" reliability
}

# Which passes this machine can run; the others are reported as skipped, with the reason.
declare -A SKIP=()
if ! servers_up; then
  for p in servers celery objstore; do
    SKIP[$p]="no PostgreSQL on 127.0.0.1:5432 or Redis on 127.0.0.1:6379"
  done
fi
command -v redis-server >/dev/null || SKIP[rcluster]="no redis-server binary"

run_pass() {  # run_pass NAME: its function, output to its log, status and seconds to files
  local name=$1 began=$SECONDS
  if [ -n "${SKIP[$name]:-}" ]; then
    echo "skipped: ${SKIP[$name]}" > "$LOGS/$name.log"
    echo skipped > "$LOGS/$name.status"
  else
    echo "== $name pass started ($(date +%T))"
    local result=FAILED
    "$name" > "$LOGS/$name.log" 2>&1 && result=passed
    echo "$result" > "$LOGS/$name.status"  # written once it is known: progress reads it
  fi
  echo $((SECONDS - began)) > "$LOGS/$name.seconds"
  echo "== $name: $(cat "$LOGS/$name.status") in $(cat "$LOGS/$name.seconds") s"
}

lane() { for name in "$@"; do run_pass "$name"; done; }

LANES=("embedded celery" "lint servers rcluster" "objstore reliability")
pids=()
for passes in "${LANES[@]}"; do
  # shellcheck disable=SC2086  # a lane is a list of pass names
  lane $passes &
  pids+=($!)
done

# Progress: the last percentage pytest printed in each running pass's log.
alive() { for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
while alive; do
  sleep 60 &
  wait $! 2>/dev/null
  running=()
  for log in "$LOGS"/*.log; do
    name=$(basename "$log" .log)
    [ -e "$LOGS/$name.status" ] && continue
    pct=$(grep -o '\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -n 1 | tr -d '[] ')
    running+=("$name ${pct:-started}")
  done
  [ ${#running[@]} -gt 0 ] && echo "   $(( ($(date +%s) - START) / 60 )) min: ${running[*]}"
done
wait

status=0
echo "== summary ($(( $(date +%s) - START )) s)"
for passes in "${LANES[@]}"; do
  for name in $passes; do
    result=$(cat "$LOGS/$name.status" 2>/dev/null || echo "did not finish")
    # pytest's result line of each session the pass ran (the object store runs two)
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error).* in [0-9.]+s' "$LOGS/$name.log" \
      2>/dev/null | sed -E 's/^=+ //; s/ =+$//' | paste -sd ';' | sed 's/;/; /g')
    printf '   %-11s %-8s %5s s  %s\n' "$name" "$result" \
      "$(cat "$LOGS/$name.seconds" 2>/dev/null)" "$summary"
    if [ "$result" = FAILED ] || [ "$result" = "did not finish" ]; then
      status=1
      echo "== $name failed; its log ($LOGS/$name.log) from the first failure:"
      sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,$p' "$LOGS/$name.log" | grep -v ' - DEBUG - ' \
        | tail -n 300
      grep -q -E '^=* (FAILURES|ERRORS) =*$' "$LOGS/$name.log" || tail -n 60 "$LOGS/$name.log"
    fi
  done
done
exit $status
