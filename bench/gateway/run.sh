#!/usr/bin/env bash
# Switchyard vs nginx vs HAProxy as reverse proxies in front of one nginx upstream.
# Each proxy runs with one worker pinned to CPU $PROXY_CPU; wrk / loadgen and the upstream run
# on CPU $LOAD_CPU. Results are printed as Markdown rows; see bench/RESULTS.md.
#
#   bench/gateway/run.sh            # DURATION=10 CONNS=50 ROUNDS=3 by default
#   SY_BASELINE=/path/to/older/switchyard bench/gateway/run.sh
#                                   # adds a row for another build (10 APIs), in the same rounds
#
# Two maximum rates are measured for each proxy. "Free": the proxy may use all of its CPU; on a
# two-core machine the load side (wrk and the upstream on one core) is then the bottleneck and
# the figure says more about the load side than the proxy. "Capped": the proxy's threads get
# CAP_PERCENT (default 50) of a core through a cgroup CPU quota, the same for every proxy, so the
# proxy is the bottleneck and requests/s compares proxies at equal CPU budget.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=/tmp/sybench
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
PATH_=/ws/rest/api7/v1/items/42
mkdir -p "$OUT"

cargo build --release -q -p switchyard
cargo build --release -q -p gateway --example make_snapshot
(cd bench/gateway/loadgen && CARGO_TARGET_DIR="$TARGET/loadgen" cargo build --release -q)
SY="$TARGET/release/switchyard"
LOADGEN="$TARGET/loadgen/release/loadgen"
"$TARGET/release/examples/make_snapshot" 10 http://127.0.0.1:9100 1 > "$OUT/snap10.json"
"$TARGET/release/examples/make_snapshot" 10000 http://127.0.0.1:9100 1 > "$OUT/snap10k.json"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

taskset -c "$LOAD_CPU" /usr/sbin/nginx -c "$ROOT/bench/gateway/nginx-upstream.conf" & PIDS+=($!)
wait_port 9100

# CPU ticks (utime+stime) of a process and its children processes.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
HZ=$(getconf CLK_TCK)

start_proxy() { # name -> sets PROXY_PIDS (processes whose CPU counts) and PORT
  case $1 in
    nginx)
      taskset -c "$PROXY_CPU" /usr/sbin/nginx -c "$ROOT/bench/gateway/nginx-proxy.conf" & MASTER=$!; PIDS+=($MASTER)
      PORT=9201; wait_port $PORT; sleep 0.2; PROXY_PIDS=$(pgrep -P $MASTER | tr '\n' ' ');;
    haproxy)
      taskset -c "$PROXY_CPU" /usr/sbin/haproxy -db -f "$ROOT/bench/gateway/haproxy.cfg" & MASTER=$!; PIDS+=($MASTER)
      PORT=9202; wait_port $PORT; PROXY_PIDS=$MASTER;;
    switchyard|switchyard-10k|switchyard-baseline)
      local snap=$OUT/snap10.json; [ "$1" = switchyard-10k ] && snap=$OUT/snap10k.json
      local bin=$SY; [ "$1" = switchyard-baseline ] && bin=$SY_BASELINE
      RUST_LOG=warn taskset -c "$PROXY_CPU" "$bin" gateway --snapshot "$snap" --listen 127.0.0.1:9203 \
        --admin-listen 127.0.0.1:9213 --worker-threads 1 > "$OUT/switchyard.log" 2>&1 & MASTER=$!; PIDS+=($MASTER)
      PORT=9203; wait_port $PORT; PROXY_PIDS=$MASTER;;
  esac
}
stop_proxy() { kill $MASTER; wait $MASTER 2>/dev/null || true; }

# The CPU quota cgroup (cgroup v1 cpu controller or cgroup v2), or empty when unavailable.
CAP_PERCENT=${CAP_PERCENT:-50}
CGROUP=
if mkdir -p /sys/fs/cgroup/cpu/sybench 2>/dev/null && [ -w /sys/fs/cgroup/cpu/sybench/cpu.cfs_quota_us ]; then
  CGROUP=/sys/fs/cgroup/cpu/sybench
  echo 10000 > $CGROUP/cpu.cfs_period_us; echo $((CAP_PERCENT * 100)) > $CGROUP/cpu.cfs_quota_us
elif mkdir -p /sys/fs/cgroup/sybench 2>/dev/null && [ -w /sys/fs/cgroup/sybench/cpu.max ]; then
  CGROUP=/sys/fs/cgroup/sybench
  echo "$((CAP_PERCENT * 100)) 10000" > $CGROUP/cpu.max
