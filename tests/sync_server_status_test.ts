import assert from "node:assert/strict";
import { errorCode, invoke } from "./_fixtures.ts";
import { order, purchase } from "./_purchase.ts";
import { startTestStack } from "./_stack.ts";
import { finishInstalls, panelCalls, serviceCall } from "./_sweep.ts";

interface View {
  order_id: string;
  status: string;
  message: string;
  server: { panel_status: string | null; live_state: string | null };
  limits: { memory_mb: number; disk_mb: number };
  paid_until: string | null;
}

Deno.test("sync-server-status: customers see their own servers; the service sweeps", async (t) => {
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  try {
    const alice = await purchase(stack, { plan_id: "mc-java-2gb" });
    const bob = await purchase(stack, { plan_id: "mc-java-4gb" });
    const views = async (user: typeof alice.user) => {
      const res = await invoke(user.client, "sync-server-status");
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.orders as View[];
    };

    await t.step(
      "the schedule's call runs the sweep and answers a summary",
      async () => {
        await finishInstalls(stack, {
          server_id: (await order(stack, alice.orderId)).pterodactyl_server_id,
        });
        const res = await serviceCall(stack);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.outcomes, { "install.active": 1 });
        assert.equal(res.body.panel_calls, 1);
        assert.equal(typeof res.body.duration_ms, "number");
      },
    );

    await t.step(
      "a customer sees only their own orders, with status, message, limits and live state",
      async () => {
        const mine = await views(alice.user);
        assert.deepEqual(mine.map((v) => v.order_id), [alice.orderId]);
        assert.equal(mine[0].status, "active");
        assert.equal(mine[0].message, "Your server is running");
        assert.deepEqual(mine[0].server, {
          identifier: (await order(stack, alice.orderId))
            .pterodactyl_server_identifier,
          panel_status: "installed",
          live_state: "running",
        });
        assert.deepEqual(mine[0].limits, {
          memory_mb: 2048,
          disk_mb: 10240,
          cpu_percent: 100,
          databases: 1,
          backups: 1,
          allocations: 1,
        });

        const theirs = await views(bob.user);
        assert.deepEqual(theirs.map((v) => v.order_id), [bob.orderId]);
        assert.equal(theirs[0].status, "installing");
        assert.equal(theirs[0].server.live_state, null);
      },
    );

    await t.step(
      "a dashboard polling every few seconds costs no panel call each time",
      async () => {
        stack.panel.resetCalls();
        await views(alice.user);
        await views(alice.user);
        assert.deepEqual(panelCalls(stack), [], "live state cached");
        await stack.sql`update public.orders set panel_seen_at = now()
        where id = ${bob.orderId}`;
        await views(bob.user);
        assert.deepEqual(panelCalls(stack), [], "seen just now");
      },
    );

    await t.step(
      "a customer's installing order is refreshed from the panel",
      async () => {
        await finishInstalls(stack, {
          server_id: (await order(stack, bob.orderId)).pterodactyl_server_id,
        });
        await stack
          .sql`update public.orders set panel_seen_at = now() - interval '1 minute'
        where id = ${bob.orderId}`;
        stack.panel.resetCalls();
        const [view] = await views(bob.user);
        assert.equal(view.status, "active");
        assert.equal(view.server.live_state, "running");
        assert.deepEqual(panelCalls(stack).map((c) => c.split(" ")[0]), [
          "GET",
          "GET",
        ]);
      },
    );

    await t.step(
      "callers without credentials are refused; unknown orders are 404",
      async () => {
        const res = await fetch(
          `${stack.gateway.url}/functions/v1/sync-server-status`,
          { method: "POST", body: "{}" },
        );
        assert.equal(res.status, 401);
        assert.equal(errorCode(await res.json()), "unauthorized");
        const anon = await invoke(stack.anon, "sync-server-status", {});
        assert.equal(anon.status, 401);
        const unknown = await serviceCall(stack, {
          order_id: crypto.randomUUID(),
        });
        assert.equal(unknown.status, 404);
        assert.equal(errorCode(unknown.body), "order_not_found");
      },
    );
  } finally {
    await stack.close();
  }
});
