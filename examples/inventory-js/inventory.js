// inventory on the official Dapr JavaScript SDK (@dapr/dapr): the same contract as the C++
// inventory (examples/inventory/main.cc), served over HTTP. An existing Dapr app, unchanged:
//
//   remora run --app-id inventory --app-port 6003 --resources-path examples/components/memory \
//     -- node examples/inventory-js/inventory.js
//
// POST reserve {"item": "...", "quantity": n} -> {"reserved": bool, "item": "...", "remaining": n};
// stock per item in "statestore" (key "stock-<item>", 1000 to start), updated with its etag.
// CommonJS so that NODE_PATH can point at an existing node_modules (scripts/run.sh uses
// tests/compat/node_modules); or `npm install` here (package.json).
"use strict";
const { DaprServer, HttpMethod, CommunicationProtocolEnum } = require("@dapr/dapr");

const INITIAL_STOCK = 1000;

const server = new DaprServer({
  serverHost: "127.0.0.1",
  serverPort: process.env.APP_PORT || "6003",
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  clientOptions: { daprHost: "127.0.0.1", daprPort: process.env.DAPR_HTTP_PORT || "3500" },
});
const state = server.client.state;

async function reserve(item, quantity) {
  const key = `stock-${item}`;
  for (let attempt = 0; attempt < 20; attempt++) {
    const [current] = await state.getBulk("statestore", [key]);
    const found = current && current.data !== undefined && current.data !== "";
    const stock = found ? Number(current.data) : INITIAL_STOCK;
    if (stock < quantity) return { reserved: false, item, remaining: stock };
    const update = { key, value: stock - quantity };
    if (found) update.etag = current.etag;
    else update.options = { concurrency: "first-write" };
    try {
      await state.save("statestore", [update]);
      return { reserved: true, item, remaining: stock - quantity };
    } catch (e) {
      // An etag conflict: another reservation won; read again.
    }
  }
  throw new Error(`too much contention on ${key}`);
}

async function main() {
  await server.invoker.listen(
    "reserve",
    async ({ body }) => {
      const ask = typeof body === "string" ? JSON.parse(body) : body;
      const answer = await reserve(ask.item, ask.quantity || 1);
      console.log(`reserve ${ask.item} x${ask.quantity || 1} -> ${JSON.stringify(answer)}`);
      return answer;
    },
    { method: HttpMethod.POST },
  );
  await server.start();
  console.log(`inventory (JavaScript) serving on ${process.env.APP_PORT}`);
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
