#!/usr/bin/env bash
# HTTP state GET of a 1 KB value through remorad, against nginx answering the same 1024 bytes
# with `return 200` (one worker, keep-alive), driven by the same wrk in the same run.
#
#   bench/http_state_get.sh                 full run (~10 s per load, 3 rounds), updates
#                                           docs/performance.md
#   bench/http_state_get.sh --smoke         ~1 s per load, 1 round, 3 cold starts; no doc
#
# Options:
#   --duration S      seconds per wrk run (default 10; smoke 1)
#   --rounds N        alternating nginx/remorad rounds per connection count (default 3; smoke 1)
#   --cold-runs N     cold starts per server, median reported (default 10; smoke 3)
#   --build-dir DIR   where remorad and cold_start are built (default: build-bench in the repo,
#                     or $BENCH_BUILD_DIR), Release
#   --remorad PATH --cold-start PATH   use these binaries, skip set-up and build (ctest does)
#   --doc FILE        the results file to update (default docs/performance.md)
#   --no-doc          print only
#   --wait-idle MIN   first wait up to MIN minutes for the machine to be idle (< 10 % busy
#                     over 2 s): on a shared machine other work skews every figure
# Environment: BENCH_SERVER_CPU (default 1), BENCH_CLIENT_CPU (default 0); BENCH_NICE (e.g. -15,
# needs root) runs every benchmarked process at that priority, so that other work on a shared
# machine disturbs the figures less (bench/lib.sh).
#
# What is measured, and how, is described in docs/performance.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench

smoke=0
duration="" rounds="" cold_runs=""
build_dir=${BENCH_BUILD_DIR:-$repo/build-bench}
remorad="" cold_start=""
doc="" no_doc=0 wait_idle=0
server_cpu=${BENCH_SERVER_CPU:-1}
client_cpu=${BENCH_CLIENT_CPU:-0}

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --cold-runs) cold_runs=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --cold-start) cold_start=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    --wait-idle) wait_idle=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "http_state_get: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then
  : "${duration:=1}" "${rounds:=1}" "${cold_runs:=3}"
  [[ -n $doc ]] || no_doc=1  # smoke figures are not worth recording
else
  : "${duration:=10}" "${rounds:=3}" "${cold_runs:=10}"
fi
: "${doc:=$repo/docs/performance.md}"

bench_name=bench
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

# ---- build --------------------------------------------------------------------------------
if [[ -z $remorad || -z $cold_start ]]; then
  bash "$repo/scripts/setup.sh"
  log "building remorad and cold_start (Release) in $build_dir"
  if ! out=$(cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DREMORA_BUILD_TESTS=OFF 2>&1 && cmake --build "$build_dir" --target remorad cold_start 2>&1); then
    tail -40 <<<"$out" >&2
    die "the build failed"
  fi
  remorad=$build_dir/runtime/remorad
  cold_start=$build_dir/bench/cold_start
fi
for tool in wrk nginx taskset curl; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
nginx_bin=$(command -v nginx)
[[ -x $remorad ]] || die "no remorad at $remorad"
[[ -x $cold_start ]] || die "no cold_start at $cold_start"

# ---- pinning ------------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
setup_pinning
if ((pinned)); then
  cold_cpus=(--server-cpu "$server_cpu" --client-cpu "$client_cpu")
  pinning="server under test on CPU $server_cpu, wrk (and the cold-start poller) on CPU $client_cpu (taskset)"
else
  cold_cpus=()
  pinning="NOT pinned (fewer than 2 usable CPUs): server and wrk share the CPU(s)"
fi
[[ -n $priority ]] && pinning="$pinning; $priority"
log "pinning: $pinning"

