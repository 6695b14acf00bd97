#!/usr/bin/env bash
# The run command: builds remorad and starts it on the in-memory default components, then shows
# a state round trip through Dapr's HTTP API. (The example functions replace this demo when
# they land.)
#   ./scripts/run.sh             (REMORA_HTTP_PORT=3500 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target remorad

PORT=${REMORA_HTTP_PORT:-3500}
"$BUILD_DIR/runtime/remorad" --app-id demo --dapr-http-port "$PORT" --dapr-grpc-port 0 \
  --metrics-port 0 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT

for _ in $(seq 1 200); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/v1.0/healthz" && break
  sleep 0.02
done

api="http://127.0.0.1:$PORT/v1.0"
set -x
curl -s -w ' -> %{http_code}\n' -X POST "$api/state/statestore" -H 'Content-Type: application/json' \
  -d '[{"key":"order-1","value":{"item":"coffee","qty":2}}]'
curl -s -i "$api/state/statestore/order-1"
echo
curl -s -w ' -> %{http_code}\n' -X POST "$api/state/statestore/bulk" -d '{"keys":["order-1","nope"]}'
curl -s "$api/metadata"
echo
curl -s -w ' -> %{http_code}\n' -X POST "$api/shutdown"
set +x
wait $PID
trap - EXIT
echo "remorad stopped cleanly."
