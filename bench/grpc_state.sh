#!/usr/bin/env bash
# gRPC state GET of a 1 KB value through remorad with the C++ SDK's remote transport, against a
# baseline gRPC server answering the same bytes (bench/grpc_baseline_server.cc: Dapr.GetState and
# nothing else), the same client (bench/grpc_state_client.cc) in the same run, 1 client making
# sequential calls; plus the same GET through the SDK's embedded transport, and an SDK
# application's first call after exec (bench/grpc_first_call.cc) against the running remorad.
#
#   bench/grpc_state.sh                 full run (10 s per load, 3 rounds), updates
#                                       docs/performance.md
#   bench/grpc_state.sh --smoke         1 s per load, 1 round, 3 first calls; no doc
#
# Options:
#   --duration S      seconds per recorded run (default 10; smoke 1), after a 1 s warm-up
#   --rounds N        rounds, the servers alternating order each round (default 3; smoke 1)
#   --first-runs N    first calls timed, median reported (default 10; smoke 3)
#   --build-dir DIR   where the binaries are built (default: build-bench in the repo, or
#                     $BENCH_BUILD_DIR), Release
#   --remorad PATH --baseline PATH --client PATH --first-call PATH
#                     use these binaries, skip set-up and build (ctest does)
#   --doc FILE        the results file to update (default docs/performance.md)
#   --no-doc          print only
#   --wait-idle MIN   first wait up to MIN minutes for the machine to be idle (< 10 % busy)
# Environment: BENCH_SERVER_CPU (default 1: remorad and the baseline), BENCH_CLIENT_CPU (default
# 0: the client), BENCH_NICE (e.g. -15: every benchmarked process at that nice value; needs root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
bench_name=grpc_state
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

smoke=0 duration="" rounds="" first_runs=""
build_dir=${BENCH_BUILD_DIR:-$repo/build-bench}
remorad="" baseline="" client="" first_call=""
doc="" no_doc=0 idle_minutes=0
server_cpu=${BENCH_SERVER_CPU:-1}
client_cpu=${BENCH_CLIENT_CPU:-0}

usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --first-runs) first_runs=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --baseline) baseline=$2; shift ;;
    --client) client=$2; shift ;;
    --first-call) first_call=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    --wait-idle) idle_minutes=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "grpc_state: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then
  : "${duration:=1}" "${rounds:=1}" "${first_runs:=3}"
  [[ -n $doc ]] || no_doc=1  # smoke figures are not worth recording
else
  : "${duration:=10}" "${rounds:=3}" "${first_runs:=10}"
fi
: "${doc:=$repo/docs/performance.md}"

# ---- build --------------------------------------------------------------------------------
if [[ -z $remorad || -z $baseline || -z $client || -z $first_call ]]; then
  log "building remorad and the gRPC bench tools (Release) in $build_dir"
  if ! out=$(cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DREMORA_BUILD_TESTS=OFF 2>&1 && cmake --build "$build_dir" --target remorad \
    grpc_baseline_server grpc_state_client grpc_first_call 2>&1); then
    tail -40 <<<"$out" >&2
    die "the build failed"
  fi
  remorad=$build_dir/runtime/remorad
  baseline=$build_dir/bench/grpc_baseline_server
  client=$build_dir/bench/grpc_state_client
  first_call=$build_dir/bench/grpc_first_call
fi
for b in "$remorad" "$baseline" "$client" "$first_call"; do [[ -x $b ]] || die "no binary at $b"; done
command -v taskset >/dev/null || die "taskset is missing"

# ---- pinning ------------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
setup_pinning
if ((pinned)); then
  pinning="servers on CPU $server_cpu, the client on CPU $client_cpu (taskset)"
else
  pinning="NOT pinned (fewer than 2 usable CPUs): servers and client share the CPU(s)"
fi
[[ -n $priority ]] && pinning="$pinning; $priority"
log "pinning: $pinning"

