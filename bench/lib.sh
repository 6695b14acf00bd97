# Shared helpers of the benchmark scripts (bench/*.sh); source it after `set -euo pipefail`.
#
# The caller sets `bench_name` (the log prefix) before sourcing, and `tmp` (a scratch directory)
# before calling nginx_conf / start_nginx. Functions document the globals they read or set.

log() { echo "${bench_name:-bench}: $*" >&2; }
die() { echo "${bench_name:-bench}: error: $*" >&2; exit 1; }

# Pins the server under test and the load generator to two different CPUs when there are two:
# sets pin_server / pin_client (command prefixes, possibly empty arrays) and pinned (0/1). Reads
# server_cpu and client_cpu. With BENCH_NICE set (e.g. -15, needs root), both prefixes also run
# the processes at that nice value, so that other work on a shared machine (compilers at nice 0)
# disturbs the figures less; `priority` is then a sentence for the report, else empty.
setup_pinning() {
  if (($(nproc) >= 2)) && taskset -c "$server_cpu" true 2>/dev/null &&
     taskset -c "$client_cpu" true 2>/dev/null && [[ $server_cpu != "$client_cpu" ]]; then
    pin_server=(taskset -c "$server_cpu")
    pin_client=(taskset -c "$client_cpu")
    pinned=1
  else
    pin_server=() pin_client=()
    pinned=0
  fi
  priority=""
  if [[ -n ${BENCH_NICE:-} ]]; then
    nice -n "$BENCH_NICE" true 2>/dev/null && [[ $(nice -n "$BENCH_NICE" nice) == "$BENCH_NICE" ]] ||
      die "cannot run at nice $BENCH_NICE (BENCH_NICE; negative values need root)"
    pin_server=(nice -n "$BENCH_NICE" "${pin_server[@]}")
    pin_client=(nice -n "$BENCH_NICE" "${pin_client[@]}")
    priority="every benchmarked process at nice $BENCH_NICE (BENCH_NICE)"
  fi
}

# Polls a URL until it answers `status`, for up to ~5 s.
wait_status() {
  local url=$1 want=$2 code
  for _ in $(seq 1 500); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
    [[ $code == "$want" ]] && return 0
    sleep 0.01
  done
  return 1
}

# utime+stime of every thread of the given processes, in clock ticks. Field 2 (comm) may hold
# spaces, so the fields are counted after its closing parenthesis: utime and stime are 14 and 15.
cpu_ticks() {
  local total=0 pid rest
  for pid in "$@"; do
    rest=$(<"/proc/$pid/stat")
    rest=${rest##*) }
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# A field of /proc/<pid>/status in kB (VmRSS, VmHWM).
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# Percentage of all CPUs busy over the next 2 s (everything on the machine, from /proc/stat).
busy_pct() {
  local a b t=0 i
  read -r -a a < <(head -1 /proc/stat)
  sleep 2
  read -r -a b < <(head -1 /proc/stat)
  for i in 1 2 3 4 5 6 7 8; do t=$((t + b[i] - a[i])); done
  echo $((100 - 100 * (b[4] - a[4]) / (t > 0 ? t : 1)))
}

# Waits up to `minutes` for the machine to be idle (< 10 % busy over 2 s); 0 does not wait.
wait_idle() {
  local minutes=$1 deadline
  ((minutes > 0)) || return 0
  deadline=$((SECONDS + 60 * minutes))
  until (($(busy_pct) < 10)); do
    ((SECONDS < deadline)) || { log "the machine did not go idle; running anyway"; break; }
    log "waiting for the machine to go idle (load average $(cut -d' ' -f1 /proc/loadavg))"
    sleep 8
  done
}

# A JSON string of 1022 letters: as Dapr's HTTP API stores the JSON text of "value", quotes
# included, that is exactly 1024 stored bytes. Writes it to $1.
write_1k_value() {
  local letters
  letters=$(printf 'x%.0s' $(seq 1 1022))
  printf '"%s"' "$letters" >"$1"
  (($(wc -c <"$1") == 1024)) || die "the body is not 1024 bytes"
}

# nginx config: one worker, `return 200` of the bytes in `body` (a global), keep-alive that never
# ends during a run, no access log, everything under $tmp/nginx. The compiled-in temp paths point
# into /var/lib/nginx, so they are redirected too.
nginx_conf() {  # port pidfile
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user $(id -un) $(id -gn);"
  cat <<EOF
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $2;
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
    listen 127.0.0.1:$1;
    location / {
      default_type application/json;
      return 200 '$body';
    }
  }
}
EOF
}

# Starts nginx (pinned like the server under test) on a free port, answering `body` on /. Sets
# nginx_pid, nginx_worker, nginx_port, nginx_url. Needs `free_port`.
start_nginx() {
  nginx_bin=$(command -v nginx)
  mkdir -p "$tmp/nginx"
  nginx_port=$(free_port)
  nginx_conf "$nginx_port" "$tmp/nginx/nginx.pid" >"$tmp/nginx/nginx.conf"
  "${pin_server[@]}" "$nginx_bin" -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" \
    -e "$tmp/nginx/error.log" &
  nginx_pid=$!
  nginx_url="http://127.0.0.1:$nginx_port/"
  wait_status "$nginx_url" 200 || { cat "$tmp/nginx/error.log" >&2; die "nginx did not start"; }
  nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
  [[ -n $nginx_worker ]] || die "no nginx worker"
}

# Turns a WRK_RESULT line (bench/wrk_report.lua) on stdin into
# "requests duration_us p50_us p99_us errors".
wrk_fields() {
  awk '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    errors = v["errors_connect"] + v["errors_read"] + v["errors_write"] + v["errors_status"] + v["errors_timeout"]
    printf "%d %d %d %d %d\n", v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], errors
  }'
}

# Median of the numbers on stdin (one per line); nothing for no input.
median_of() {
  # An even count averages the middle two; printf keeps large figures out of awk's %.6g (1.2e+06).
  sort -g | awk '{ v[n++] = $1 } END {
    if (!n) exit
    if (n % 2) print v[int(n / 2)]; else printf "%.4f\n", (v[n / 2 - 1] + v[n / 2]) / 2 }'
}

# write_doc_section NAME SECTION_FILE DOC: puts SECTION_FILE between the markers
# <!-- bench:NAME:<today> begin/end --> in DOC, replacing today's section of that benchmark if
# there is one, else appending it. Uses $today and $tmp of the calling script.
write_doc_section() {
  local begin="<!-- bench:$1:$today begin -->" end="<!-- bench:$1:$today end -->"
  [[ -f $3 ]] || die "no $3"
  if grep -qF "$begin" "$3"; then
    awk -v b="$begin" -v e="$end" -v f="$2" '
      $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0 }
      !skip' "$3" >"$tmp/doc.new"
    cat "$tmp/doc.new" >"$3"
  else
    { echo; echo "$begin"; cat "$2"; echo "$end"; } >>"$3"
  fi
}
