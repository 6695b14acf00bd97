#!/usr/bin/env bash
# User-space instructions per request of the HTTP state GET benchmark's two servers, counted by
# valgrind's callgrind: nginx (`return 200`, one process) and remorad (GET of the 1 KB value).
# Unlike timings, instruction counts do not depend on what else the machine is doing.
#
#   bench/callgrind_http_state_get.sh --remorad PATH [--seconds S] [--connections C] [--top N]
#
# Both servers run under callgrind for their whole life; after start-up and a warm-up load the
# counters are dumped, wrk drives S seconds (default 10) at C connections (default 32), and the
# counters are dumped again. The difference divided by the requests wrk completed is Ir/request.
# Then remorad's cost is split into groups by function name (the groups are regexes below) and
# its top N functions (default 15) are listed. Needs valgrind (not installed by setup.sh).
set -euo pipefail

remorad="" seconds=10 conns=32 top=15
while (($#)); do
  case $1 in
    --remorad) remorad=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --connections) conns=$2; shift ;;
    --top) top=$2; shift ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done
[[ -x $remorad ]] || { echo "callgrind: --remorad PATH is required" >&2; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "callgrind: $tool is missing" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/remora-callgrind.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {  # bash has no bind(); ask the kernel via a short-lived listener-free probe
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_ok() {
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  return 1
}

body="\"$(printf 'x%.0s' $(seq 1 1022))\""
nport=$(free_port)
mkdir -p "$tmp/nginx"
user_line=""
[[ $(id -u) == 0 ]] && user_line="user $(id -un) $(id -gn);"
cat >"$tmp/nginx/nginx.conf" <<EOF
$user_line
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    location / { default_type application/json; return 200 '$body'; }
  }
}
EOF
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.nginx" \
  nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" \
  >"$tmp/vg-nginx.log" 2>&1 &
pids+=($!)
nginx_vg=$!

rport=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.remorad" \
  "$remorad" --app-id bench --dapr-http-port "$rport" --dapr-grpc-port 0 --metrics-port 0 \
  >"$tmp/vg-remorad.log" 2>&1 &
pids+=($!)
remorad_vg=$!

wait_ok "http://127.0.0.1:$nport/" || { cat "$tmp/vg-nginx.log" >&2; exit 1; }
wait_ok "http://127.0.0.1:$rport/v1.0/healthz/outbound" || { cat "$tmp/vg-remorad.log" >&2; exit 1; }
curl -fs -X POST "http://127.0.0.1:$rport/v1.0/state/statestore" \
  -d "[{\"key\":\"bench-1k\",\"value\":$body}]"

lua=$(dirname "$0")/wrk_report.lua
threads=$((conns > 1 ? 2 : 1))
# measure <name> <valgrind pid> <url>: prints "<requests> <dump of the load alone>". A dump
# holds the counts since the previous one: dump 1 is start-up and warm-up, dump 2 the load.
measure() {
  local name=$1 pid=$2 url=$3 req
  wrk -t"$threads" -c"$conns" -d2s "$url" >/dev/null  # warm-up
  callgrind_control -d "$pid" >/dev/null 2>&1
  req=$(wrk -t"$threads" -c"$conns" -d"${seconds}s" -s "$lua" "$url" |
    sed -n 's/^WRK_RESULT requests=\([0-9]*\).*/\1/p')
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 1 50); do [[ -s $tmp/cg.$name.2 ]] && break; sleep 0.1; done
  echo "$req $tmp/cg.$name.2"
}

totals() { sed -n 's/^totals: \([0-9]*\).*/\1/p' "$1"; }
read -r n_req n_dump < <(measure nginx "$nginx_vg" "http://127.0.0.1:$nport/")
read -r r_req r_dump < <(measure remorad "$remorad_vg" \
  "http://127.0.0.1:$rport/v1.0/state/statestore/bench-1k")
n_ir=$(totals "$n_dump")
r_ir=$(totals "$r_dump")
echo "callgrind, $conns connections, ${seconds} s under valgrind:"
awk -v n="$n_ir" -v nr="$n_req" -v r="$r_ir" -v rr="$r_req" 'BEGIN {
  printf "  nginx   %9d requests  %8.0f Ir/request\n", nr, n / nr
  printf "  remorad %9d requests  %8.0f Ir/request  (x%.1f)\n", rr, r / rr, (r / rr) / (n / nr) }'

echo
echo "remorad, Ir/request by group (self cost, grouped by function name):"
# A dump taken while threads run reports the frames on their stacks (clone, start_thread, the
# event loop's run) with the whole dump as self cost: those lines are skipped (ir > total / 2).
callgrind_annotate --threshold=100 "$r_dump" 2>/dev/null | awk -v req="$r_req" -v all="$r_ir" '
  /^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ {
    ir = $1; gsub(",", "", ir); ir += 0; if (ir > all / 2) next
    f = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", f); s = substr(f, 1, 250)
    if (f ~ /malloc\.c|_int_free|_int_malloc|operator new|operator delete/) g = "allocation (malloc/free/new/delete)"
    else if (f ~ /dl-|rtld|do_lookup_x/) g = "dynamic loader"
    else if (s ~ /buffers_cat_view|buffers_prefix_view|buffers_suffix|chunk_crlf|serializer|write_some_op|write_op<|write_msg_op|reactive_socket_send_op|::writer|buffers_ref|detail::variant/) g = "response serialisation (Beast serializer, buffer views, write ops)"
    else if (s ~ /any_executor/) g = "Asio any_executor (type-erased executor of beast::tcp_stream)"
    else if (s ~ /remora::|std::vector<std::__cxx11::basic_string|std::__cxx11::basic_string|absl::/) g = "remora code: routing (path split into strings), state block, store, callbacks"
    else if (s ~ /parser|parse_|read_op|read_some_op|reactive_socket_recv/) g = "request read + parse (Beast parser, read ops)"
    else if (s ~ /basic_fields|message</) g = "Beast header fields / message objects"
    else if (f ~ /mem(cpy|move|cmp|set|chr)|strlen|str(cmp|chr)/) g = "libc string/memory"
    else if (s ~ /scheduler|epoll|socket_ops|reactor|pthread_mutex|executor_function|thread_info_base|io_context/) g = "Asio scheduler/reactor, mutexes"
    else g = "other"
    sum[g] += ir; total += ir
  }
  END { for (g in sum) printf "  %8.0f  %5.1f %%  %s\n", sum[g] / req, 100 * sum[g] / total, g | "sort -rn"
        close("sort -rn"); printf "  %8.0f           total\n", total / req }'

echo
echo "remorad, top $top functions (self Ir/request):"
callgrind_annotate --threshold=100 "$r_dump" 2>/dev/null |
  awk -v req="$r_req" -v top="$top" -v all="$r_ir" '
  /^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ && n < top {
    ir = $1; gsub(",", "", ir); ir += 0; if (ir > all / 2) next
    f = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", f)
    printf "  %7.0f  %s\n", ir / req, substr(f, 1, 150); n++ }'