tmp=$(mktemp -d /tmp/remora-grpc-bench.XXXXXX)
remorad_pid="" baseline_pid=""
cleanup() {
  for pid in $remorad_pid $baseline_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $remorad_pid $baseline_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_idle "$idle_minutes"
busy_before=$(busy_pct)
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
((busy_before < 10)) ||
  log "WARNING: the machine is ${busy_before} % busy before the run (load average $loadavg_before): the figures will be skewed"

# The same 1024 bytes for both servers and the embedded store (a JSON string, bench/lib.sh).
write_1k_value "$tmp/value"

# ---- remorad, seeded over gRPC ------------------------------------------------------------
http_port=$("$client" --free-port)
grpc_port=$("$client" --free-port)
"${pin_server[@]}" "$remorad" --app-id bench --dapr-http-port "$http_port" \
  --dapr-grpc-port "$grpc_port" --metrics-port 0 --log-level warn >"$tmp/remorad.log" 2>&1 &
remorad_pid=$!
remorad_addr=127.0.0.1:$grpc_port
seed=$("${pin_client[@]}" "$client" --seed "$remorad_addr" --value-file "$tmp/value") ||
  { cat "$tmp/remorad.log" >&2; die "seeding remorad over gRPC failed"; }
etag=$(sed -n 's/.* etag=\(.*\)/\1/p' <<<"$seed")
[[ -n $etag ]] || die "remorad answered no etag: $seed"
sleep 0.2
remorad_rss_idle=$(status_kb "$remorad_pid" VmRSS)
remorad_threads=$(ls "/proc/$remorad_pid/task" | wc -l)
log "remorad on $remorad_addr (pid $remorad_pid, $remorad_threads threads), $seed, RSS idle $(mib "$remorad_rss_idle") MiB"

# ---- baseline -----------------------------------------------------------------------------
"${pin_server[@]}" "$baseline" --port 0 --value-file "$tmp/value" --etag "$etag" \
  >"$tmp/baseline.out" 2>"$tmp/baseline.log" &
baseline_pid=$!
for _ in $(seq 1 500); do
  grep -q '^PORT ' "$tmp/baseline.out" 2>/dev/null && break
  kill -0 "$baseline_pid" 2>/dev/null || { cat "$tmp/baseline.log" >&2; die "the baseline exited"; }
  sleep 0.01
done
baseline_addr=127.0.0.1:$(awk '/^PORT / { print $2 }' "$tmp/baseline.out")
[[ $baseline_addr != "127.0.0.1:" ]] || die "the baseline printed no port"
"${pin_client[@]}" "$client" --wait "$baseline_addr" || die "the baseline never answered"
sleep 0.2
baseline_rss_idle=$(status_kb "$baseline_pid" VmRSS)
baseline_threads=$(ls "/proc/$baseline_pid/task" | wc -l)
log "baseline on $baseline_addr (pid $baseline_pid, $baseline_threads threads), RSS idle $(mib "$baseline_rss_idle") MiB"

# ---- load: the two servers alternating, then embedded -------------------------------------
results=$tmp/results.txt
: >"$results"
# run_get <server> -> appends "server requests duration_us p50 p99 calls/s cpu_us/call errors"
run_get() {
  local server=$1 addr pid before after out
  if [[ $server == baseline ]]; then addr=$baseline_addr pid=$baseline_pid
  else addr=$remorad_addr pid=$remorad_pid; fi
  before=$(cpu_ticks "$pid")
  out=$("${pin_client[@]}" "$client" --get "$addr" --duration "$duration" --warmup 1) ||
    die "the client failed against $server"
  after=$(cpu_ticks "$pid")
  [[ $out == LOAD_RESULT* ]] || die "no result against $server: $out"
  grep -q " bytes=1024 etag=$etag\$" <<<"$out" ||
    die "$server did not answer the 1024 bytes and etag $etag: $out"
  # The warm-up second is outside the client's figures but inside the CPU ticks: scale the
  # ticks by recorded/(recorded + warm-up) time, assuming the same rate during both.
  awk -v s="$server" -v ticks=$((after - before)) -v tck="$clk_tck" -v d="$duration" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rps = v["requests"] / (v["duration_us"] / 1e6)
      cpu = ticks * 1e6 / tck * (d / (d + 1)) / v["requests"]
      printf "%s %d %d %.2f %.2f %.0f %.2f %d\n", s, v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], rps, cpu, v["errors"]
    }' <<<"$out" >>"$results"
  log "$(tail -1 "$results" | awk '{ printf "%-8s %7.0f calls/s  p50 %7.2f us  p99 %8.2f us  CPU %6.2f us/call  errors %d", $1, $6, $4, $5, $7, $8 }')"
}
run_embedded() {
  local out
  out=$("${pin_client[@]}" "$client" --embedded --value-file "$tmp/value" --duration "$duration" \
    --warmup 1) || die "the embedded client failed"
  grep -q ' bytes=1024 ' <<<"$out" || die "embedded GET did not answer 1024 bytes: $out"
  awk '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "embedded %d %d %.3f %.3f %.0f 0 %d\n", v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], v["requests"] / (v["duration_us"] / 1e6), v["errors"]
    }' <<<"$out" >>"$results"
  log "$(tail -1 "$results" | awk '{ printf "embedded %7.0f calls/s  p50 %7.3f us  p99 %8.3f us", $6, $4, $5 }')"
}

