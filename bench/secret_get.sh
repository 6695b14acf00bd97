#!/usr/bin/env bash
# Secret GET from secretstores.local.file against state GET from state.in-memory, through the same
# remorad's HTTP API with the same wrk in the same run (issue #7's target: the secret GET p50
# within 20 µs of the state GET p50). Both answer a small JSON body; rounds alternate.
#
#   bench/secret_get.sh --remorad PATH           full run (10 s per load, 3 rounds), updates
#                                                docs/performance.md
#   bench/secret_get.sh --remorad PATH --smoke   1 s per load, 1 round; no doc
#
# Options: --duration S, --rounds N, --no-doc, --doc FILE. Environment: BENCH_SERVER_CPU,
# BENCH_CLIENT_CPU, BENCH_NICE (bench/lib.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_dir=$repo/bench
bench_name=secret_get
source "$bench_dir/lib.sh"

smoke=0 duration="" rounds="" remorad="" doc="" no_doc=0
server_cpu=${BENCH_SERVER_CPU:-1}
client_cpu=${BENCH_CLIENT_CPU:-0}
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --remorad) remorad=$2; shift ;;
    --doc) doc=$2; shift ;;
    --no-doc) no_doc=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
if ((smoke)); then
  : "${duration:=1}" "${rounds:=1}"
  [[ -n $doc ]] || no_doc=1
else
  : "${duration:=10}" "${rounds:=3}"
fi
: "${doc:=$repo/docs/performance.md}"
[[ -x $remorad ]] || die "no remorad at '$remorad' (--remorad PATH)"
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done
setup_pinning

tmp=$(mktemp -d /tmp/remora-bench.XXXXXX)
remorad_pid=""
cleanup() {
  [[ -z $remorad_pid ]] || { kill "$remorad_pid" 2>/dev/null || true; wait "$remorad_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The same 64-byte value in both stores: the state GET answers the stored JSON text, the secret
# GET answers {"bench":"<value>"}.
value=$(printf 'v%.0s' $(seq 1 64))
mkdir -p "$tmp/components"
printf '{"bench":"%s"}\n' "$value" >"$tmp/secrets.json"
cat >"$tmp/components/stores.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: statestore }
spec: { type: state.in-memory, version: v1 }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: localsecretstore }
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - { name: secretsFile, value: "$tmp/secrets.json" }
EOF

port=$(free_port)
"${pin_server[@]}" "$remorad" --app-id bench --dapr-http-port "$port" --dapr-grpc-port 0 \
  --resources-path "$tmp/components" >"$tmp/remorad.log" 2>&1 &
remorad_pid=$!
api="http://127.0.0.1:$port/v1.0"
wait_status "$api/healthz" 204 || { cat "$tmp/remorad.log" >&2; die "remorad did not start"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$api/state/statestore" \
  -H 'Content-Type: application/json' -d "[{\"key\":\"bench\",\"value\":\"$value\"}]")
[[ $code == 204 ]] || die "saving the state value answered $code"
state_url="$api/state/statestore/bench"
secret_url="$api/secrets/localsecretstore/bench"
[[ $(curl -s "$state_url") == "\"$value\"" ]] || die "state GET does not answer the value"
[[ $(curl -s "$secret_url") == "{\"bench\":\"$value\"}" ]] || die "secret GET does not answer the value"

busy_before=$(busy_pct)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# One wrk run at 1 connection: "p50_us p99_us requests_per_s errors".
run() {
  local out line
  out=$("${pin_client[@]}" wrk -t1 -c1 -d"${duration}s" --latency -s "$bench_dir/wrk_report.lua" "$1")
  line=$(grep '^WRK_RESULT' <<<"$out") || die "wrk printed no result for $1: $out"
  wrk_fields <<<"$line" | awk '{ printf "%d %d %.0f %d\n", $3, $4, $1 / ($2 / 1e6), $5 }'
}
: >"$tmp/state" && : >"$tmp/secret"
for ((r = 0; r < rounds; r++)); do
  run "$state_url" >>"$tmp/state"
  run "$secret_url" >>"$tmp/secret"
done
errors=$(cat "$tmp/state" "$tmp/secret" | awk '{ s += $4 } END { print s + 0 }')
((errors == 0)) || die "wrk reported $errors errors"
col() { awk -v c="$1" '{ print $c }' "$2" | median_of; }
state_p50=$(col 1 "$tmp/state") state_p99=$(col 2 "$tmp/state") state_rps=$(col 3 "$tmp/state")
secret_p50=$(col 1 "$tmp/secret") secret_p99=$(col 2 "$tmp/secret") secret_rps=$(col 3 "$tmp/secret")
delta=$(awk -v a="$secret_p50" -v b="$state_p50" 'BEGIN { printf "%d", a - b }')
verdict=$(awk -v d="$delta" 'BEGIN { print (d <= 20 ? "met" : "**MISSED**") }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
log "state GET p50 ${state_p50} µs, secret GET p50 ${secret_p50} µs: +${delta} µs ($verdict)"
((no_doc)) && exit 0

today=$(date +%F)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$tmp/section" <<EOF
### $today — secret GET (secretstores.local.file) against state GET (state.in-memory)

| figure, 1 connection, median of $rounds rounds | state GET | secret GET | difference | target | |
|---|---:|---:|---:|---|---|
| p50 | $state_p50 µs | $secret_p50 µs | +$delta µs | secret ≤ state + 20 µs | $verdict |
| p99 | $state_p99 µs | $secret_p99 µs | | | |
| requests/s | $state_rps | $secret_rps | | | |

Run: commit $commit; \`bench/secret_get.sh\`: one remorad with both stores, the same 64-byte
value in each, wrk -t1 -c1 ${duration} s per run, state and secret runs alternating.
Priority: ${priority:-default}; $( ((pinned)) && echo "remorad on CPU $server_cpu, wrk on CPU $client_cpu" || echo "not pinned").
Machine ${busy_before} % busy before the run; load average $load_before before, $load_after after.
EOF
write_doc_section secret_get "$tmp/section" "$doc"
log "wrote the results to $doc"
