#!/usr/bin/env bash
# Gateways list latency on SQLite and PostgreSQL (see README.md in this folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
ITERATIONS="${ITERATIONS:-500}"
PG="${SWITCHYARD_BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
cargo build --release -p platform --example gateways_list_bench
BIN="${CARGO_TARGET_DIR:-target}/release/examples/gateways_list_bench"
echo "== SQLite"
"$BIN" "" "$ITERATIONS"
if [ -n "$PG" ]; then
  echo "== PostgreSQL"
  "$BIN" "$PG" "$ITERATIONS"
fi
