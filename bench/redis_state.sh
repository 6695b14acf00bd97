#!/usr/bin/env bash
# State GET and SAVE of a 1 KB value through remorad (HTTP with wrk, gRPC with the C++ SDK) with a
# state.redis store, against the same operation sent straight to the same redis-server with hiredis
# (bench/redis_state_load.cc: the very commands state.redis sends), plus the baseline HTTP hop
# (nginx `return 200` of the same bytes, as bench/http_state_get.sh), at 1 and 32 clients, in one
# run.
#
#   bench/redis_state.sh                 full run (5 s per load, 3 rounds), updates
#                                        docs/performance.md
#   bench/redis_state.sh --smoke         1 s per load, 1 round; no doc
#
# Options:
#   --duration S      seconds per run (default 5; smoke 1)
#   --rounds N        rounds, the targets alternating order each round (default 3; smoke 1)
#   --build-dir DIR   where remorad and redis_state_load are built (default: build-bench in the
#                     repo, or $BENCH_BUILD_DIR), Release
#   --remorad PATH --load PATH   use these binaries, skip set-up and build
#   --doc FILE        the results file to update (default docs/performance.md)
#   --no-doc          print only
#   --wait-idle MIN   first wait up to MIN minutes for the machine to be idle (< 10 % busy)
# Environment: BENCH_SERVER_CPU (default 1: redis-server, remorad, nginx), BENCH_CLIENT_CPU
# (default 0: wrk and redis_state_load), BENCH_NICE (e.g. -15: run every benchmarked process at
# that nice value, so compilers of a shared machine disturb less; needs root),
# BENCH_REMORAD_CPUS (e.g. 0,1: remorad's CPUs instead of BENCH_SERVER_CPU).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
bench_name=redis_state
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

smoke=0 duration="" rounds=""
build_dir=${BENCH_BUILD_DIR:-$repo/build-bench}
remorad="" load=""
doc="" no_doc=0 idle_minutes=0
server_cpu=${BENCH_SERVER_CPU:-1}
client_cpu=${BENCH_CLIENT_CPU:-0}

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --load) load=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    --wait-idle) idle_minutes=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "redis_state: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then
  : "${duration:=1}" "${rounds:=1}"
  [[ -n $doc ]] || no_doc=1
else
  : "${duration:=5}" "${rounds:=3}"
fi
: "${doc:=$repo/docs/performance.md}"

# ---- build --------------------------------------------------------------------------------
if [[ -z $remorad || -z $load ]]; then
  bash "$repo/scripts/setup.sh"
  log "building remorad and redis_state_load (Release) in $build_dir"
  if ! out=$(cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DREMORA_BUILD_TESTS=OFF 2>&1 && cmake --build "$build_dir" --target remorad redis_state_load 2>&1); then
    tail -40 <<<"$out" >&2
    die "the build failed"
  fi
  remorad=$build_dir/runtime/remorad
  load=$build_dir/bench/redis_state_load
fi
for tool in wrk nginx redis-server redis-cli taskset curl; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
[[ -x $remorad ]] || die "no remorad at $remorad"
[[ -x $load ]] || die "no redis_state_load at $load"

setup_pinning
if ((pinned)); then
  pinning="redis-server, remorad and nginx on CPU $server_cpu; wrk and redis_state_load on CPU $client_cpu (taskset)"
else
  pinning="NOT pinned (fewer than 2 usable CPUs)"
fi
# BENCH_REMORAD_CPUS (e.g. "0,1") lets remorad run on other CPUs than the server CPU.
pin_remorad=("${pin_server[@]}")
if [[ -n ${BENCH_REMORAD_CPUS:-} ]]; then
  pin_remorad=(taskset -c "$BENCH_REMORAD_CPUS")
  [[ -n ${BENCH_NICE:-} ]] && pin_remorad=(nice -n "$BENCH_NICE" "${pin_remorad[@]}")
  pinning="$pinning, except remorad on CPU(s) $BENCH_REMORAD_CPUS (BENCH_REMORAD_CPUS)"
fi
[[ -n $priority ]] && pinning="$pinning; $priority"
log "pinning: $pinning"

