#!/usr/bin/env bash
# Configuration through remorad on configuration.redis (a redis-server it starts):
#   - GET throughput over gRPC: GetConfiguration of one key, 32 calls in flight, against
#     GetState of one key on state.redis (same Redis, same sidecar, same gRPC path) in the same
#     run, median of 3 alternating runs each;
#   - update latency p50/p99: from a SET straight to Redis to the subscribed HTTP app's handler
#     having the POST /configuration/configstore/<key> (keyspace notification → remorad → app).
# The tool is bench/configuration_load.cc; the app runs inside it.
#
#   bench/configuration.sh            full run, updates docs/performance.md
#   bench/configuration.sh --smoke    tiny counts, no doc (ctest bench_smoke_configuration)
#
# Options:
#   --count N          calls per GET run (default 20000; smoke 300)
#   --latency-count N  updates timed (default 2000; smoke 30)
#   --build-dir DIR    where to build (default build-bench in the repo, or $BENCH_BUILD_DIR)
#   --remorad PATH --load PATH   use these binaries (ctest does)
#   --doc FILE | --no-doc
# Environment: BENCH_NICE (e.g. -15: every benchmarked process at that nice value; needs root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
bench_name=configuration
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

smoke=0 count="" lat_count=""
build_dir=${BENCH_BUILD_DIR:-$repo/build-bench}
remorad="" load=""
doc="" no_doc=0
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --count) count=$2; shift ;;
    --latency-count) lat_count=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --load) load=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "configuration: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then
  : "${count:=300}" "${lat_count:=30}"
  [[ -n $doc ]] || no_doc=1
else
  : "${count:=20000}" "${lat_count:=2000}"
fi
: "${doc:=$repo/docs/performance.md}"
warmup=$((smoke ? 5 : 100))

if [[ -z $remorad || -z $load ]]; then
  log "building remorad and configuration_load (Release) in $build_dir"
  if ! out=$(cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release 2>&1 &&
    cmake --build "$build_dir" --target remorad configuration_load 2>&1); then
    tail -40 <<<"$out" >&2
    die "the build failed"
  fi
  remorad=$build_dir/runtime/remorad
  load=$build_dir/bench/configuration_load
fi
for b in "$remorad" "$load"; do [[ -x $b ]] || die "no binary at $b"; done
command -v redis-server >/dev/null || die "redis-server is missing"
command -v redis-cli >/dev/null || die "redis-cli is missing"

server_cpu=1 client_cpu=0
setup_pinning
# Redis, remorad and the tool all take part in every figure: nothing is pinned, only niced.
run=()
[[ -n ${BENCH_NICE:-} ]] && run=(nice -n "$BENCH_NICE")

tmp=$(mktemp -d /tmp/remora-configuration-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busy_before=$(busy_pct)
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

redis_port=$("$load" --free-port)
"${run[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 500); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.01; done
redis-cli -p "$redis_port" ping >/dev/null || die "redis-server did not start"
redis-cli -p "$redis_port" set bench-key 'value||1' >/dev/null

mkdir -p "$tmp/resources"
cat >"$tmp/resources/components.yaml" <<YAML
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: configstore }
spec:
  type: configuration.redis
  version: v1
  metadata:
  - { name: redisHost, value: "127.0.0.1:$redis_port" }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: statestore }
spec:
  type: state.redis
  version: v1
  metadata:
  - { name: redisHost, value: "127.0.0.1:$redis_port" }
YAML
app_port=$("$load" --free-port)
http_port=$("$load" --free-port)
grpc_port=$("$load" --free-port)
"${run[@]}" "$remorad" --app-id bench --app-port "$app_port" --dapr-http-port "$http_port" \
  --dapr-grpc-port "$grpc_port" --metrics-port 0 --log-level warn \
  --resources-path "$tmp/resources" >"$tmp/remorad.log" 2>&1 &
pids+=($!)
wait_status "http://127.0.0.1:$http_port/v1.0/healthz/outbound" 204 ||
  { cat "$tmp/remorad.log" >&2; die "remorad did not start"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d '[{"key":"bench-key","value":"value"}]' "http://127.0.0.1:$http_port/v1.0/state/statestore")
[[ $code == 204 ]] || die "seeding the state key failed ($code)"

