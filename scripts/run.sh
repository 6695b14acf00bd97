#!/usr/bin/env bash
# The run command: builds remorad, the launcher and the example order pipeline (examples/), and
# runs it: inventory and order-processor each next to their own remorad (started by
# `remora run`), then checkout publishing orders. Progress lines as orders flow, a summary at the
# end (orders processed, end-to-end latency p50/p99). Ctrl-C stops everything cleanly (and still
# prints the summary).
#
#   ./scripts/run.sh [--components memory|redis|kafka|vault] [--orders N] [--rate PER_S]
#                    [--duration S] [--inventory cpp|js]
#
# memory (default): nothing else needed. In-memory pub/sub lives inside one remorad, so checkout
#   publishes through order-processor's sidecar (see examples/README.md).
# redis: REDIS_HOST (host:port); when unset, a private redis-server is started on a free port.
# kafka: KAFKA_BROKERS (host:port,...); when unset, the test broker from the build (librdkafka's
#   mock cluster) is started.
# vault: VAULT_ADDR and VAULT_TOKEN of a Vault with secret/payment-api-key (KV v2).
# --inventory js runs inventory on the official Dapr JavaScript SDK instead (HTTP app channel;
#   @dapr/dapr from tests/compat/node_modules, which scripts/setup.sh installs).
# Environment: BUILD_DIR (default build/), REMORA_SKIP_SETUP=1 skips scripts/setup.sh,
# REMORA_SKIP_BUILD=1 uses what BUILD_DIR has.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VARIANT=memory ORDERS=20 RATE=20 DURATION=60 INVENTORY=cpp
while (($#)); do
  case "$1" in
    --components) VARIANT=$2; shift 2 ;;
    --orders) ORDERS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --inventory) INVENTORY=$2; shift 2 ;;
    -h|--help) sed -n "2,22p" "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
COMPONENTS=$ROOT/examples/components/$VARIANT
[[ -d $COMPONENTS ]] || { echo "no component variant '$VARIANT' in examples/components" >&2; exit 2; }

BUILD_DIR=${BUILD_DIR:-build}
[[ ${REMORA_SKIP_SETUP:-0} == 1 ]] || bash scripts/setup.sh
if [[ ${REMORA_SKIP_BUILD:-0} != 1 ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  targets=(remorad remora_grpc remora example_checkout example_order_processor example_inventory)
  [[ $VARIANT == kafka && -z ${KAFKA_BROKERS:-} ]] && targets+=(remora_kafka_broker)
  cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${targets[@]}"
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
LAUNCHER=$BUILD_DIR/tools/remora/remora
BIN=$BUILD_DIR/examples
export REMORAD=$BUILD_DIR/runtime/remorad

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { printf '\033[1m== run ==\033[0m %s\n' "$*"; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  # Launchers first (each stops its function, then its remorad), then the backends we started.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n ${BACKEND_PID:-} ]] && { kill -TERM "$BACKEND_PID" 2>/dev/null; wait "$BACKEND_PID" 2>/dev/null; } || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Each process in its own session (setsid): Ctrl-C reaches only this script, which stops the
# pipeline in order instead of every process at once. Output lines get the function's name.
start() {  # name command...
  local name=$1; shift
  setsid "$@" > >(tee "$WORK/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
  PIDS+=($!)
}

case "$VARIANT" in
  redis)
    if [[ -z ${REDIS_HOST:-} ]]; then
      port=$(free_port)
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --notify-keyspace-events Kg\$xe > "$WORK/redis.log" 2>&1 &
      BACKEND_PID=$!
      export REDIS_HOST=127.0.0.1:$port
      for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
      say "started redis-server on $REDIS_HOST"
    fi
    # The setting order-processor reads (Dapr's configuration.redis format: value||version).
    redis-cli -h "${REDIS_HOST%:*}" -p "${REDIS_HOST##*:}" set orders.maxQuantity '2||1' >/dev/null
    say "configstore: orders.maxQuantity = 2 (orders of 3 are rejected)"
    ;;
  kafka)
    if [[ -z ${KAFKA_BROKERS:-} ]]; then
      "$BUILD_DIR/tests/remora_kafka_broker" > "$WORK/kafka.out" 2>"$WORK/kafka.log" &
      BACKEND_PID=$!
      for _ in $(seq 200); do [[ -s $WORK/kafka.out ]] && break; sleep 0.05; done
      export KAFKA_BROKERS=$(head -1 "$WORK/kafka.out")
      say "started the test Kafka broker (librdkafka mock cluster) at $KAFKA_BROKERS"
    fi
    ;;
esac

SIDECAR_FLAGS=(--resources-path "$COMPONENTS" --app-protocol grpc --log-level warn)
INV_PORT=$(free_port) OP_PORT=$(free_port) OP_HTTP=$(free_port) OP_GRPC=$(free_port)
say "components: examples/components/$VARIANT; $ORDERS orders at $RATE/s, at most ${DURATION}s"

if [[ $INVENTORY == js ]]; then
  start inventory "$LAUNCHER" run --app-id inventory --app-port "$INV_PORT" \
    --resources-path "$COMPONENTS" --log-level warn \
    -- env NODE_PATH="$ROOT/tests/compat/node_modules" node "$ROOT/examples/inventory-js/inventory.js"
else
  start inventory "$LAUNCHER" run --app-id inventory --app-port "$INV_PORT" "${SIDECAR_FLAGS[@]}" \
    -- "$BIN/inventory"
fi
start order-processor "$LAUNCHER" run --app-id order-processor --app-port "$OP_PORT" \
  --dapr-http-port "$OP_HTTP" --dapr-grpc-port "$OP_GRPC" "${SIDECAR_FLAGS[@]}" \
  -- "$BIN/order-processor" --orders "$ORDERS" --duration "$DURATION"
OP_PID=${PIDS[1]}

# Publish only once order-processor's subscription is active (an in-memory topic without a
# subscriber drops what is published to it) and inventory serves (else the first orders wait for
# redelivery).
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$OP_HTTP/v1.0/metadata" 2>/dev/null | grep -q '"topic":"orders"' &&
    grep -q 'serving' "$WORK/inventory.log" 2>/dev/null && break
  kill -0 "$OP_PID" 2>/dev/null || break
  sleep 0.05
done

CHECKOUT=("$BIN/checkout" --orders "$ORDERS" --rate "$RATE" --duration "$DURATION")
if [[ $VARIANT == memory ]]; then
  # Same sidecar as order-processor: the in-memory broker is that sidecar's.
  start checkout env DAPR_HTTP_PORT="$OP_HTTP" DAPR_GRPC_PORT="$OP_GRPC" APP_ID=checkout \
    "${CHECKOUT[@]}"
else
  start checkout "$LAUNCHER" run --app-id checkout "${SIDECAR_FLAGS[@]}" -- "${CHECKOUT[@]}"
fi

# Ctrl-C / SIGTERM: stop checkout, then order-processor (it prints the summary), then the rest.
interrupted=0
CHECKOUT_PID=${PIDS[2]}
trap 'interrupted=1; kill -TERM "$CHECKOUT_PID" 2>/dev/null; kill -INT "$OP_PID" 2>/dev/null || true' INT TERM
while true; do
  wait "$OP_PID" && status=0 || status=$?
  kill -0 "$OP_PID" 2>/dev/null || break  # else the wait was cut short by the trap
done
trap - INT TERM
((interrupted)) && say "interrupted"
say "pipeline finished (order-processor exit code $status)"
exit "$status"