tmp=$(mktemp -d /tmp/remora-bench-redis.XXXXXX)
chmod 755 "$tmp"
nginx_pid="" remorad_pid="" redis_pid=""
cleanup() {
  for pid in $remorad_pid $nginx_pid $redis_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $remorad_pid $nginx_pid $redis_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$load" --free-port; }

wait_idle "$idle_minutes"
busy_before=$(busy_pct)
((busy_before < 10)) ||
  log "WARNING: the machine is ${busy_before} % busy before the run: the figures will be skewed"

# ---- the 1 KB value ---------------------------------------------------------------------------
write_1k_value "$tmp/body"
body=$(<"$tmp/body")
printf '[{"key":"bench-save","value":%s}]' "$body" >"$tmp/save.json"

# ---- redis-server -------------------------------------------------------------------------
redis_port=$(free_port)
"${pin_server[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
  --appendonly no --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 1 500); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.01
done
[[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] || die "redis-server did not start"
redis_version=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')

# ---- remorad with state.redis ---------------------------------------------------------------
mkdir -p "$tmp/resources"
cat >"$tmp/resources/statestore.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: "127.0.0.1:$redis_port"
EOF
remorad_port=$(free_port)
grpc_port=$(free_port)
"${pin_remorad[@]}" "$remorad" --app-id bench --dapr-http-port "$remorad_port" \
  --dapr-grpc-port "$grpc_port" --metrics-port 0 --resources-path "$tmp/resources" \
  >"$tmp/remorad.log" 2>&1 &
remorad_pid=$!
api="http://127.0.0.1:$remorad_port/v1.0"
wait_status "$api/healthz/outbound" 204 || { cat "$tmp/remorad.log" >&2; die "remorad did not start"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$api/state/statestore" \
  -H 'Content-Type: application/json' --data-binary "[{\"key\":\"bench-1k\",\"value\":$body}]")
[[ $code == 204 ]] || die "seeding the state store answered $code"
remorad_url="$api/state/statestore/bench-1k"
curl -s "$remorad_url" -o "$tmp/remorad.out"
cmp -s "$tmp/body" "$tmp/remorad.out" ||
  die "remorad's GET does not answer the same 1024 bytes ($(wc -c <"$tmp/remorad.out") bytes)"
[[ $(redis-cli -p "$redis_port" HGET 'bench||bench-1k' data) == "$body" ]] ||
  die "Redis does not hold the value in Dapr's layout under bench||bench-1k"
log "redis-server $redis_version on port $redis_port (pid $redis_pid); remorad on $remorad_port/$grpc_port (pid $remorad_pid)"

# ---- baseline HTTP hop: nginx -----------------------------------------------------------------
start_nginx
curl -s "$nginx_url" -o "$tmp/nginx.out"
cmp -s "$tmp/body" "$tmp/nginx.out" || die "nginx does not answer the 1024-byte body"

# ---- load ---------------------------------------------------------------------------------
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$tmp/results.txt
: >"$results"
clk_tck=$(getconf CLK_TCK)
export BENCH_DIR=$bench_dir BENCH_SAVE_BODY_FILE=$tmp/save.json

# run <target> <op> <clients> <seconds> <record:0|1>
# targets: nginx (GET only), http (remorad over HTTP, wrk), grpc (remorad over gRPC, SDK),
# direct (hiredis straight to Redis).
# Appends: target op clients requests duration_us p50 p99 rps server_cpu_us_per_req errors
run() {
  local target=$1 op=$2 clients=$3 secs=$4 record=$5 threads=1 out fields pids before after
  ((clients > 1)) && threads=2
  case $target in
    nginx) pids="$nginx_pid $nginx_worker" ;;
    direct) pids="$redis_pid" ;;
    *) pids="$remorad_pid $redis_pid" ;;
  esac
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  case $target in
    nginx|http)
      local url=$nginx_url script=$bench_dir/wrk_report.lua
      [[ $target == http ]] && url=$remorad_url
      [[ $op == save ]] && url=$api/state/statestore script=$bench_dir/wrk_save.lua
      out=$("${pin_client[@]}" wrk -t"$threads" -c"$clients" -d"${secs}s" --latency -s "$script" "$url")
      fields=$(grep '^WRK_RESULT' <<<"$out" | wrk_fields) || die "wrk printed no result: $out"
      ;;
    direct|grpc)
      local key=bench-1k
      [[ $op == save ]] && key=bench-save
      out=$("${pin_client[@]}" "$load" --target "${target/direct/redis}" --op "$op" \
        --clients "$clients" --threads "$threads" --duration "$secs" --warmup 0.2 --key "$key" \
        --app-id bench --redis "127.0.0.1:$redis_port" --grpc "127.0.0.1:$grpc_port" \
        --value-file "$tmp/body")
      fields=$(grep '^LOAD_RESULT' <<<"$out" |
        awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
               print v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], v["errors"] }') ||
        die "redis_state_load printed no result: $out"
      ;;
  esac
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  ((record)) || return 0
  awk -v t="$target" -v o="$op" -v c="$clients" -v ticks=$((after - before)) -v tck="$clk_tck" '{
      rps = $1 / ($2 / 1e6); cpu = $1 > 0 ? ticks * 1e6 / tck / $1 : 0
      printf "%s %s %s %d %d %d %d %.0f %.2f %d\n", t, o, c, $1, $2, $3, $4, rps, cpu, $5
    }' <<<"$fields" >>"$results"
  log "$(tail -1 "$results" | awk '{ printf "%-6s %-4s %2s clients: %8.0f req/s  p50 %4d us  p99 %5d us  server CPU %6.2f us/req  errors %d", $1, $2, $3, $8, $6, $7, $9, $10 }')"
}

