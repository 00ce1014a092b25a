import assert from "node:assert/strict";
import { sandboxClient } from "../local/stripe-sandbox/testing.ts";
import { order, purchase, subscriptionControl } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import { finishInstalls, serviceCall, sweeper } from "./_sweep.ts";
import { PANEL_ACTION_RETRY } from "../supabase/functions/_shared/panel/converge.ts";

async function freeMemory(stack: TestStack, nodeId: number): Promise<number> {
  const [row] = await stack.sql`select free_memory_mb from public.node_capacity
    where node_id = ${nodeId}`;
  return row.free_memory_mb;
}

Deno.test("a server's whole life: paid, renewal failed, recovered, canceled, deleted", async () => {
  const stack = await startTestStack();
  const worker = sweeper(stack);
  try {
    const checkout = await purchase(stack, { server_name: "Whole life" });
    let row = await order(stack, checkout.orderId);
    const subscriptionId: string = row.stripe_subscription_id;
    const server = () =>
      stack.panel.state().servers.find((s) =>
        s.id === row.pterodactyl_server_id
      );
    const nodeId = Number(row.node_id);
    const sold = await freeMemory(stack, nodeId);

    // The install finishes; the sweep sees it in the panel's list.
    await finishInstalls(stack, { server_id: row.pterodactyl_server_id });
    await worker.sweep();
    row = await order(stack, checkout.orderId);
    assert.equal(row.status, "active");
    assert.equal(server()?.power_state, "running");

    // A renewal fails: the server keeps running through the grace period.
    await subscriptionControl(stack, subscriptionId, "renew", {
      outcome: "failed",
    });
    row = await order(stack, checkout.orderId);
    assert.equal(row.status, "active");
    assert.ok(row.suspend_at instanceof Date);
    await worker.sweep();
    assert.equal(server()?.status, null);

    // The grace period ends: suspended on the panel, which stops the server.
    worker.clock.passTo(row.suspend_at);
    await worker.sweep();
    row = await order(stack, checkout.orderId);
    assert.deepEqual(
      [row.status, row.suspend_reason, row.panel_state],
      ["suspended", "billing", "suspended"],
    );
    assert.equal(server()?.status, "suspended");
    assert.equal(server()?.power_state, "offline");
    assert.equal(row.was_running, true);

    // The customer pays: unsuspended at once and started again.
    await subscriptionControl(stack, subscriptionId, "recover");
    row = await order(stack, checkout.orderId);
    assert.deepEqual([row.status, row.panel_target], ["active", "running"]);
    assert.equal(server()?.status, null);
    assert.notEqual(server()?.power_state, "offline");

    // The subscription is canceled in Stripe: suspended now, deleted after retention.
    await sandboxClient(stack.stripe, stack.keys.stripeSecretKey)
      .subscriptions.cancel(subscriptionId);
    await stack.idle();
    row = await order(stack, checkout.orderId);
    assert.deepEqual(
      [row.status, row.suspend_reason, row.panel_state],
      ["canceled", "canceled", "suspended"],
    );
    assert.ok(row.delete_at instanceof Date);
    await worker.sweep();
    assert.ok(server(), "kept until retention ends");

    // A day before: an operator is warned, once.
    worker.clock.passTo(new Date(row.delete_at.getTime() - 23 * 3600_000));
    await worker.sweep();
    await worker.sweep();
    assert.ok(server(), "kept until retention ends");

    worker.clock.passTo(row.delete_at);
    await worker.sweep();
    row = await order(stack, checkout.orderId);
    assert.equal(row.panel_state, "deleted");
    assert.equal(server(), undefined);
    // Its room on the node is free again.
    assert.ok(await freeMemory(stack, nodeId) > sold);
    const alerts = await stack.sql`select message from public.order_events
      where order_id = ${checkout.orderId} and kind = 'alert'`;
    assert.deepEqual(alerts.map((a) => a.message), [
      "Server deletion tomorrow",
    ]);
  } finally {
    await worker.close();
    await stack.close();
  }
});

Deno.test("a dispute suspends the server until an admin lifts it", async () => {
  const stack = await startTestStack();
  try {
    const checkout = await purchase(stack, { server_name: "Disputed" });
    let row = await order(stack, checkout.orderId);
    const server = () =>
      stack.panel.state().servers.find((s) =>
        s.id === row.pterodactyl_server_id
      );
    await finishInstalls(stack, { server_id: row.pterodactyl_server_id });
    await subscriptionControl(stack, row.stripe_subscription_id, "dispute");
    row = await order(stack, checkout.orderId);
    assert.deepEqual([row.status, row.suspend_reason], [
      "suspended",
      "dispute",
    ]);
    assert.equal(server()?.status, "suspended");

    // Only the service may lift it; an order that is not suspended cannot be lifted.
    const asUser = await invoke(
      checkout.user.client,
      "sync-server-status",
      { order_id: checkout.orderId, lift_suspension: true },
    );
    assert.deepEqual([asUser.status, errorCode(asUser.body)], [
      403,
      "forbidden",
    ]);
    assert.equal((await order(stack, checkout.orderId)).status, "suspended");
    assert.deepEqual(
      (await serviceCall(stack, { lift_suspension: true })).status,
      400,
    );

    // Lifted while the panel cannot unsuspend: the customer never reads "running"
    // while the server is still stopped; the status moves once the panel confirms.
    stack.panel.configure({ wingsStatus: 502 });
    try {
      const lifted = await serviceCall(stack, {
        order_id: checkout.orderId,
        lift_suspension: true,
      });
      assert.equal(lifted.status, 200, JSON.stringify(lifted.body));
      row = await order(stack, checkout.orderId);
      assert.deepEqual(
        [row.status, row.panel_target, row.suspend_reason, row.panel_state],
        ["suspended", "running", null, "suspended"],
      );
      assert.equal(server()?.status, "suspended");
      const mine = await invoke(checkout.user.client, "sync-server-status");
      const [view] = (mine.body as { orders: { message: string }[] }).orders;
      assert.match(view.message, /resuming/);
    } finally {
      stack.panel.configure({ wingsStatus: null });
    }
    const s = sweeper(stack);
    try {
      s.clock.advance(PANEL_ACTION_RETRY.maxDelayMs);
      await s.sweep();
    } finally {
      await s.close();
    }
    row = await order(stack, checkout.orderId);
    assert.deepEqual(
      [row.status, row.panel_target, row.suspend_reason, row.panel_state],
      ["active", "running", null, "installed"],
    );
    assert.equal(server()?.status === "suspended", false);
    // The admin lifted the target; the status moved when the panel confirmed.
    const trail = await stack
      .sql`select actor, kind, to_status, message from public.order_events
      where order_id = ${checkout.orderId} and (kind = 'status' or actor = 'admin')
      order by id`;
    assert.deepEqual(
      trail.slice(-2).map((e) => [e.actor, e.kind, e.to_status]),
      [
        ["admin", "note", null],
        ["sweep", "status", "active"],
      ],
    );
    assert.equal(trail.at(-1)?.message, "Server unsuspended on the panel");

    const again = await serviceCall(stack, {
      order_id: checkout.orderId,
      lift_suspension: true,
    });
    assert.deepEqual(
      [again.status, (again.body.error as { code: string }).code],
      [409, "order_not_suspended"],
    );
  } finally {
    await stack.close();
  }
});
