import assert from "node:assert/strict";
import { order, purchase } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import {
  deleteByHand,
  finishInstalls,
  panelCalls,
  serverOf,
  serviceCall,
  suspendByAdmin,
  type Sweeper,
  sweeper,
} from "./_sweep.ts";

const DAY = 24 * 3600_000;

async function alerts(stack: TestStack, orderId: string): Promise<string[]> {
  const rows = await stack.sql<{ message: string }[]>`
    select message from public.order_events
    where order_id = ${orderId} and kind = 'alert' order by id`;
  return rows.map((row) => row.message);
}

/** A purchase taken to an installed, running server and an active order. */
async function activeOrder(stack: TestStack, s: Sweeper) {
  const { orderId } = await purchase(stack, {
    plan_id: "mc-java-2gb",
    region: "us-east",
  });
  const { pterodactyl_server_id: serverId } = await order(stack, orderId);
  await finishInstalls(stack, { server_id: serverId });
  await s.sweep();
  const row = await order(stack, orderId);
  assert.equal(row.status, "active");
  return { orderId, serverId: serverId as number };
}

/** What stripe-webhook does on `customer.subscription.deleted`. */
async function cancel(
  stack: TestStack,
  orderId: string,
  deleteAt: Date,
  now: Date,
) {
  await stack
    .sql`update public.orders set status = 'canceled', panel_target = 'suspended',
    suspend_reason = 'canceled', delete_at = ${deleteAt}, panel_action_due_at = ${now}
    where id = ${orderId}`;
}

