#!/usr/bin/env bash
# ctest: the README's run command (scripts/run.sh) with a small bound, on the given component
# variant; asserts its summary (every order processed, latency figures printed) and, on Redis,
# that the orders and the stock really are in the redis-server this test started.
#   examples/pipeline_test.sh memory|redis [js]   (BUILD_DIR: a build with the examples built)
# `js` runs inventory on the official @dapr/dapr SDK (tests/compat/node_modules).
set -euo pipefail
VARIANT=${1:-memory}
INVENTORY=${2:-cpp}
ORDERS=12
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export REMORA_SKIP_SETUP=1 REMORA_SKIP_BUILD=1
OUT=$(mktemp)
trap 'rm -f "$OUT"; [[ -n ${REDIS_PID:-} ]] && kill "$REDIS_PID" 2>/dev/null; true' EXIT

if [[ $VARIANT == redis ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  export REDIS_HOST=127.0.0.1:$port
fi

status=0
timeout 120 "$ROOT/scripts/run.sh" --components "$VARIANT" --orders "$ORDERS" --rate 50 \
  --duration 60 --inventory "$INVENTORY" >"$OUT" 2>&1 || status=$?
cat "$OUT"
fail() { echo "FAIL: $*" >&2; exit 1; }
((status == 0)) || fail "run.sh exited with $status"
summary=$(grep -a 'SUMMARY orders processed' "$OUT" | tail -1)
[[ -n $summary ]] || fail "no summary line"
[[ $summary =~ processed\ ([0-9]+)/([0-9]+) ]] || fail "summary without counts: $summary"
((BASH_REMATCH[1] == ORDERS && BASH_REMATCH[2] == ORDERS)) || fail "not every order: $summary"
[[ $summary =~ p50\ [0-9.]+\ ms,\ p99\ [0-9.]+\ ms ]] || fail "no latency figures: $summary"
grep -aq '\[checkout\] .*published order-1 ' "$OUT" || fail "no progress from checkout"
if [[ $INVENTORY == js ]]; then
  grep -aq 'inventory (JavaScript) serving' "$OUT" || fail "the JavaScript inventory did not serve"
fi

if [[ $VARIANT == redis ]]; then
  orders=$(redis-cli -p "$port" --scan --pattern 'order-processor||order-*' | wc -l)
  ((orders == ORDERS)) || fail "$orders orders in Redis, want $ORDERS"
  stock=$(redis-cli -p "$port" --scan --pattern 'inventory||stock-*' | wc -l)
  ((stock > 0)) || fail "no stock keys in Redis"
  # orders.maxQuantity = 2 from configuration.redis: orders of 3 are rejected.
  [[ $summary =~ rejected\ ([1-9][0-9]*) ]] || fail "configuration not applied: $summary"
fi
echo "PASS: $summary"
