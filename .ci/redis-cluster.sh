#!/usr/bin/env bash
# A throwaway 3-master Redis Cluster on loopback for the cluster test pass (docs/redis-cluster.md).
#   .ci/redis-cluster.sh start   start it (no persistence), wait for cluster_state:ok
#   .ci/redis-cluster.sh stop    shut its nodes down and remove their directory
# Ports: AURA_RCLUSTER_PORT (default 7101) and the two after it; files under
# AURA_RCLUSTER_DIR (default /tmp/aura-rcluster-$UID). Prints the URL to use.
set -euo pipefail
PORT=${AURA_RCLUSTER_PORT:-7101}
DIR=${AURA_RCLUSTER_DIR:-/tmp/aura-rcluster-$(id -u)}
PORTS=("$PORT" "$((PORT + 1))" "$((PORT + 2))")

stop() {
  for p in "${PORTS[@]}"; do
    redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}

start() {
  stop
  for p in "${PORTS[@]}"; do
    mkdir -p "$DIR/$p"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$DIR/$p" --daemonize yes \
      --cluster-enabled yes --cluster-config-file "$DIR/$p/nodes.conf" \
      --cluster-node-timeout 5000 --save "" --appendonly no \
      --logfile "$DIR/$p/redis.log" --pidfile "$DIR/$p/redis.pid"
  done
  for p in "${PORTS[@]}"; do  # every node answers before the cluster is made
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$DIR/create.log"
  for _ in $(seq 100); do
    ok=1
    for p in "${PORTS[@]}"; do
      redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || ok=0
    done
    if [ "$ok" = 1 ]; then echo "redis+cluster://127.0.0.1:$PORT"; return 0; fi
    sleep 0.1
  done
  echo "Redis Cluster on ports ${PORTS[*]} did not reach cluster_state:ok; see $DIR" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
