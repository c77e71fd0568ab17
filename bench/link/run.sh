#!/usr/bin/env bash
# Platform–gateway link benchmark (issue 4). Builds release, then:
#   1. propagation + detection: linkbench platform (SQLite) + 3 `switchyard gateway` processes;
#   2. heartbeat load: NODES simulated nodes against a platform on SQLite, then on PostgreSQL.
# Usage: bench/link/run.sh [propagate|load-sqlite|load-postgres|all]
# Env: SWITCHYARD_BIN, PROFILE (release), NODES (5000), DURATION (60 s), HEARTBEAT_MS (5000: each simulated node's period),
# CHANGES (100), KILLS (3), PG_URL (server URL; a fresh database `linkbench_<epoch>` is created on it).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CARGO_TARGET_DIR:=target}"
NODES=${NODES:-5000} DURATION=${DURATION:-60} CHANGES=${CHANGES:-100} KILLS=${KILLS:-3}
HEARTBEAT_MS=${HEARTBEAT_MS:-5000}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
WORK=${WORK:-/tmp/linkbench}
what=${1:-all}
# SWITCHYARD_BIN: a prebuilt `switchyard` for the node processes (else it is built here; only
# `propagate` runs node processes).
if [ -z "${SWITCHYARD_BIN:-}" ] && { [ "$what" = propagate ] || [ "$what" = all ]; }; then
  cargo build --release -q -p switchyard
  SWITCHYARD_BIN=$CARGO_TARGET_DIR/release/switchyard
fi
# PROFILE: the cargo profile of linkbench and the platform in it (release; `dev` when a release
# build does not fit the machine).
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" -q -p linkbench
if [ "$PROFILE" = dev ]; then BIN=$CARGO_TARGET_DIR/debug; else BIN=$CARGO_TARGET_DIR/$PROFILE; fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rm -rf "$WORK"; mkdir -p "$WORK"

start_platform() { # db-url port → sets PID
  "$BIN/linkbench" serve --db "$1" --listen "127.0.0.1:$2" --token-file "$WORK/token-$2" \
    2>"$WORK/platform-$2.log" &
  PID=$!
  for _ in $(seq 100); do [ -s "$WORK/token-$2" ] && curl -fs "http://127.0.0.1:$2/api/v1/openapi.json" >/dev/null && return; sleep 0.2; done
  echo "platform did not start"; cat "$WORK/platform-$2.log"; exit 1
}

if [ "$what" = propagate ] || [ "$what" = all ]; then
  start_platform "sqlite://$WORK/prop.db" 18080
  echo "load before: $(cat /proc/loadavg)"
  "$BIN/linkbench" propagate --url http://127.0.0.1:18080 --token-file "$WORK/token-18080" \
    --switchyard "$SWITCHYARD_BIN" --work-dir "$WORK/nodes" --changes "$CHANGES" --kills "$KILLS"
  echo "load after: $(cat /proc/loadavg)"
  kill "$PID"; wait "$PID" || true
fi
if [ "$what" = load-sqlite ] || [ "$what" = all ]; then
  start_platform "sqlite://$WORK/load.db" 18081
  "$BIN/linkbench" simulate --url http://127.0.0.1:18081 --token-file "$WORK/token-18081" \
    --nodes "$NODES" --duration "$DURATION" --heartbeat-ms "$HEARTBEAT_MS" --platform-pid "$PID"
  kill "$PID"; wait "$PID" || true
fi
if [ "$what" = load-postgres ] || [ "$what" = all ]; then
  db="linkbench_$(date +%s)"
  psql "$PG_URL/postgres" -qc "create database $db"
  start_platform "$PG_URL/$db" 18082
  "$BIN/linkbench" simulate --url http://127.0.0.1:18082 --token-file "$WORK/token-18082" \
    --nodes "$NODES" --duration "$DURATION" --heartbeat-ms "$HEARTBEAT_MS" --platform-pid "$PID"
  kill "$PID"; wait "$PID" || true
fi
