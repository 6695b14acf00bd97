#!/usr/bin/env bash
# Service invocation over HTTP: an app (nginx answering 1 KB on any path) called directly, through
# its own sidecar (/v1.0/invoke/<own id>/...: one sidecar), and from another sidecar by app id
# (caller sidecar -> internal gRPC -> callee sidecar -> app: two sidecars), with the same wrk in
# the same run. p50/p99 at 1 and 16 connections, CPU µs per call of each sidecar (from /proc).
#
#   bench/invoke.sh --remorad PATH            full run (~10 s per load), updates docs/performance.md
#   bench/invoke.sh --remorad PATH --smoke    ~1 s per load; no doc
#
# Options: --duration S, --no-doc, --doc FILE. Environment: BENCH_NICE (bench/lib.sh).
# Not measured yet: gRPC InvokeService (no gRPC load generator for it in the tree).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
smoke=0 duration="" remorad="" doc="" no_doc=0
server_cpu=${BENCH_SERVER_CPU:-1}
client_cpu=${BENCH_CLIENT_CPU:-0}
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --duration) duration=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "invoke: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ((smoke)); then : "${duration:=1}"; [[ -n $doc ]] || no_doc=1; else : "${duration:=10}"; fi
: "${doc:=$repo/docs/performance.md}"
bench_name=invoke
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"
[[ -x $remorad ]] || die "give --remorad PATH (a Release build of remorad)"
for tool in wrk nginx curl python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done

clk_tck=$(getconf CLK_TCK)
setup_pinning
tmp=$(mktemp -d /tmp/remora-bench-invoke.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

write_1k_value "$tmp/body"
body=$(<"$tmp/body")
start_nginx
pids+=("$nginx_pid")

export REMORA_NAMERESOLUTION_DIR=$tmp/nr
start_sidecar() {  # app_id [app_port] -> sets sidecar_pid, sidecar_port
  local port
  port=$(free_port)
  "${pin_server[@]}" "$remorad" --app-id "$1" ${2:+--app-port "$2"} --dapr-http-port "$port" \
    --dapr-grpc-port 0 --metrics-port 0 >"$tmp/$1.log" 2>&1 &
  sidecar_pid=$!
  sidecar_port=$port
  pids+=("$sidecar_pid")
  wait_status "http://127.0.0.1:$port/v1.0/healthz/outbound" 204 ||
    { cat "$tmp/$1.log" >&2; die "remorad $1 did not start"; }
}
start_sidecar callee "$nginx_port"
callee_pid=$sidecar_pid callee_port=$sidecar_port
start_sidecar caller
caller_pid=$sidecar_pid caller_port=$sidecar_port

direct_url="http://127.0.0.1:$nginx_port/orders"
one_url="http://127.0.0.1:$callee_port/v1.0/invoke/callee/method/orders"
two_url="http://127.0.0.1:$caller_port/v1.0/invoke/callee/method/orders"
for url in "$direct_url" "$one_url" "$two_url"; do
  curl -s "$url" -o "$tmp/out"
  cmp -s "$tmp/body" "$tmp/out" || die "$url does not answer the 1 KB body: $(head -c 300 "$tmp/out")"
done

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$tmp/results.txt
: >"$results"
# run_load <path: direct|one|two> <conns> <threads> <seconds> <record>
run_load() {
  local path=$1 conns=$2 threads=$3 secs=$4 record=$5 url out line b_callee b_caller a_callee a_caller
  case $path in direct) url=$direct_url ;; one) url=$one_url ;; two) url=$two_url ;; esac
  b_callee=$(cpu_ticks "$callee_pid") b_caller=$(cpu_ticks "$caller_pid")
  out=$("${pin_client[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
    -s "$bench_dir/wrk_report.lua" "$url")
  a_callee=$(cpu_ticks "$callee_pid") a_caller=$(cpu_ticks "$caller_pid")
  line=$(grep '^WRK_RESULT' <<<"$out") || die "wrk printed no result for $path: $out"
  ((record)) || return 0
  # -> path conns requests p50 p99 rps callee_cpu_us caller_cpu_us errors
  awk -v p="$path" -v c="$conns" -v t1=$((a_callee - b_callee)) -v t2=$((a_caller - b_caller)) \
      -v tck="$clk_tck" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      errors = v["errors_connect"] + v["errors_read"] + v["errors_write"] + v["errors_status"] + v["errors_timeout"]
      n = v["requests"] > 0 ? v["requests"] : 1
      printf "%s %s %d %d %d %.0f %.2f %.2f %d\n", p, c, v["requests"], v["p50_us"], v["p99_us"],
        v["requests"] / (v["duration_us"] / 1e6), t1 * 1e6 / tck / n, t2 * 1e6 / tck / n, errors
    }' <<<"$line" >>"$results"
  log "$(tail -1 "$results" | awk '{ printf "%-6s %2s conns: %8.0f req/s p50 %5d us p99 %6d us  CPU/call callee %6.2f us caller %6.2f us errors %d", $1, $2, $6, $4, $5, $7, $8, $9 }')"
}
for path in direct one two; do run_load "$path" 16 2 1 0; done
for level in "1 1" "16 2"; do
  read -r conns threads <<<"$level"
  for path in direct one two; do run_load "$path" "$conns" "$threads" "$duration" 1; done
done
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)
if awk '$9 > 0 { bad = 1 } END { exit !bad }' "$results"; then die "wrk saw errors"; fi
((no_doc)) && { log "load average before/after: $loadavg_before / $loadavg_after"; exit 0; }

today=$(date -u +%F)
section=$tmp/section.md
{
  echo "### Service invocation over HTTP ($today)"
  echo
  echo "bench/invoke.sh: nginx answering 1 KB on any path; direct, through its own sidecar (one"
  echo "sidecar), and by app id from a second sidecar over the internal gRPC API (two sidecars)."
  echo "wrk ${duration} s per run; ${priority:-default priority}; load average before/after the run:"
  echo "$loadavg_before / $loadavg_after (a shared 2-CPU machine: figures are indicative)."
  echo
  echo "| path | conns | req/s | p50 µs | p99 µs | callee sidecar CPU µs/call | caller sidecar CPU µs/call |"
  echo "|---|---|---|---|---|---|---|"
  awk '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $6, $4, $5, ($1 == "direct" ? "-" : $7), ($1 == "two" ? $8 : "-") }' "$results"
  echo
  echo "Targets: two sidecars add ≤ 100 µs p50 over direct; ≤ 20 µs CPU per call per sidecar."
} >"$section"
write_doc_section invoke "$section" "$doc"
log "wrote $doc"