Deno.test("the panel follows each order's target: grace, payment, cancellation, retention", async (t) => {
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const s = sweeper(stack);
  try {
    let suspendedId = "";

    await t.step(
      "payment grace over: suspended on the panel, remembering it ran",
      async () => {
        const { orderId, serverId } = await activeOrder(stack, s);
        // As stripe-webhook does on invoice.payment_failed.
        const suspendAt = new Date(s.clock.now().getTime() + 3 * DAY);
        await stack.sql`update public.orders set suspend_at = ${suspendAt}
        where id = ${orderId}`;
        await s.sweep();
        assert.equal((await order(stack, orderId)).status, "active");
        assert.equal(serverOf(stack, orderId).status, null);

        s.clock.passTo(suspendAt);
        const summary = await s.sweep();
        const row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "billing");
        assert.equal(row.panel_state, "suspended");
        assert.equal(row.panel_action_due_at, null);
        assert.equal(row.was_running, true);
        assert.equal(summary.outcomes["deadline.suspended"], 1);
        assert.equal(summary.outcomes["action.suspended"], 1);
        const server = serverOf(stack, orderId);
        assert.equal(server.status, "suspended");
        assert.equal(server.power_state, "offline");
        assert.ok(
          panelCalls(stack).includes(
            `POST /api/application/servers/${serverId}/suspend`,
          ),
        );
        suspendedId = orderId;
      },
    );

    await t.step("paid again: unsuspended and started again", async () => {
      // As stripe-webhook does when the invoice is paid.
      await stack
        .sql`update public.orders set panel_target = 'running', suspend_reason = null,
        panel_action_due_at = ${s.clock.now()} where id = ${suspendedId}`;
      stack.panel.resetCalls();
      await s.sweep();
      const row = await order(stack, suspendedId);
      assert.equal(row.status, "active");
      assert.equal(row.panel_state, "installed");
      const server = serverOf(stack, suspendedId);
      assert.equal(server.status, null);
      assert.equal(server.power_state, "running");
      assert.ok(
        panelCalls(stack).includes(
          `POST /api/client/servers/${server.identifier}/power`,
        ),
      );
    });

    await t.step(
      "a panel outage delays a suspension, never loses it",
      async () => {
        const { orderId, serverId } = await activeOrder(stack, s);
        await stack.sql`update public.orders set panel_target = 'suspended',
        suspend_reason = 'admin', panel_action_due_at = ${s.clock.now()} where id = ${orderId}`;
        stack.panel.addFault({
          method: "POST",
          path: `/api/application/servers/${serverId}/suspend`,
          status: 502,
          times: 3,
        });
        for (let attempt = 1; attempt <= 3; attempt++) {
          await s.sweep();
          const row = await order(stack, orderId);
          assert.equal(row.panel_action_attempts, attempt);
          assert.ok(row.panel_action_due_at > s.clock.now(), "backoff");
          s.clock.passTo(row.panel_action_due_at);
        }
        assert.deepEqual(await alerts(stack, orderId), [
          "Panel action keeps failing",
        ]);
        await s.sweep();
        const row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_action_attempts, 0);
        assert.equal(serverOf(stack, orderId).status, "suspended");
      },
    );

    await t.step(
      "cancelled: suspended at once, warned the day before, deleted after retention",
      async () => {
        const { orderId } = await activeOrder(stack, s);
        const deleteAt = new Date(s.clock.now().getTime() + 14 * DAY);
        await cancel(stack, orderId, deleteAt, new Date());
        // stripe-webhook's hand-off: the service call for one order.
        const res = await serviceCall(stack, { order_id: orderId });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.actions, ["suspended"]);
        let row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.panel_state, "suspended");
        assert.equal(serverOf(stack, orderId).status, "suspended");
        const [before] = await stack
          .sql`select free_memory_mb from public.node_capacity
        where node_id = ${row.node_id}`;

        s.clock.passTo(new Date(deleteAt.getTime() - DAY / 2));
        await s.sweep();
        await s.sweep();
        assert.deepEqual(await alerts(stack, orderId), [
          "Server deletion tomorrow",
        ]);
        assert.ok(serverOf(stack, orderId), "kept until retention ends");

        s.clock.passTo(deleteAt);
        const summary = await s.sweep();
        assert.equal(summary.outcomes["action.deleted"], 1);
        row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.panel_target, "deleted");
        assert.equal(row.panel_state, "deleted");
        assert.equal(serverOf(stack, orderId), undefined);
        const [after] = await stack
          .sql`select free_memory_mb from public.node_capacity
        where node_id = ${row.node_id}`;
        assert.equal(
          after.free_memory_mb,
          before.free_memory_mb + row.memory_mb,
        );
      },
    );

    await t.step("a server already gone counts as deleted (404)", async () => {
      const { orderId, serverId } = await activeOrder(stack, s);
      await deleteByHand(stack, serverId);
      await stack
        .sql`update public.orders set status = 'canceled', panel_target = 'deleted',
        panel_action_due_at = ${s.clock.now()} where id = ${orderId}`;
      stack.panel.resetCalls();
      assert.deepEqual(await s.converge(orderId), ["deleted"]);
      const deletes = stack.panel.calls().filter((c) => c.method === "DELETE");
      assert.deepEqual(deletes.map((c) => c.status), [404]);
      assert.equal((await order(stack, orderId)).panel_state, "deleted");
    });

    await t.step(
      "deletion retried with backoff, forced after repeated failures, with alerts",
      async () => {
        const { orderId, serverId } = await activeOrder(stack, s);
        await stack
          .sql`update public.orders set status = 'canceled', panel_target = 'deleted',
        panel_action_due_at = ${s.clock.now()} where id = ${orderId}`;
        stack.panel.configure({ wingsStatus: 500 });
        stack.panel.resetCalls();
        try {
          for (let attempt = 1; attempt <= 3; attempt++) {
            await s.sweep();
            await s.sweep(); // not due again yet: no call
            s.clock.passTo((await order(stack, orderId)).panel_action_due_at);
          }
          await s.sweep();
        } finally {
          stack.panel.configure({ wingsStatus: null });
        }
        const deletes = panelCalls(stack).filter((c) => c.startsWith("DELETE"));
        assert.deepEqual(deletes, [
          `DELETE /api/application/servers/${serverId}`,
          `DELETE /api/application/servers/${serverId}`,
          `DELETE /api/application/servers/${serverId}`,
          `DELETE /api/application/servers/${serverId}/force`,
        ]);
        assert.equal(serverOf(stack, orderId), undefined);
        assert.equal((await order(stack, orderId)).panel_state, "deleted");
        assert.deepEqual(await alerts(stack, orderId), [
          "Panel action keeps failing",
          "Forcing a server deletion",
        ]);
      },
    );
  } finally {
    await s.close();
    await stack.close();
  }
});