log "load: 1 client, sequential GETs, ${duration} s per run after 1 s warm-up, $rounds round(s) alternating"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(baseline remorad); else order=(remorad baseline); fi
  for server in "${order[@]}"; do run_get "$server"; done
  run_embedded
done
remorad_rss_peak=$(status_kb "$remorad_pid" VmHWM)
baseline_rss_peak=$(status_kb "$baseline_pid" VmHWM)

# ---- first call ---------------------------------------------------------------------------
log "first call: exec of grpc_first_call → first GET answered by remorad, $first_runs runs (+1 warm-up)"
first=$("${pin_client[@]}" "$client" --first-call-runs "$first_runs" "$remorad_addr" \
  --child "$first_call") || die "the first-call runs failed"
first_field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$first"; }
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- figures ------------------------------------------------------------------------------
median() { awk -v s="$1" -v col="$2" '$1 == s { print $col }' "$results" | median_of; }
declare -A F
for s in baseline remorad embedded; do
  F[$s,p50]=$(median "$s" 4)
  F[$s,p99]=$(median "$s" 5)
  F[$s,rps]=$(median "$s" 6)
  F[$s,cpu]=$(median "$s" 7)
done
first_ms=$(awk -v us="$(first_field median_us)" 'BEGIN { printf "%.2f", us / 1000 }')
first_min_ms=$(awk -v us="$(first_field min_us)" 'BEGIN { printf "%.2f", us / 1000 }')
first_max_ms=$(awk -v us="$(first_field max_us)" 'BEGIN { printf "%.2f", us / 1000 }')
first_child_ms=$(awk -v us="$(first_field in_child_median_us)" 'BEGIN { printf "%.2f", us / 1000 }')
total_errors=$(awk '{ e += $8 } END { print e + 0 }' "$results")

# Every figure must be a positive number: this is all the smoke test asserts.
check() { awk -v x="$2" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/ && x + 0 > 0) }' ||
  die "figure '$1' is missing or not positive: '$2'"; }
for k in "${!F[@]}"; do [[ $k == embedded,cpu ]] || check "$k" "${F[$k]}"; done
for v in remorad_rss_idle remorad_rss_peak baseline_rss_idle baseline_rss_peak first_ms \
  first_child_ms; do check "$v" "${!v}"; done
((total_errors == 0)) || log "WARNING: $total_errors calls failed (see the per-run figures)"

calc() { awk "BEGIN { $1 }"; }
verdict() { calc "print (($1) ? \"met\" : \"**MISSED**\")"; }
added_p50=$(calc "printf \"%+.1f\", ${F[remorad,p50]} - ${F[baseline,p50]}")
added_p99=$(calc "printf \"%+.1f\", ${F[remorad,p99]} - ${F[baseline,p99]}")
x_p50=$(calc "printf \"×%.2f\", ${F[remorad,p50]} / ${F[baseline,p50]}")
x_p99=$(calc "printf \"×%.2f\", ${F[remorad,p99]} / ${F[baseline,p99]}")
pct_rps=$(calc "printf \"%.0f %%\", 100 * ${F[remorad,rps]} / ${F[baseline,rps]}")
x_cpu=$(calc "printf \"×%.2f\", ${F[remorad,cpu]} / ${F[baseline,cpu]}")
x_rss_idle=$(calc "printf \"×%.1f\", $remorad_rss_idle / $baseline_rss_idle")
x_rss_peak=$(calc "printf \"×%.1f\", $remorad_rss_peak / $baseline_rss_peak")
v_p50=$(verdict "${F[remorad,p50]} - ${F[baseline,p50]} <= 40")
v_emb=$(verdict "${F[embedded,p50]} <= 2")
v_first=$(verdict "$first_ms <= 5")
fmt0() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
fmt1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
fmt2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- runtime components sdk proto 2>/dev/null | head -1)
[[ -n $dirty ]] && commit="$commit (+ uncommitted changes in runtime/, components/, sdk/ or proto/)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
today=$(date -u +%F)
mode="full"
((smoke)) && mode="smoke (figures not meaningful)"