runs=("nginx get" "http get" "grpc get" "direct get" "http save" "grpc save" "direct save")
log "warm-up: 1 s of 32 clients per target"
for r in "${runs[@]}"; do read -r t o <<<"$r"; run "$t" "$o" 32 1 0; done
log "load: ${duration} s per run, $rounds round(s), the order reversed every other round"
for ((round = 1; round <= rounds; round++)); do
  for clients in 1 32; do
    order=("${runs[@]}")
    if ((round % 2 == 0)); then
      order=(); for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[i]}"); done
    fi
    for r in "${order[@]}"; do read -r t o <<<"$r"; run "$t" "$o" "$clients" "$duration" 1; done
  done
done

# ---- figures ------------------------------------------------------------------------------
# Median over the rounds of one column (6 p50, 7 p99, 8 rps, 9 cpu).
med() { awk -v t="$1" -v o="$2" -v c="$3" -v col="$4" '$1 == t && $2 == o && $3 == c { print $col }' "$results" | median_of; }
declare -A F
for r in "${runs[@]}"; do
  read -r t o <<<"$r"
  for c in 1 32; do
    F[$t,$o,$c,p50]=$(med "$t" "$o" "$c" 6)
    F[$t,$o,$c,p99]=$(med "$t" "$o" "$c" 7)
    F[$t,$o,$c,rps]=$(med "$t" "$o" "$c" 8)
    F[$t,$o,$c,cpu]=$(med "$t" "$o" "$c" 9)
  done
done
check() { awk -v x="$2" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/ && x + 0 > 0) }' ||
  die "figure '$1' is missing or not positive: '$2'"; }
for k in "${!F[@]}"; do check "$k" "${F[$k]}"; done
total_errors=$(awk '{ e += $10 } END { print e + 0 }' "$results")
((total_errors == 0)) || log "WARNING: $total_errors errors (see the per-run figures)"

calc() { awk "BEGIN { $1 }"; }
verdict() { calc "print (($1) ? \"met\" : \"**MISSED**\")"; }
fmt_rps() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
fmt2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
pct() { calc "printf \"%.0f %%\", 100 * $1 / $2"; }

budget=$(calc "print ${F[direct,get,1,p50]} + ${F[nginx,get,1,p50]} + 15")
v_p50=$(verdict "${F[http,get,1,p50]} <= $budget")
v_rps_get=$(verdict "${F[http,get,32,rps]} >= 0.5 * ${F[direct,get,32,rps]}")
v_rps_save=$(verdict "${F[http,save,32,rps]} >= 0.5 * ${F[direct,save,32,rps]}")

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- runtime components bench 2>/dev/null | head -1)
[[ -n $dirty ]] && commit="$commit (+ uncommitted changes in runtime/, components/ or bench/)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
today=$(date -u +%F)
mode="full"
((smoke)) && mode="smoke (figures not meaningful)"

