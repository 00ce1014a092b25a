import assert from "node:assert/strict";
import {
  at,
  callPanel,
  serverPayload,
  startTestPanel,
} from "../local/panel-sandbox/testing.ts";

Deno.test("panel sandbox injects faults", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step(
      "a status fault answers a panel error and handles nothing",
      async () => {
        panel.addFault({
          method: "POST",
          path: "/api/application/servers",
          status: 502,
          times: 1,
        });
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload(),
        });
        assert.equal(r.status, 502);
        assert.equal(at(r.body, "errors.0.code"), "HttpException");
        assert.equal(at(r.body, "errors.0.status"), "502");
        assert.equal(panel.state().servers.length, 0);
        const again = await callPanel(
          panel,
          "POST",
          "/api/application/servers",
          {
            body: serverPayload(),
          },
        );
        assert.equal(again.status, 201);
      },
    );

    await t.step("a latency fault delays matching requests", async () => {
      panel.addFault({
        method: "GET",
        path: /^\/api\/application\/nodes\/\d+$/,
        latencyMs: 150,
        times: 1,
      });
      const started = performance.now();
      const r = await callPanel(panel, "GET", "/api/application/nodes/1");
      assert.equal(r.status, 200);
      assert.ok(performance.now() - started >= 140);
      const quick = performance.now();
      await callPanel(panel, "GET", "/api/application/nodes/1");
      assert.ok(performance.now() - quick < 140);
    });

    await t.step(
      "a timeout fault holds until the client gives up",
      async () => {
        panel.addFault({
          method: "GET",
          path: "/api/application/locations",
          timeout: true,
          times: 1,
        });
        await assert.rejects(
          callPanel(panel, "GET", "/api/application/locations", {
            signal: AbortSignal.timeout(100),
          }),
          (error: unknown) =>
            error instanceof DOMException && error.name === "TimeoutError",
        );
        const last = panel.calls().at(-1);
        assert.equal(last?.path, "/api/application/locations");
        assert.equal(last?.status, 0);
      },
    );

    await t.step(
      "loseResponse creates the server but answers 504",
      async () => {
        panel.addFault({
          method: "POST",
          path: "/api/application/servers",
          loseResponse: true,
          times: 1,
        });
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({
            external_id: "order-lost",
            allocation: { default: 2 },
          }),
        });
        assert.equal(r.status, 504);
        assert.equal(at(r.body, "errors.0.code"), "HttpException");
        const found = await callPanel(
          panel,
          "GET",
          "/api/application/servers/external/order-lost",
        );
        assert.equal(found.status, 200);
        assert.equal(at(found.body, "attributes.allocation"), 2);
      },
    );

    await t.step(
      "faults come over HTTP with ^regex paths and clear",
      async () => {
        const add = await fetch(`${panel.url}/_sandbox/faults`, {
          method: "POST",
          body: JSON.stringify({
            method: "GET",
            path: "^/api/application/users",
            status: 500,
          }),
        });
        assert.equal(add.status, 200);
        assert.deepEqual(await add.json(), [{
          method: "GET",
          path: "^/api/application/users",
          status: 500,
        }]);
        for (
          const path of ["/api/application/users", "/api/application/users/1"]
        ) {
          const r = await callPanel(panel, "GET", path);
          assert.equal(r.status, 500);
        }
        const clear = await fetch(`${panel.url}/_sandbox/faults`, {
          method: "DELETE",
        });
        await clear.body?.cancel();
        const r = await callPanel(panel, "GET", "/api/application/users/1");
        assert.equal(r.status, 200);
      },
    );

    await t.step("calls() counts faulted calls too", () => {
      const statuses = panel.calls().map((c) => c.status);
      assert.deepEqual(statuses, [
        502,
        201,
        200,
        200,
        0,
        504,
        200,
        500,
        500,
        200,
      ]);
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox close releases held requests", async () => {
  const panel = await startTestPanel();
  panel.addFault({
    method: "GET",
    path: "/api/application/nodes",
    timeout: true,
  });
  const pending = fetch(`${panel.url}/api/application/nodes`).then(
    async (r) => {
      await r.body?.cancel();
      return r.status;
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  await panel.close();
  assert.equal(await pending, 504);
});