Deno.test("panel actions that fail or find a server changed: backoff, 404, no restart of a stopped server", async (t) => {
  // A stack of its own: these purchases and calls would spend the panel's rate limit
  // (240 a minute) the steps above count on.
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const s = sweeper(stack);
  try {
    await t.step(
      "failing panel actions back off: 30 s doubling, at most 15 min, never given up",
      async () => {
        const { orderId, serverId } = await activeOrder(stack, s);
        await suspendByAdmin(stack, s, orderId);
        stack.panel.addFault({
          method: "POST",
          path: `/api/application/servers/${serverId}/suspend`,
          status: 502,
          times: 7,
        });
        const delays: number[] = [];
        for (let attempt = 1; attempt <= 7; attempt++) {
          const at = s.clock.now().getTime();
          assert.deepEqual(await s.converge(orderId), ["failed"]);
          const due = (await order(stack, orderId)).panel_action_due_at;
          delays.push(Math.round((due.getTime() - at) / 1000));
          s.clock.passTo(due);
        }
        assert.deepEqual(delays, [30, 60, 120, 240, 480, 900, 900]);
        assert.deepEqual(await s.converge(orderId), ["suspended"]);
        assert.equal(serverOf(stack, orderId).status, "suspended");
      },
    );

    for (const action of ["suspend", "unsuspend"] as const) {
      await t.step(
        `a ${action} answered 404 marks the server missing (error and alert), no retry`,
        async () => {
          const { orderId, serverId } = await activeOrder(stack, s);
          await suspendByAdmin(stack, s, orderId);
          if (action === "unsuspend") {
            assert.deepEqual(await s.converge(orderId), ["suspended"]);
            await stack.sql`update public.orders set panel_target = 'running',
              suspend_reason = null, panel_action_due_at = ${s.clock.now()}
              where id = ${orderId}`;
          }
          await deleteByHand(stack, serverId);
          stack.panel.resetCalls();
          assert.deepEqual(await s.converge(orderId), ["missing"]);
          const row = await order(stack, orderId);
          assert.equal(row.status, "error");
          assert.match(row.error_message, /missing on the panel/);
          assert.equal(row.panel_action_attempts, 0);
          assert.equal((await alerts(stack, orderId)).length, 1);
          // Hours later the sweep does not call the panel about it again.
          s.clock.advance(DAY);
          stack.panel.resetCalls();
          await s.converge(orderId);
          assert.deepEqual(
            panelCalls(stack).filter((c) => c.includes(`/${serverId}/`)),
            [],
          );
        },
      );
    }

    await t.step(
      "an unsuspended server is started again only if it ran before",
      async () => {
        const { orderId, serverId } = await activeOrder(stack, s);
        // The customer had stopped it before the suspension.
        const res = await fetch(
          `${stack.panel.url}/_sandbox/servers/${serverId}/power`,
          {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ state: "offline" }),
          },
        );
        assert.equal(res.status, 200, await res.text());
        await suspendByAdmin(stack, s, orderId);
        assert.deepEqual(await s.converge(orderId), ["suspended"]);
        assert.equal((await order(stack, orderId)).was_running, false);
        await stack.sql`update public.orders set panel_target = 'running',
          suspend_reason = null, panel_action_due_at = ${s.clock.now()}
          where id = ${orderId}`;
        stack.panel.resetCalls();
        assert.deepEqual(await s.converge(orderId), ["unsuspended"]);
        const server = serverOf(stack, orderId);
        assert.equal(server.status, null);
        assert.equal(server.power_state, "offline");
        assert.ok(!panelCalls(stack).some((c) => c.endsWith("/power")));
        assert.equal((await order(stack, orderId)).status, "active");
      },
    );
  } finally {
    await s.close();
    await stack.close();
  }
});