section=$tmp/section.md
{
  echo "### $today — gRPC state GET through the C++ SDK, 1 KB value"
  echo
  echo "| figure | baseline gRPC server | remorad | remorad vs baseline | target | |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| p50 latency, 1 client | $(fmt1 "${F[baseline,p50]}") µs | $(fmt1 "${F[remorad,p50]}") µs | $added_p50 µs ($x_p50) | added ≤ 40 µs | $v_p50 |"
  echo "| p99 latency, 1 client | $(fmt1 "${F[baseline,p99]}") µs | $(fmt1 "${F[remorad,p99]}") µs | $added_p99 µs ($x_p99) | | |"
  echo "| calls/s, 1 client | $(fmt0 "${F[baseline,rps]}") | $(fmt0 "${F[remorad,rps]}") | $pct_rps | | |"
  echo "| server CPU per call | $(fmt2 "${F[baseline,cpu]}") µs | $(fmt2 "${F[remorad,cpu]}") µs | $x_cpu | | |"
  echo "| RSS idle (VmRSS) | $(mib "$baseline_rss_idle") MiB | $(mib "$remorad_rss_idle") MiB | $x_rss_idle | | |"
  echo "| RSS peak (VmHWM) | $(mib "$baseline_rss_peak") MiB | $(mib "$remorad_rss_peak") MiB | $x_rss_peak | | |"
  echo "| embedded GET p50 / p99 (in-process, state.in-memory) | | $(fmt2 "${F[embedded,p50]}") / $(fmt2 "${F[embedded,p99]}") µs | | p50 ≤ 2 µs | $v_emb |"
  echo "| embedded GETs/s, 1 thread | | $(fmt0 "${F[embedded,rps]}") | | | |"
  echo "| SDK app's first call: exec → first GET answered, median (min–max) | | $first_ms ms ($first_min_ms–$first_max_ms) | | ≤ 5 ms | $v_first |"
  echo "| … of which client construction → answer, inside the app (connect included) | | $first_child_ms ms | | | |"
  echo
  echo "Run: $mode; commit $commit; $cpu_model, $(nproc) CPUs, Linux $(uname -r)."
  echo "One client (\`bench/grpc_state_client\`, the SDK's remote transport \`remora::Client::Remote\`)"
  echo "making sequential \`GetState\` calls for a key holding 1024 bytes, every call's latency"
  echo "recorded (exact percentiles); ${duration} s per run after a 1 s warm-up, $rounds round(s) with"
  echo "the servers alternating (ABBA), medians over the rounds. Baseline: \`bench/grpc_baseline_server\`,"
  echo "gRPC's callback API answering the same 1024 bytes and etag \`$etag\` for any key, nothing else"
  echo "($baseline_threads threads). remorad: \`state.in-memory\`, seeded over gRPC \`SaveState\` ($remorad_threads threads)."
  echo "Server CPU: utime + stime from \`/proc/<pid>/stat\` around each run, the warm-up second's share"
  echo "removed, ÷ calls. Embedded: \`remora::Client::Embedded()\` in the client process, same key and"
  echo "value, same loop. First call: \`bench/grpc_first_call\` (linked with \`remora_sdk_remote\` only)"
  echo "posix_spawn'ed $first_runs times after one warm-up run, against the running remorad. $pinning."
  echo "Machine: ${busy_before} % busy before the run (all CPUs, 2 s); load average $loadavg_before before,"
  echo "$loadavg_after after. Failed calls: $total_errors."
} >"$section"

echo
cat "$section"
echo
echo "Per-run figures (server requests duration_us p50_us p99_us calls/s cpu_us/call errors):"
cat "$results"

# ---- docs/performance.md ------------------------------------------------------------------
if ((no_doc == 0)); then
  write_doc_section grpc_state "$section" "$doc"
  log "updated $doc"
fi
