#!/usr/bin/env bash
# Pub/sub through remorad per broker (pubsub.in-memory, pubsub.redis on a redis-server it starts,
# pubsub.kafka on the mock-cluster test broker), against the broker used directly, in the same run:
#   - single publish throughput: gRPC PublishEvent, 64 calls in flight (direct: pipelined XADD,
#     64 in flight; Kafka: the librdkafka producer);
#   - bulk publish throughput: gRPC BulkPublishEvent, 500 entries per call, 4 calls in flight
#     (direct: XADD pipelines of 500; Kafka: the same producer run);
#   - publish → app delivery latency p50/p99: one event at a time, from the gRPC call to the HTTP
#     subscriber app's handler (direct: XADD → XREAD, produce → consumer poll).
# The tool is bench/pubsub_load.cc; the subscriber app runs inside it.
#
#   bench/pubsub.sh             full run, updates docs/performance.md
#   bench/pubsub.sh --smoke     tiny counts, no doc (ctest bench_smoke_pubsub)
#
# Options:
#   --count N          events per throughput run (default 20000; smoke 300); Kafka bulk x5
#   --latency-count N  events timed per latency run (default 2000; smoke 50)
#   --build-dir DIR    where to build (default build-bench in the repo, or $BENCH_BUILD_DIR)
#   --remorad PATH --load PATH --kafka-broker PATH   use these binaries (ctest does)
#   --doc FILE | --no-doc
# Environment: BENCH_NICE (e.g. -15: every benchmarked process at that nice value; needs root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
bench_name=pubsub
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

smoke=0 count="" lat_count=""
build_dir=${BENCH_BUILD_DIR:-$repo/build-bench}
remorad="" load="" kafka_broker=""
doc="" no_doc=0
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --count) count=$2; shift ;;
    --latency-count) lat_count=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --load) load=$2; shift ;;
    --kafka-broker) kafka_broker=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "pubsub: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then
  : "${count:=300}" "${lat_count:=50}"
  [[ -n $doc ]] || no_doc=1
else
  : "${count:=20000}" "${lat_count:=2000}"
fi
: "${doc:=$repo/docs/performance.md}"
warmup=$((smoke ? 20 : 200))
kafka_lat_count=$((smoke ? 4 : 30))

if [[ -z $remorad || -z $load || -z $kafka_broker ]]; then
  log "building remorad, pubsub_load and remora_kafka_broker (Release) in $build_dir"
  if ! out=$(cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release 2>&1 &&
    cmake --build "$build_dir" --target remorad pubsub_load remora_kafka_broker 2>&1); then
    tail -40 <<<"$out" >&2
    die "the build failed"
  fi
  remorad=$build_dir/runtime/remorad
  load=$build_dir/bench/pubsub_load
  kafka_broker=$build_dir/tests/remora_kafka_broker
fi
for b in "$remorad" "$load" "$kafka_broker"; do [[ -x $b ]] || die "no binary at $b"; done
command -v redis-server >/dev/null || die "redis-server is missing"

server_cpu=1 client_cpu=0
setup_pinning
# Broker, remorad and the tool all take part in every figure: nothing is pinned, only niced.
run=()
[[ -n ${BENCH_NICE:-} ]] && run=(nice -n "$BENCH_NICE")

tmp=$(mktemp -d /tmp/remora-pubsub-bench.XXXXXX)
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

# ---- brokers ------------------------------------------------------------------------------
redis_port=$("$load" --free-port)
"${run[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 500); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.01; done
redis-cli -p "$redis_port" ping >/dev/null || die "redis-server did not start"

"${run[@]}" "$kafka_broker" --topic lat:1 --topic direct-lat:1 --topic single:4 --topic bulk:4 \
  --topic direct:4 >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
for _ in $(seq 1 500); do [[ -s $tmp/kafka.out ]] && break; sleep 0.01; done
kafka_bootstrap=$(head -1 "$tmp/kafka.out")
[[ -n $kafka_bootstrap ]] || die "the Kafka test broker printed no bootstrap"
log "redis-server on $redis_port, Kafka test broker on $kafka_bootstrap"

component() {  # broker -> YAML
  case $1 in
    memory) echo "spec: { type: pubsub.in-memory, version: v1 }" ;;
    redis) printf 'spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n  - { name: redisHost, value: "127.0.0.1:%s" }\n' "$redis_port" ;;
    kafka) printf 'spec:\n  type: pubsub.kafka\n  version: v1\n  metadata:\n  - { name: brokers, value: "%s" }\n  - { name: authType, value: none }\n  - { name: initialOffset, value: oldest }\n' "$kafka_bootstrap" ;;
  esac
}