row() {  # label target op clients
  local t=$2 o=$3 c=$4
  echo "| $1 | ${F[$t,$o,$c,p50]} µs | ${F[$t,$o,$c,p99]} µs | $(fmt_rps "${F[$t,$o,$c,rps]}") | $(fmt2 "${F[$t,$o,$c,cpu]}") µs |"
}

section=$tmp/section.md
{
  echo "### $today — state GET and SAVE with state.redis, 1 KB value"
  echo
  echo "| operation, clients | p50 | p99 | requests/s | server CPU per request |"
  echo "|---|---:|---:|---:|---:|"
  for c in 1 32; do
    row "GET, $c — direct hiredis → Redis" direct get "$c"
    row "GET, $c — HTTP hop alone (nginx)" nginx get "$c"
    row "GET, $c — remorad HTTP → Redis" http get "$c"
    row "GET, $c — remorad gRPC (SDK) → Redis" grpc get "$c"
    row "SAVE, $c — direct hiredis → Redis" direct save "$c"
    row "SAVE, $c — remorad HTTP → Redis" http save "$c"
    row "SAVE, $c — remorad gRPC (SDK) → Redis" grpc save "$c"
  done
  echo
  echo "| target | figures | |"
  echo "|---|---|---|"
  echo "| GET p50 at 1 client ≤ direct Redis p50 + HTTP hop p50 + 15 µs | ${F[http,get,1,p50]} µs vs ${F[direct,get,1,p50]} + ${F[nginx,get,1,p50]} + 15 = $budget µs | $v_p50 |"
  echo "| GET requests/s at 32 clients ≥ 50 % of direct hiredis | $(fmt_rps "${F[http,get,32,rps]}") vs $(fmt_rps "${F[direct,get,32,rps]}"): $(pct "${F[http,get,32,rps]}" "${F[direct,get,32,rps]}") | $v_rps_get |"
  echo "| SAVE requests/s at 32 clients ≥ 50 % of direct hiredis | $(fmt_rps "${F[http,save,32,rps]}") vs $(fmt_rps "${F[direct,save,32,rps]}"): $(pct "${F[http,save,32,rps]}" "${F[direct,save,32,rps]}") | $v_rps_save |"
  echo
  echo "Run: $mode; commit $commit; $cpu_model, $(nproc) CPUs, Linux $(uname -r);"
  echo "redis-server $redis_version (no persistence), nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')."
  echo "GET reads \`bench||bench-1k\` (seeded through remorad's HTTP API: 1024 bytes of JSON"
  echo "text); SAVE writes \`bench||bench-save\` without etag. Direct = bench/redis_state_load with"
  echo "hiredis sending what state.redis sends (GET: HGETALL + PTTL pipelined; SAVE: EVALSHA of the"
  echo "set script), 1 or 2 threads driving the connections with poll(); HTTP = wrk (-t1 -c1,"
  echo "-t2 -c32; SAVE POSTs a one-item array); gRPC = bench/redis_state_load with one thread and"
  echo "one SDK client per client. ${duration} s per run, $rounds round(s) (medians), after a 1 s"
  echo "warm-up per target; $pinning. Server CPU = utime+stime of the server processes"
  echo "(remorad + redis-server; direct: redis-server; nginx: master + worker) per request."
  echo "Machine before the run: ${busy_before} % busy (all CPUs, 2 s), load average $loadavg_before;"
  echo "after: load average $(cut -d' ' -f1-3 /proc/loadavg). Errors: $total_errors."
  echo "Reproduce: \`BENCH_NICE=-15 bench/redis_state.sh\` (\`--help\` for durations and CPUs)."
  if ((busy_before >= 10)); then
    echo
    echo "**The machine was busy with other work during this run (${busy_before} % before it): the"
    echo "absolute figures are inflated and the comparisons (the verdicts above included) are not"
    echo "evidence either way; rerun on an idle machine.**"
  fi
} >"$section"

echo
cat "$section"
echo
echo "Per-run figures (target op clients requests duration_us p50 p99 req/s cpu_us/req errors):"
cat "$results"

if ((no_doc == 0)); then
  write_doc_section redis_state "$section" "$doc"
  log "updated $doc"
fi
