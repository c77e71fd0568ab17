#!/usr/bin/env bash
# The console's Gateways page with 1,000 gateways: server time on SQLite and PostgreSQL, HTML
# bytes (identity, gzip, brotli), first paint in headless Chromium, and nginx serving the same
# saved page as a floor (see README.md in this folder).
# Env: ITERATIONS (300 timed requests per encoding), PAINTS (20 timed page loads; 0 skips
# Chromium), SWITCHYARD_BENCH_POSTGRES_URL (a server URL with a database to connect to first;
# empty skips PostgreSQL), NGINX (/usr/sbin/nginx; empty skips the nginx floor).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CARGO_TARGET_DIR:=target}"
ITERATIONS=${ITERATIONS:-300}
PAINTS=${PAINTS:-20}
PG="${SWITCHYARD_BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
NGINX="${NGINX-/usr/sbin/nginx}"
cargo build --release -q -p consolebench
BIN="$CARGO_TARGET_DIR/release/consolebench"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, load before: $(cat /proc/loadavg)"
echo "== SQLite"
"$BIN" --iterations "$ITERATIONS" --paints "$PAINTS" ${NGINX:+--nginx "$NGINX"}
if [ -n "$PG" ]; then
  echo "== PostgreSQL"
  "$BIN" --db "$PG" --iterations "$ITERATIONS" --paints "$PAINTS"
fi
echo "load after: $(cat /proc/loadavg)"