results=$tmp/results.txt
: >"$results"
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
# rate <PUBLISH_RESULT line> -> events/s
rate() { awk -v n="$(field events "$1")" -v d="$(field duration_us "$1")" 'BEGIN { printf "%.0f", n / (d / 1e6) }'; }
publish() {  # broker what target args... -> appends "broker what target events/s errors"
  local broker=$1 what=$2 target=$3 out
  shift 3
  out=$("${run[@]}" "$load" --mode publish "$@") || die "$broker $what $target failed"
  echo "$broker $what $target $(rate "$out") $(field errors "$out")" >>"$results"
  log "$(tail -1 "$results")"
}
latency() {  # broker target args... -> appends "broker latency target p50 p99 publish_p50 errors"
  local broker=$1 target=$2 out n=$lat_count w=$warmup
  shift 2
  # The Kafka test broker holds an idle partition's fetch for fetch.wait.max.ms (500 ms): each
  # event takes half a second, so Kafka gets few.
  [[ $broker == kafka ]] && n=$kafka_lat_count w=2
  out=$("${run[@]}" "$load" --mode latency --count "$n" --warmup "$w" "$@") ||
    die "$broker latency $target failed"
  echo "$broker latency $target $(field p50_us "$out") $(field p99_us "$out") $(field publish_p50_us "$out") $(field errors "$out")" >>"$results"
  log "$(tail -1 "$results")"
}

for broker in memory redis kafka; do
  app_port=$("$load" --free-port)
  http_port=$("$load" --free-port)
  grpc_port=$("$load" --free-port)
  mkdir -p "$tmp/$broker"
  {
    printf 'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: pubsub }\n'
    component "$broker"
    printf -- '---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: { name: lat }\n'
    printf 'spec: { pubsubname: pubsub, topic: lat, routes: { default: /lat } }\n'
  } >"$tmp/$broker/pubsub.yaml"
  "${run[@]}" "$remorad" --app-id bench --app-port "$app_port" --dapr-http-port "$http_port" \
    --dapr-grpc-port "$grpc_port" --metrics-port 0 --log-level warn \
    --resources-path "$tmp/$broker" >"$tmp/remorad-$broker.log" 2>&1 &
  rd_pid=$!
  pids+=($rd_pid)
  wait_status "http://127.0.0.1:$http_port/v1.0/healthz/outbound" 204 ||
    { cat "$tmp/remorad-$broker.log" >&2; die "remorad ($broker) did not start"; }
  grpc=127.0.0.1:$grpc_port
  bulk_count=$count
  [[ $broker == kafka ]] && bulk_count=$((count * 5))
  publish "$broker" single remorad --target grpc --grpc "$grpc" --topic single --count "$count" --window 64
  publish "$broker" bulk remorad --target grpc --grpc "$grpc" --topic bulk --count "$bulk_count" --bulk 500 --window 4
  latency "$broker" remorad --target grpc --grpc "$grpc" --topic lat --app-port "$app_port"
  kill "$rd_pid" && wait "$rd_pid" 2>/dev/null || true
  case $broker in
    redis)
      publish redis single direct --target redis --redis "127.0.0.1:$redis_port" --topic direct --count "$count" --window 64
      publish redis bulk direct --target redis --redis "127.0.0.1:$redis_port" --topic direct --count "$count" --bulk 500
      latency redis direct --target redis --redis "127.0.0.1:$redis_port" --topic direct-lat ;;
    kafka)
      publish kafka single direct --target kafka --brokers "$kafka_bootstrap" --topic direct --count "$count"
      publish kafka bulk direct --target kafka --brokers "$kafka_bootstrap" --topic direct --count "$bulk_count"
      latency kafka direct --target kafka --brokers "$kafka_bootstrap" --topic direct-lat ;;
  esac
done
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- figures ------------------------------------------------------------------------------
get() { awk -v b="$1" -v w="$2" -v t="$3" -v c="$4" '$1 == b && $2 == w && $3 == t { print $c }' "$results"; }
check() { awk -v x="$2" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/ && x + 0 > 0) }' ||
  die "figure '$1' is missing or not positive: '$2'"; }
while read -r b w t a c d e; do
  check "$b $w $t" "$a"
  [[ $w == latency ]] && check "$b $w $t p99" "$c"
done <"$results"
total_errors=$(awk '$2 == "latency" { e += $7; next } { e += $5 } END { print e + 0 }' "$results")
((total_errors == 0)) || log "WARNING: $total_errors events failed (see the per-run figures)"