tmp=$(mktemp -d /tmp/remora-bench.XXXXXX)
chmod 755 "$tmp"
nginx_pid="" remorad_pid=""
cleanup() {
  for pid in $remorad_pid $nginx_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $remorad_pid $nginx_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ------------------------------------------------------------------------------
free_port() { "$cold_start" --free-port; }

wait_idle "$wait_idle"
busy_before=$(busy_pct)
((busy_before < 10)) ||
  log "WARNING: the machine is ${busy_before} % busy before the run: the figures will be skewed"

# ---- the 1 KB value -----------------------------------------------------------------------
# Dapr's HTTP API stores the JSON text of "value": a JSON string keeps its quotes. 1022 letters
# in quotes are exactly 1024 stored bytes, served back verbatim by GET.
write_1k_value "$tmp/body"
body=$(<"$tmp/body")

# ---- baseline: nginx ----------------------------------------------------------------------
# One worker, `return 200` of the same bytes, keep-alive that never ends during a run, no
# access log, its own prefix and config in the temp dir (bench/lib.sh).
start_nginx
curl -s "$nginx_url" -o "$tmp/nginx.out"
cmp -s "$tmp/body" "$tmp/nginx.out" || die "nginx does not answer the 1024-byte body"
nginx_rss_idle=$(status_kb "$nginx_worker" VmRSS)
log "nginx $($nginx_bin -v 2>&1 | sed 's/.*\///') on port $nginx_port (master $nginx_pid, worker $nginx_worker)"

# ---- remorad ------------------------------------------------------------------------------
remorad_port=$(free_port)
"${pin_server[@]}" "$remorad" --app-id bench --dapr-http-port "$remorad_port" \
  --dapr-grpc-port 0 --metrics-port 0 >"$tmp/remorad.log" 2>&1 &
remorad_pid=$!
api="http://127.0.0.1:$remorad_port/v1.0"
wait_status "$api/healthz" 204 || { cat "$tmp/remorad.log" >&2; die "remorad did not start"; }
remorad_rss_start=$(status_kb "$remorad_pid" VmRSS)
# The gRPC API starts after the HTTP one, in the background; idle means after both are up
# (the outbound health check includes gRPC).
wait_status "$api/healthz/outbound" 204 || die "remorad's outbound health never answered 204"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$api/state/statestore" \
  -H 'Content-Type: application/json' --data-binary "[{\"key\":\"bench-1k\",\"value\":$body}]")
[[ $code == 204 ]] || die "seeding the state store answered $code"
remorad_url="$api/state/statestore/bench-1k"
curl -s "$remorad_url" -o "$tmp/remorad.out"
cmp -s "$tmp/body" "$tmp/remorad.out" ||
  die "remorad's GET does not answer the same 1024 bytes ($(wc -c <"$tmp/remorad.out") bytes)"
sleep 0.2
remorad_rss_idle=$(status_kb "$remorad_pid" VmRSS)
remorad_threads=$(ls "/proc/$remorad_pid/task" | wc -l)
remorad_loops=0
for t in /proc/"$remorad_pid"/task/*; do
  if [[ $(<"$t/comm") == remorad ]]; then remorad_loops=$((remorad_loops + 1)); fi
done
remorad_loops=$((remorad_loops - 1))  # threads keep the process name: main + event loops
log "remorad on port $remorad_port (pid $remorad_pid, $remorad_threads threads, $remorad_loops event loops), RSS idle $(mib "$remorad_rss_idle") MiB"

# ---- load ---------------------------------------------------------------------------------
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$tmp/results.txt
: >"$results"
wrk_log=$tmp/wrk.log

# run_load <server> <conns> <threads> <seconds> <record:0|1>
run_load() {
  local server=$1 conns=$2 threads=$3 secs=$4 record=$5 url pids before after out line
  if [[ $server == nginx ]]; then url=$nginx_url pids="$nginx_pid $nginx_worker"
  else url=$remorad_url pids=$remorad_pid; fi
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  out=$("${pin_client[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
    -s "$bench_dir/wrk_report.lua" "$url")
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  printf '== %s %s conns\n%s\n' "$server" "$conns" "$out" >>"$wrk_log"
  line=$(grep '^WRK_RESULT' <<<"$out") || die "wrk printed no result for $server: $out"
  ((record)) || return 0
  # -> server conns requests duration_us p50 p99 rps cpu_us_per_request errors
  awk -v s="$server" -v c="$conns" -v ticks=$((after - before)) -v tck="$clk_tck" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      errors = v["errors_connect"] + v["errors_read"] + v["errors_write"] + v["errors_status"] + v["errors_timeout"]
      rps = v["requests"] / (v["duration_us"] / 1e6)
      cpu = v["requests"] > 0 ? ticks * 1e6 / tck / v["requests"] : 0
      printf "%s %s %d %d %d %d %.0f %.2f %d\n", s, c, v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], rps, cpu, errors
    }' <<<"$line" >>"$results"
  log "$(tail -1 "$results" | awk '{ printf "%-7s %2s conns: %8.0f req/s  p50 %4d us  p99 %5d us  CPU %6.2f us/req  errors %d", $1, $2, $7, $5, $6, $8, $9 }')"
}

conn_levels=("1 1" "32 2")  # connections, wrk threads
log "warm-up: 1 s of 32 connections against each server"
run_load nginx 32 2 1 0
run_load remorad 32 2 1 0
log "load: ${duration} s per run, $rounds round(s), alternating the servers (ABBA)"
for ((r = 1; r <= rounds; r++)); do
  for level in "${conn_levels[@]}"; do
    read -r conns threads <<<"$level"
    if ((r % 2)); then order=(nginx remorad); else order=(remorad nginx); fi
    for server in "${order[@]}"; do run_load "$server" "$conns" "$threads" "$duration" 1; done
  done
done
remorad_rss_peak=$(status_kb "$remorad_pid" VmHWM)
remorad_rss_after=$(status_kb "$remorad_pid" VmRSS)
nginx_rss_peak=$(status_kb "$nginx_worker" VmHWM)

# ---- cold start ---------------------------------------------------------------------------
cold_port=$(free_port)
log "cold start: remorad, $cold_runs runs (+1 warm-up)"
remorad_cold=$("${pin_client[@]}" "$cold_start" --runs "$cold_runs" --port "$cold_port" \
  "${cold_cpus[@]}" \
  --path /v1.0/healthz --status 204 --log "$tmp/cold-remorad.log" -- \
  "$remorad" --app-id bench --dapr-http-port "$cold_port" --dapr-grpc-port 0 --metrics-port 0 \
  2>"$tmp/cold-remorad.runs") || { cat "$tmp/cold-remorad.runs" >&2; die "remorad cold start failed"; }
nginx_conf "$cold_port" "$tmp/nginx/cold.pid" >"$tmp/nginx/cold.conf"
log "cold start: nginx, $cold_runs runs (+1 warm-up)"
nginx_cold=$("${pin_client[@]}" "$cold_start" --runs "$cold_runs" --port "$cold_port" \
  "${cold_cpus[@]}" \
  --path / --status 200 --log "$tmp/cold-nginx.log" -- \
  "$nginx_bin" -p "$tmp/nginx/" -c "$tmp/nginx/cold.conf" -e "$tmp/nginx/error.log" \
  2>"$tmp/cold-nginx.runs") || { cat "$tmp/cold-nginx.runs" >&2; die "nginx cold start failed"; }
cold_field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; }
cold_ms() { awk -v us="$(cold_field "$1" "$2")" 'BEGIN { printf "%.1f", us / 1000 }'; }

# ---- figures ------------------------------------------------------------------------------
# Median over the rounds of one column (5 p50, 6 p99, 7 rps, 8 cpu) for a server and level.
median() {
  awk -v s="$1" -v c="$2" -v col="$3" '$1 == s && $2 == c { print $col }' "$results" | median_of
}
total_errors=$(awk '{ e += $9 } END { print e + 0 }' "$results")

declare -A F
for s in nginx remorad; do
  for c in 1 32; do
    F[$s,$c,p50]=$(median "$s" "$c" 5)
    F[$s,$c,p99]=$(median "$s" "$c" 6)
    F[$s,$c,rps]=$(median "$s" "$c" 7)
    F[$s,$c,cpu]=$(median "$s" "$c" 8)
  done
done

# Every figure must be a positive number: this is all the smoke test asserts.
check() { awk -v x="$2" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/ && x + 0 > 0) }' ||
  die "figure '$1' is missing or not positive: '$2'"; }
for k in "${!F[@]}"; do check "$k" "${F[$k]}"; done
for v in remorad_rss_idle remorad_rss_peak nginx_rss_idle nginx_rss_peak; do check "$v" "${!v}"; done
check "remorad cold start" "$(cold_field "$remorad_cold" median_us)"
check "nginx cold start" "$(cold_field "$nginx_cold" median_us)"
((total_errors == 0)) || log "WARNING: wrk counted $total_errors socket or HTTP errors (see the table)"

calc() { awk "BEGIN { $1 }"; }
verdict() { calc "print (($1) ? \"met\" : \"**MISSED**\")"; }

added_p50=$(calc "printf \"%+d\", ${F[remorad,1,p50]} - ${F[nginx,1,p50]}")
added_p99_1=$(calc "printf \"%+d\", ${F[remorad,1,p99]} - ${F[nginx,1,p99]}")
added_p50_32=$(calc "printf \"%+d\", ${F[remorad,32,p50]} - ${F[nginx,32,p50]}")
added_p99_32=$(calc "printf \"%+d\", ${F[remorad,32,p99]} - ${F[nginx,32,p99]}")
pct_rps_1=$(calc "printf \"%.0f %%\", 100 * ${F[remorad,1,rps]} / ${F[nginx,1,rps]}")
pct_rps_32=$(calc "printf \"%.0f %%\", 100 * ${F[remorad,32,rps]} / ${F[nginx,32,rps]}")
x_cpu_1=$(calc "printf \"×%.2f\", ${F[remorad,1,cpu]} / ${F[nginx,1,cpu]}")
x_cpu_32=$(calc "printf \"×%.2f\", ${F[remorad,32,cpu]} / ${F[nginx,32,cpu]}")
x_rss_idle=$(calc "printf \"×%.1f\", $remorad_rss_idle / $nginx_rss_idle")
x_rss_peak=$(calc "printf \"×%.1f\", $remorad_rss_peak / $nginx_rss_peak")
r_cold_us=$(cold_field "$remorad_cold" median_us)
n_cold_us=$(cold_field "$nginx_cold" median_us)
x_cold=$(calc "printf \"×%.1f\", $r_cold_us / $n_cold_us")

v_p50=$(verdict "${F[remorad,1,p50]} - ${F[nginx,1,p50]} <= 10")
v_rps=$(verdict "${F[remorad,32,rps]} >= 0.8 * ${F[nginx,32,rps]}")
v_cpu=$(verdict "${F[remorad,32,cpu]} <= 8")
v_rss=$(verdict "$remorad_rss_idle <= 10240")
v_cold=$(verdict "$r_cold_us <= 10000")

fmt_rps() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
fmt2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- runtime components 2>/dev/null | head -1)
[[ -n $dirty ]] && commit="$commit (+ uncommitted changes in runtime/ or components/)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
today=$(date -u +%F)
mode="full"
((smoke)) && mode="smoke (figures not meaningful)"

section=$tmp/section.md
{
  echo "### $today — HTTP state GET, 1 KB value"
  echo
  echo "| figure | nginx (baseline) | remorad | remorad vs baseline | target | |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| p50 latency, 1 connection | ${F[nginx,1,p50]} µs | ${F[remorad,1,p50]} µs | $added_p50 µs | added ≤ 10 µs | $v_p50 |"
  echo "| p99 latency, 1 connection | ${F[nginx,1,p99]} µs | ${F[remorad,1,p99]} µs | $added_p99_1 µs | | |"
  echo "| requests/s, 1 connection | $(fmt_rps "${F[nginx,1,rps]}") | $(fmt_rps "${F[remorad,1,rps]}") | $pct_rps_1 | | |"
  echo "| p50 latency, 32 connections | ${F[nginx,32,p50]} µs | ${F[remorad,32,p50]} µs | $added_p50_32 µs | | |"
  echo "| p99 latency, 32 connections | ${F[nginx,32,p99]} µs | ${F[remorad,32,p99]} µs | $added_p99_32 µs | | |"
  echo "| requests/s, 32 connections | $(fmt_rps "${F[nginx,32,rps]}") | $(fmt_rps "${F[remorad,32,rps]}") | $pct_rps_32 | ≥ 80 % of nginx | $v_rps |"
  echo "| server CPU per request, 1 connection | $(fmt2 "${F[nginx,1,cpu]}") µs | $(fmt2 "${F[remorad,1,cpu]}") µs | $x_cpu_1 | | |"
  echo "| server CPU per request, 32 connections | $(fmt2 "${F[nginx,32,cpu]}") µs | $(fmt2 "${F[remorad,32,cpu]}") µs | $x_cpu_32 | ≤ 8 µs | $v_cpu |"
  echo "| RSS idle, after start (nginx: its worker) | $(mib "$nginx_rss_idle") MiB | $(mib "$remorad_rss_idle") MiB | $x_rss_idle | ≤ 10 MiB | $v_rss |"
  echo "| RSS peak under load (VmHWM) | $(mib "$nginx_rss_peak") MiB | $(mib "$remorad_rss_peak") MiB | $x_rss_peak | | |"
  echo "| cold start: exec → first healthy answer, median (min–max) | $(cold_ms "$nginx_cold" median_us) ms ($(cold_ms "$nginx_cold" min_us)–$(cold_ms "$nginx_cold" max_us)) | $(cold_ms "$remorad_cold" median_us) ms ($(cold_ms "$remorad_cold" min_us)–$(cold_ms "$remorad_cold" max_us)) | $x_cold | ≤ 10 ms | $v_cold |"
  echo
  echo "Run: $mode; commit $commit; $cpu_model, $(nproc) CPUs, Linux $(uname -r);"
  echo "nginx $($nginx_bin -v 2>&1 | sed 's/.*\///'), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')."
  echo "wrk -t1 -c1 and -t2 -c32, ${duration} s each, $rounds round(s) alternating the servers"
  echo "(medians over the rounds), after a 1 s warm-up each; $pinning."
  echo "remorad ran $remorad_threads threads: main + $remorad_loops event loops (one per online CPU;"
  echo "all confined to the one pinned CPU) + $((remorad_threads - 1 - remorad_loops)) of gRPC's."
  echo "remorad RSS right after the HTTP API answered: $(mib "$remorad_rss_start") MiB; idle with"
  echo "gRPC up too (the figure above): $(mib "$remorad_rss_idle") MiB; after the load: $(mib "$remorad_rss_after") MiB."
  echo "Cold start: median of $cold_runs runs after one warm-up run."
  echo "Machine before the run: ${busy_before} % busy (all CPUs, 2 s), load average $loadavg_before;"
  echo "after: load average $(cut -d' ' -f1-3 /proc/loadavg). wrk errors: $total_errors."
  echo "Reproduce: \`${BENCH_NICE:+BENCH_NICE=$BENCH_NICE }bench/http_state_get.sh\` (\`--help\` for durations and CPUs)."
} >"$section"

echo
cat "$section"
echo
echo "Per-run figures (server conns requests duration_us p50 p99 req/s cpu_us/req errors):"
cat "$results"

# ---- docs/performance.md ------------------------------------------------------------------
if ((no_doc == 0)); then
  if [[ ! -f $doc ]]; then
    mkdir -p "$(dirname "$doc")"
    printf '# Performance\n\nResults of `bench/http_state_get.sh`, newest last.\n' >"$doc"
  fi
  write_doc_section http_state_get "$section" "$doc"
  log "updated $doc"
fi
