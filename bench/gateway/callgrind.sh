#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic, so it shows the effect
# of a change on a machine whose wall-clock figures swing with other load. Expects the release
# binary and /tmp/sybench/snap10.json from run.sh, and nginx for the upstream.
#
#   bench/gateway/callgrind.sh [tag]     # D=5 seconds of wrk -c10 after a 2 s warm-up
#   SYBIN=/path/to/switchyard SNAP=/tmp/sybench/snap10k.json bench/gateway/callgrind.sh 10k
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TAG=${1:-run}
SNAP=${SNAP:-/tmp/sybench/snap10.json}
OUT=/tmp/sybench/callgrind-$TAG
rm -rf "$OUT"; mkdir -p "$OUT"
URL=http://127.0.0.1:9303/ws/rest/api7/v1/items/42
# The upstream may already run from run.sh; it listens on 9100 either way.
# (Its configuration runs in the foreground, so it is started in the background here.)
# One started here is stopped at the end: a leftover would share port 9100 (reuseport) with
# run.sh's own upstream, unpinned.
UPSTREAM=
(exec 3<>/dev/tcp/127.0.0.1/9100) 2>/dev/null || {
  /usr/sbin/nginx -c "$ROOT/bench/gateway/nginx-upstream.conf" & UPSTREAM=$!; sleep 0.5; }
trap '[ -n "$UPSTREAM" ] && kill $UPSTREAM 2>/dev/null; true' EXIT
# Uncompressed names, so the dump taken after zeroing is readable on its own.
RUST_LOG=warn valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$OUT/cg.%p" "${SYBIN:-$TARGET/release/switchyard}" gateway --snapshot "$SNAP" \
  --listen 127.0.0.1:9303 --admin-listen 127.0.0.1:9313 --worker-threads 1 > "$OUT/log" 2>&1 & PID=$!
# Ready means the snapshot is applied (10,000 APIs take a while under valgrind), not only
# that the port is open: requests before that would be counted with the load's cost.
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 200 ] && break; sleep 0.2
done
wrk -t1 -c10 -d2s "$URL" > /dev/null
callgrind_control -z $PID > /dev/null
wrk -t1 -c10 -d"${D:-5}"s "$URL" > "$OUT/wrk"
callgrind_control -d $PID > /dev/null
kill $PID; wait $PID 2>/dev/null || true
REQ=$(awk '/requests in/{print $1}' "$OUT/wrk")
IR=$(awk '/^summary:/{print $2}' "$OUT"/cg.*.1)
echo "$TAG: $REQ requests, $IR instructions, $((IR / REQ)) per request (profile: $(ls "$OUT"/cg.*.1))"