results=$tmp/results.txt
: >"$results"
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
rate() { awk -v n="$(field calls "$1")" -v d="$(field duration_us "$1")" 'BEGIN { printf "%.0f", n / (d / 1e6) }'; }
for round in 1 2 3; do
  for target in config state; do
    out=$("${run[@]}" "$load" --mode get --target "$target" --grpc "127.0.0.1:$grpc_port" \
      --count "$count" --window 32) || die "GET $target failed"
    echo "get $target $round $(rate "$out") $(field errors "$out")" >>"$results"
    log "$(tail -1 "$results")"
  done
done
out=$("${run[@]}" "$load" --mode latency --http-port "$http_port" --app-port "$app_port" \
  --redis "127.0.0.1:$redis_port" --count "$lat_count" --warmup "$warmup") || die "latency failed"
echo "latency update 1 $(field p50_us "$out") $(field p99_us "$out") $(field errors "$out")" >>"$results"
log "$(tail -1 "$results")"
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- figures ------------------------------------------------------------------------------
med() { awk -v t="$1" '$1 == "get" && $2 == t { print $4 }' "$results" | median_of; }
cfg_rate=$(med config)
state_rate=$(med state)
lat_p50=$(awk '$1 == "latency" { print $4 }' "$results")
lat_p99=$(awk '$1 == "latency" { print $5 }' "$results")
check() { awk -v x="$2" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/ && x + 0 > 0) }' ||
  die "figure '$1' is missing or not positive: '$2'"; }
check "config GET/s" "$cfg_rate"
check "state GET/s" "$state_rate"
check "update p50" "$lat_p50"
check "update p99" "$lat_p99"
total_errors=$(awk '$1 == "get" { e += $5 } $1 == "latency" { e += $6 } END { print e + 0 }' "$results")
((total_errors == 0)) || log "WARNING: $total_errors calls/updates failed (see the per-run figures)"

calc() { awk "BEGIN { $1 }"; }
verdict() { calc "print (($1) ? \"met\" : \"**MISSED**\")"; }
us() { calc "printf \"%.0f µs\", $1"; }
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- runtime components proto bench 2>/dev/null | head -1)
[[ -n $dirty ]] && commit="$commit (+ uncommitted changes)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
today=$(date -u +%F)
mode="full"
((smoke)) && mode="smoke (figures not meaningful)"

section=$tmp/section.md
{
  echo "### $today — configuration: gRPC GET throughput and Redis write → app update latency"
  echo
  echo "| figure | remorad | comparison in the same run | target | |"
  echo "|---|---:|---:|---|---|"
  echo "| GetConfiguration over gRPC, calls/s (median of 3) | $cfg_rate | GetState on state.redis: $state_rate ($(calc "printf \"%.0f %%\", 100 * $cfg_rate / $state_rate")) | ≥ 20,000/s | $(verdict "$cfg_rate >= 20000") |"
  echo "| Redis SET → subscribed app's handler, p50 | $(us "$lat_p50") | | | |"
  echo "| Redis SET → subscribed app's handler, p99 | $(us "$lat_p99") | | ≤ 5 ms | $(verdict "$lat_p99 <= 5000") |"
  echo
  echo "Run: $mode; commit $commit; $cpu_model, $(nproc) CPUs, Linux $(uname -r). \`bench/configuration.sh\`"
  echo "with \`bench/configuration_load\` (gRPC on the generated \`remora_proto\` stubs, async, 32 calls"
  echo "in flight on one channel; the HTTP app is \`tests/tools/test_app\` inside the tool). GET: $count"
  echo "calls of one key per run, 3 runs each alternating with GetState of one key on state.redis on the"
  echo "same Redis and sidecar. Latency: $lat_count updates one at a time after $warmup warm-up, from just"
  echo "before a hiredis \`SET key \"<i>||<i>\"\` to the app's handler having value <i> (keyspace"
  echo "notification → remorad's GET of the key → HTTP POST to the app), on one steady clock. Nothing"
  echo "pinned${priority:+; $priority}. Machine: ${busy_before} % busy before the run; load average"
  echo "$loadavg_before before, $loadavg_after after. Failed calls/updates: $total_errors."
} >"$section"

echo
cat "$section"
echo
echo "Per-run figures (get target round calls/s errors | latency update 1 p50_us p99_us errors):"
cat "$results"

if ((no_doc == 0)); then
  write_doc_section configuration "$section" "$doc"
  log "updated $doc"
fi
