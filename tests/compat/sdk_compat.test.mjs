// The official Dapr JavaScript SDK (@dapr/dapr, pinned in package.json, installed by install.sh)
// drives a real remorad over HTTP and over gRPC: state save/get/delete, bulk get, transactions,
// an etag conflict and metadata. Run with `node --test`; REMORAD names the binary (ctest sets it).
//
// The SDK finds the sidecar the way an app does: DAPR_HTTP_PORT / DAPR_GRPC_PORT in the
// environment, set here to the free ports remorad was started on.

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { CommunicationProtocolEnum, DaprClient, LogLevel } from "@dapr/dapr";

const REMORAD = process.env.REMORAD;
const STORE = "statestore";

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Polls `url` until it answers `status`, the process exits, or the deadline passes.
async function waitForStatus(url, status, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`remorad exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.status === status) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})`);
}

let sidecar;
let output = "";

before(async () => {
  assert.ok(REMORAD, "set REMORAD to the remorad binary (ctest does)");
  const httpPort = await freePort();
  let grpcPort = await freePort();
  while (grpcPort === httpPort) grpcPort = await freePort();
  sidecar = spawn(
    REMORAD,
    ["--app-id", "compat", "--dapr-http-port", `${httpPort}`, "--dapr-grpc-port", `${grpcPort}`,
     "--metrics-port", "0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  sidecar.stdout.on("data", (d) => (output += d));
  sidecar.stderr.on("data", (d) => (output += d));
  process.env.DAPR_HTTP_PORT = `${httpPort}`;
  process.env.DAPR_GRPC_PORT = `${grpcPort}`;
  // Outbound health includes the gRPC API, so both protocols are up after this.
  try {
    await waitForStatus(`http://127.0.0.1:${httpPort}/v1.0/healthz/outbound`, 204, sidecar, 10000);
  } catch (e) {
    throw new Error(`${e.message}\nremorad output:\n${output}`);
  }
});

after(async () => {
  if (!sidecar || sidecar.exitCode !== null) return;
  const exited = new Promise((resolve) => sidecar.once("exit", (code) => resolve(code)));
  sidecar.kill("SIGTERM");
  const code = await exited;
  assert.equal(code, 0, `remorad exited with ${code} after SIGTERM; output:\n${output}`);
});

const PROTOCOLS = [
  ["HTTP", CommunicationProtocolEnum.HTTP],
  ["gRPC", CommunicationProtocolEnum.GRPC],
];

for (const [name, protocol] of PROTOCOLS) {
  describe(`@dapr/dapr over ${name}`, () => {
    let client;
    const key = (k) => `${name}-${k}`;

    before(async () => {
      client = new DaprClient({ communicationProtocol: protocol, logger: { level: LogLevel.Error } });
      await client.start();  // the SDK's own wait for the sidecar (metadata probe)
    });
    after(async () => {
      await client?.stop();
    });

    test("save, get and delete", async () => {
      const saved = await client.state.save(STORE, [
        { key: key("obj"), value: { ship: "falcon", crew: [1, 2] } },
        { key: key("text"), value: "hello" },
      ]);
      assert.equal(saved.error, undefined);
      assert.deepEqual(await client.state.get(STORE, key("obj")), { ship: "falcon", crew: [1, 2] });
      assert.equal(await client.state.get(STORE, key("text")), "hello");

      const deleted = await client.state.delete(STORE, key("obj"));
      assert.equal(deleted.error, undefined);
      // A missing key reads as empty on both protocols (HTTP 204, empty gRPC response).
      assert.equal(await client.state.get(STORE, key("obj")), "");
    });

    test("getBulk returns every key in order, with etags", async () => {
      await client.state.save(STORE, [
        { key: key("b1"), value: { n: 1 } },
        { key: key("b2"), value: { n: 2 } },
      ]);
      const items = await client.state.getBulk(STORE, [key("b1"), key("b2"), key("absent")]);
      assert.equal(items.length, 3);
      const byKey = Object.fromEntries(items.map((i) => [i.key, i]));
      assert.deepEqual(byKey[key("b1")].data, { n: 1 });
      assert.deepEqual(byKey[key("b2")].data, { n: 2 });
      assert.ok(byKey[key("b1")].etag, "bulk items carry their etag");
      assert.ok(!byKey[key("absent")].data, "a missing key has no data");
    });

    test("transaction applies upserts and deletes together", async () => {
      await client.state.save(STORE, [{ key: key("tx-old"), value: "old" }]);
      await client.state.transaction(STORE, [
        { operation: "upsert", request: { key: key("tx-a"), value: "A" } },
        { operation: "upsert", request: { key: key("tx-b"), value: "B" } },
        { operation: "delete", request: { key: key("tx-old") } },
      ]);
      assert.equal(await client.state.get(STORE, key("tx-a")), "A");
      assert.equal(await client.state.get(STORE, key("tx-b")), "B");
      assert.equal(await client.state.get(STORE, key("tx-old")), "");
    });

    test("a stale etag is a conflict and changes nothing", async () => {
      await client.state.save(STORE, [{ key: key("guarded"), value: "v1" }]);
      const [item] = await client.state.getBulk(STORE, [key("guarded")]);
      const etag = item.etag;
      assert.ok(etag);
      const stale = [{ key: key("guarded"), value: "v2", etag: `${etag}-stale` }];

      if (protocol === CommunicationProtocolEnum.HTTP) {
        // The HTTP client reports failures in the result: Dapr's 409 with ERR_STATE_SAVE.
        const res = await client.state.save(STORE, stale);
        assert.ok(res.error, "expected an error for a stale etag");
        const detail = JSON.parse(res.error.message);
        assert.equal(detail.status, 409);
        assert.equal(JSON.parse(detail.error_msg).errorCode, "ERR_STATE_SAVE");
      } else {
        // The gRPC client throws Connect's error with code Aborted (10).
        await assert.rejects(client.state.save(STORE, stale), (e) => {
          assert.equal(e.code, 10, `expected ABORTED, got ${e.code}: ${e.message}`);
          return true;
        });
      }
      assert.equal(await client.state.get(STORE, key("guarded")), "v1");

      const fresh = await client.state.save(STORE, [{ key: key("guarded"), value: "v2", etag }]);
      assert.equal(fresh.error, undefined);
      assert.equal(await client.state.get(STORE, key("guarded")), "v2");
    });

    test("metadata names the app and its state store", async () => {
      const md = await client.metadata.get();
      assert.equal(md.id, "compat");
      const store = md.components.find((c) => c.name === STORE);
      assert.ok(store, `no ${STORE} in ${JSON.stringify(md.components)}`);
      assert.equal(store.type, "state.in-memory");
      assert.ok(store.capabilities.includes("ETAG"));
      assert.ok(md.extended.daprRuntimeVersion);
    });
  });
}

test("a value saved over gRPC reads back over HTTP, and the other way", async () => {
  const grpc = new DaprClient({
    communicationProtocol: CommunicationProtocolEnum.GRPC,
    logger: { level: LogLevel.Error },
  });
  const http = new DaprClient({ logger: { level: LogLevel.Error } });
  try {
    await grpc.state.save(STORE, [{ key: "cross-1", value: { from: "grpc" } }]);
    assert.deepEqual(await http.state.get(STORE, "cross-1"), { from: "grpc" });
    await http.state.save(STORE, [{ key: "cross-2", value: { from: "http" } }]);
    assert.deepEqual(await grpc.state.get(STORE, "cross-2"), { from: "http" });
  } finally {
    await grpc.stop();
    await http.stop();
  }
});