else
  echo "no writable cgroup CPU controller: capped rates are skipped" >&2
fi
cap() { # pids -> their threads join the quota cgroup
  for p in "$@"; do for t in /proc/$p/task/*; do
    if [ -f $CGROUP/tasks ]; then echo "${t##*/}" > $CGROUP/tasks; else echo "${t##*/}" > $CGROUP/cgroup.threads 2>/dev/null || echo "$p" > $CGROUP/cgroup.procs; fi
  done; done
}

max_rate() { # name [capped] -> "rps us_per_req rss_mb"
  start_proxy "$1"
  [ "${2:-}" = capped ] && cap $PROXY_PIDS
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT$PATH_" > /dev/null
  local before; before=$(ticks $PROXY_PIDS)
  local out; out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT$PATH_")
  local after; after=$(ticks $PROXY_PIDS)
  local rss; rss=$(rss_kb $PROXY_PIDS)
  stop_proxy
  local requests; requests=$(echo "$out" | awk '/requests in/{print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  [ -n "$non2xx" ] && echo "WARNING: $1 answered $non2xx non-2xx" >&2
  echo "$rps $(awk "BEGIN{printf \"%.1f\", ($after - $before) * 1000000 / $HZ / $requests}") $((rss / 1024))"
}

latency() { # name rate -> loadgen line
  start_proxy "$1"
  taskset -c "$LOAD_CPU" "$LOADGEN" "http://127.0.0.1:$PORT$PATH_" "$2" 2 "$CONNS" > /dev/null
  local out; out=$(taskset -c "$LOAD_CPU" "$LOADGEN" "http://127.0.0.1:$PORT$PATH_" "$2" "$DURATION" "$CONNS")
  stop_proxy
  echo "$out"
}

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

declare -A RPS CPU RSS PAIRED
NAMES="nginx haproxy switchyard switchyard-10k"
[ -n "${SY_BASELINE:-}" ] && NAMES+=" switchyard-baseline"
MODES=free; [ -n "$CGROUP" ] && MODES+=" capped"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    for name in $NAMES; do
      read -r rps us rss < <(max_rate "$name" "$mode")
      echo "round $round $mode $name: $rps req/s, $us us/req CPU, RSS $rss MB" >&2
      key="$mode $name"
      RPS[$key]+="$rps "; CPU[$key]+="$us "; RSS[$key]+="$rss "
      [ "$name" = nginx ] && ROUND_NGINX=$rps
      # Ratio to nginx within the same round: the machine's load drifts between rounds, and a
      # ratio of medians taken from different minutes mixes that drift in.
      PAIRED[$key]+="$(awk "BEGIN{printf \"%.3f\", $rps/$ROUND_NGINX}") "
    done
  done
done

for mode in $MODES; do
  echo
  if [ "$mode" = free ]; then
    echo "Maximum rate, free (the load side on one core is the bottleneck):"
  else
    echo "Maximum rate, capped (each proxy limited to ${CAP_PERCENT}% of a core; the proxy is the bottleneck):"
  fi
  echo
  echo "| proxy | req/s (median of $ROUNDS) | vs nginx (ratio of medians) | vs nginx (median of per-round ratios) | CPU µs/req | RSS MB |"
  echo "|---|---|---|---|---|---|"
  NGINX_RPS=$(echo ${RPS[$mode nginx]} | tr ' ' '\n' | median)
  for name in $NAMES; do
    key="$mode $name"
    r=$(echo ${RPS[$key]} | tr ' ' '\n' | median)
    c=$(echo ${CPU[$key]} | tr ' ' '\n' | median)
    m=$(echo ${RSS[$key]} | tr ' ' '\n' | median)
    p=$(echo ${PAIRED[$key]} | tr ' ' '\n' | median)
    echo "| $name | $r | $(awk "BEGIN{printf \"%.2f\", $r/$NGINX_RPS}") | $p | $c | $m |"
  done
done
NGINX_RPS=$(echo ${RPS[free nginx]} | tr ' ' '\n' | median)

RATE=$(awk "BEGIN{printf \"%d\", $NGINX_RPS/2}")
echo
echo "Latency at $RATE req/s (50% of nginx's max), $CONNS connections, ${DURATION}s, open loop:"
echo
echo "| proxy | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors |"
echo "|---|---|---|---|---|---|---|"
for name in $NAMES; do
  line=$(latency "$name" "$RATE")
  get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
  echo "| $name | $(get p50_us) | $(get p90_us) | $(get p99_us) | $(get p999_us) | $(get max_us) | $(get errors) |"
done