calc() { awk "BEGIN { $1 }"; }
ratio() { [[ -n $2 ]] && calc "printf \"%.0f %%\", 100 * $1 / $2" || echo "–"; }
x_of() { [[ -n $2 ]] && calc "printf \"×%.1f\", $1 / $2" || echo "–"; }
verdict() { calc "print (($1) ? \"met\" : \"**MISSED**\")"; }
us() { [[ -n $1 ]] && calc "printf \"%.0f µs\", $1" || echo "–"; }

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- runtime components proto bench 2>/dev/null | head -1)
[[ -n $dirty ]] && commit="$commit (+ uncommitted changes)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
today=$(date -u +%F)
mode="full"
((smoke)) && mode="smoke (figures not meaningful)"
target_single=$(verdict "$(get redis single remorad 4) >= 20000")
target_bulk=$(verdict "$(get kafka bulk remorad 4) >= 100000")
target_mem=$(verdict "$(get memory latency remorad 4) <= 100")
target_redis=$(verdict "$(get redis latency remorad 4) <= 1000")

section=$tmp/section.md
{
  echo "### $today — pub/sub: publish throughput and publish → app delivery latency"
  echo
  echo "| broker | figure | remorad | broker directly | remorad vs direct | target | |"
  echo "|---|---|---:|---:|---:|---|---|"
  for b in memory redis kafka; do
    name=$b
    [[ $b == memory ]] && name="in-memory"
    s=$(get "$b" single remorad 4) sd=$(get "$b" single direct 4)
    k=$(get "$b" bulk remorad 4) kd=$(get "$b" bulk direct 4)
    t1="" v1="" t2="" v2="" t3="" v3=""
    [[ $b == redis ]] && t1="≥ 20,000/s" v1=$target_single
    [[ $b == kafka ]] && t2="≥ 100,000/s" v2=$target_bulk
    [[ $b == memory ]] && t3="p50 ≤ 100 µs" v3=$target_mem
    [[ $b == redis ]] && t3="p50 ≤ 1 ms" v3=$target_redis
    echo "| $name | single publish, events/s | $s | ${sd:-–} | $(ratio "$s" "$sd") | $t1 | $v1 |"
    echo "| $name | bulk publish, events/s | $k | ${kd:-–} | $(ratio "$k" "$kd") | $t2 | $v2 |"
    lp50=$(get "$b" latency remorad 4) lp99=$(get "$b" latency remorad 5)
    dp50=$(get "$b" latency direct 4) dp99=$(get "$b" latency direct 5)
    echo "| $name | delivery latency p50 | $(us "$lp50") | $(us "$dp50") | $(x_of "$lp50" "$dp50") | $t3 | $v3 |"
    echo "| $name | delivery latency p99 | $(us "$lp99") | $(us "$dp99") | $(x_of "$lp99" "$dp99") | | |"
    echo "| $name | … of which the gRPC publish call, p50 | $(us "$(get "$b" latency remorad 6)") | $(us "$(get "$b" latency direct 6)") | | | |"
  done
  echo
  echo "Run: $mode; commit $commit; $cpu_model, $(nproc) CPUs, Linux $(uname -r). \`bench/pubsub.sh\`"
  echo "with \`bench/pubsub_load\` (gRPC on the generated \`remora_proto\` stubs; the HTTP subscriber"
  echo "app is \`tests/tools/test_app\` inside the tool). Throughput: $count events of 64 bytes of JSON"
  echo "(Kafka bulk: $((count * 5))); single = \`PublishEvent\` with 64 calls in flight, bulk ="
  echo "\`BulkPublishEvent\` of 500 entries, 4 calls in flight; directly = pipelined \`XADD\` (64 /"
  echo "500 in flight) with hiredis, or the librdkafka producer (linger.ms 5, acks all, every delivery"
  echo "report awaited; the same run for single and bulk). Latency: $lat_count events one at a time"
  echo "(Kafka: $kafka_lat_count) after $warmup warm-up (Kafka: 2), from just before the publish call to the app's handler (remorad:"
  echo "gRPC publish → broker → remorad → HTTP POST to the app) or to \`XREAD BLOCK\` / the consumer's"
  echo "poll returning (directly), on one steady clock. remorad's publishes go to topics nobody"
  echo "subscribes to except \`lat\`. Kafka is the mock-cluster test broker (\`remora_kafka_broker\`,"
  echo "in memory), not a real Kafka: it answers a fetch on an idle partition only after the"
  echo "consumer's fetch.wait.max.ms (librdkafka's default, 500 ms, which pubsub.kafka and the direct"
  echo "consumer both keep), where a real broker answers as soon as a record arrives, so the Kafka"
  echo "latencies measure that wait. Nothing pinned${priority:+; $priority}. Machine: ${busy_before} % busy"
  echo "before the run; load average $loadavg_before before, $loadavg_after after. Failed events: $total_errors."
} >"$section"

echo
cat "$section"
echo
echo "Per-run figures (broker what target events/s errors | broker latency target p50 p99 publish_p50 errors):"
cat "$results"

if ((no_doc == 0)); then
  write_doc_section pubsub "$section" "$doc"
  log "updated $doc"
fi
