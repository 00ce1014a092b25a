/**
 * `change-server-plan` end to end: a customer's server bought through Checkout, then
 * upgraded (Stripe's pending update, paid or declined), downgraded at the renewal
 * (a subscription schedule), refused when the node is full, the disk too used, the
 * plan another game, or the order someone else's; and the panel's build follows.
 */
import assert from "node:assert/strict";
import {
  type Checkout,
  order,
  purchase,
  startAlertReceiver,
  subscriptionControl,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { finishInstalls, serverOf, type Sweeper, sweeper } from "./_sweep.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";

async function control(
  url: string,
  body: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  return answer;
}

/** A running server of `plan`, installed. */
async function running(
  stack: TestStack,
  sweep: Sweeper,
  plan = "mc-java-4gb",
) {
  const bought = await purchase(stack, {
    plan_id: plan,
    server_name: `Plan ${crypto.randomUUID().slice(0, 6)}`,
  });
  await finishInstalls(stack);
  await sweep.sweep();
  const row = await order(stack, bought.orderId);
  assert.equal(row.status, "active");
  return { ...bought, subscription: String(row.stripe_subscription_id) };
}

function change(
  who: Checkout,
  body: Record<string, unknown>,
) {
  return invoke(who.user.client, "change-server-plan", {
    order_id: who.orderId,
    ...body,
  });
}

async function freeOn(stack: TestStack, nodeId: number) {
  const [row] = await stack.sql<
    { free_memory_mb: number; free_disk_mb: number }[]
  >`select free_memory_mb, free_disk_mb from public.node_capacity where node_id = ${nodeId}`;
  return row;
}

async function changes(stack: TestStack, orderId: string) {
  return [
    ...await stack.sql<
      { status: string; kind: string; reserve_memory_mb: number }[]
    >`select status, kind, reserve_memory_mb from public.plan_changes
      where order_id = ${orderId} order by created_at`,
  ];
}

function stripeWrites(stack: TestStack, since: number): string[] {
  return stack.stripe.calls().slice(since)
    .filter((call) => call.method === "POST" && !call.path.startsWith("/_"))
    .map((call) => call.path);
}

Deno.test("change-server-plan: upgrades, downgrades and their refusals", async (t) => {
  const alerts = startAlertReceiver();
  const stack = await startTestStack({
    env: { ALERT_WEBHOOK_URL: alerts.url },
  });
  const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
  const sweep = sweeper(stack, { alertUrl: alerts.url });
  // Room for every server these steps buy and grow.
  await stack.sql`update public.ptero_nodes set memory_mb = memory_mb * 10,
    disk_mb = disk_mb * 10`;
  try {
    await t.step(
      "a preview says what an upgrade costs now and writes nothing",
      async () => {
        const bought = await running(stack, sweep);
        const before = stack.stripe.calls().length;
        const res = await change(bought, {
          plan_id: "mc-java-8gb",
          preview: true,
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const preview = res.body.preview as Record<string, unknown>;
        assert.equal(preview.kind, "upgrade");
        assert.equal(preview.effective, "now");
        assert.equal(preview.to_plan_id, "mc-java-8gb");
        assert.equal(preview.currency, "usd");
        // Almost a whole month left: close to the difference of the two prices.
        const due = Number(preview.amount_due_cents);
        assert.ok(due > 800 && due <= 1899 - 999, `amount due ${due}`);
        assert.deepEqual(preview.limits, { memory_mb: 8192, disk_mb: 40960 });
        assert.equal(preview.restart_needed, true);
        assert.deepEqual(stripeWrites(stack, before), [
          "/v1/invoices/create_preview",
        ]);
        assert.deepEqual(await changes(stack, bought.orderId), []);
      },
    );

    await t.step(
      "a paid upgrade: new price, order, limits on the panel, room",
      async () => {
        const bought = await running(stack, sweep);
        const row = await order(stack, bought.orderId);
        const nodeId = Number(row.node_id);
        const roomBefore = await freeOn(stack, nodeId);
        const preview = await change(bought, {
          plan_id: "mc-java-8gb",
          preview: true,
        });
        const res = await change(bought, { plan_id: "mc-java-8gb" });
        assert.equal(res.status, 202, JSON.stringify(res.body));
        const view = res.body.change as Record<string, unknown>;
        assert.equal(view.status, "applied");
        assert.equal(view.kind, "upgrade");
        await stack.idle();

        const sub = await stripe.subscriptions.retrieve(bought.subscription, {
          expand: ["latest_invoice"],
        });
        assert.equal(sub.items.data.length, 1);
        assert.equal(sub.items.data[0].price.id, "price_mc_java_8gb_monthly");
        assert.equal(sub.pending_update, null);
        const invoice = sub.latest_invoice as {
          amount_paid: number;
          billing_reason: string;
        };
        assert.equal(invoice.billing_reason, "subscription_update");
        // What was previewed is what was charged (same proration date).
        assert.equal(
          invoice.amount_paid,
          (preview.body.preview as Record<string, number>).amount_due_cents,
        );

        const after = await order(stack, bought.orderId);
        assert.equal(after.plan_id, "mc-java-8gb");
        assert.equal(after.stripe_price_id, "price_mc_java_8gb_monthly");
        assert.equal(after.amount_cents, 1899);
        assert.equal(after.memory_mb, 8192);
        assert.equal(after.disk_mb, 40960);
        assert.equal(after.cpu_percent, 300);
        assert.equal(after.status, "active");

        // The build is changed at once, or by the next sweep when a concurrent
        // worker held the order at that moment.
        await sweep.sweep();
        const server = serverOf(stack, bought.orderId);
        assert.equal(server.memory, 8192);
        assert.equal(server.disk, 40960);
        assert.equal(server.cpu, 300);
        assert.deepEqual(after.panel_limits, {
          memory: 8192,
          swap: 0,
          disk: 40960,
          io: 500,
          cpu: 300,
          databases: 3,
          backups: 3,
          allocations: 2,
        });
        // The node holds the order's new limits, and nothing more.
        const roomAfter = await freeOn(stack, nodeId);
        assert.equal(
          roomBefore.free_memory_mb - roomAfter.free_memory_mb,
          4096,
        );
        assert.equal(roomBefore.free_disk_mb - roomAfter.free_disk_mb, 20480);
        assert.deepEqual(
          (await changes(stack, bought.orderId)).map((c) => c.status),
          ["applied"],
        );

        const status = await invoke(
          bought.user.client,
          "sync-server-status",
          {},
        );
        const mine = (status.body.orders as Record<string, unknown>[]).find((
          o,
        ) => o.order_id === bought.orderId)!;
        assert.equal(mine.plan_id, "mc-java-8gb");
        assert.equal(
          (mine.plan_change as Record<string, unknown>).status,
          "applied",
        );
        const words = await stack.sql<{ customer_message: string }[]>`
        select customer_message from public.order_events
        where order_id = ${bought.orderId} and audience = 'customer'
        order by id`;
        assert.ok(
          words.some((w) =>
            /restart it for the game to use the new memory/.test(
              w.customer_message,
            )
          ),
          JSON.stringify(words),
        );
      },
    );

    await t.step(
      "a declined upgrade changes nothing and lets its room go when it expires",
      async () => {
        const bought = await running(stack, sweep);
        const row = await order(stack, bought.orderId);
        const nodeId = Number(row.node_id);
        const roomBefore = await freeOn(stack, nodeId);
        await control(
          `${stack.stripe.url}/_sandbox/customers/${row.stripe_customer_id}/payment_method`,
          { outcome: "declines" },
        );
        const res = await change(bought, { plan_id: "mc-java-8gb" });
        assert.equal(res.status, 402, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "payment_failed");
        await stack.idle();
        const sub = await stripe.subscriptions.retrieve(bought.subscription);
        assert.equal(sub.items.data[0].price.id, "price_mc_java_4gb_monthly");
        assert.ok(sub.pending_update);
        let now = await order(stack, bought.orderId);
        assert.equal(now.plan_id, "mc-java-4gb");
        assert.equal(now.memory_mb, 4096);
        assert.equal(now.status, "active");
        // The room stays held while the payment may still come.
        assert.equal(
          (await freeOn(stack, nodeId)).free_memory_mb,
          roomBefore.free_memory_mb - 4096,
        );
        assert.deepEqual(
          (await changes(stack, bought.orderId)).map((c) => c.status),
          ["awaiting_payment"],
        );

        await subscriptionControl(
          stack,
          bought.subscription,
          "expire_pending_update",
        );
        assert.deepEqual(
          (await changes(stack, bought.orderId)).map((c) => c.status),
          ["expired"],
        );
        assert.deepEqual(await freeOn(stack, nodeId), roomBefore);
        now = await order(stack, bought.orderId);
        assert.equal(now.plan_id, "mc-java-4gb");
        assert.equal(serverOf(stack, bought.orderId).memory, 4096);
        await control(
          `${stack.stripe.url}/_sandbox/customers/${row.stripe_customer_id}/payment_method`,
          { outcome: "succeeds" },
        );
      },
    );

    await t.step(
      "a full node refuses an upgrade before anything is charged",
      async () => {
        const bought = await running(stack, sweep);
        const row = await order(stack, bought.orderId);
        const room = await freeOn(stack, Number(row.node_id));
        // Everything but a little less than the upgrade needs is taken.
        await stack.sql`update public.ptero_nodes
        set memory_mb = memory_mb - ${room.free_memory_mb} + 4000
        where id = ${row.node_id}`;
        try {
          const before = stack.stripe.calls().length;
          const res = await change(bought, { plan_id: "mc-java-8gb" });
          assert.equal(res.status, 409, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "node_full");
          assert.deepEqual(stripeWrites(stack, before), []);
          assert.deepEqual(await changes(stack, bought.orderId), []);
        } finally {
          await stack.sql`update public.ptero_nodes
          set memory_mb = memory_mb + ${room.free_memory_mb} - 4000
          where id = ${row.node_id}`;
        }
      },
    );

    await t.step(
      "a downgrade waits for the renewal, then bills less and shrinks the server",
      async () => {
        const bought = await running(stack, sweep);
        const res = await change(bought, { plan_id: "mc-java-2gb" });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const view = res.body.change as Record<string, unknown>;
        assert.equal(view.status, "scheduled");
        const row = await order(stack, bought.orderId);
        assert.equal(
          view.effective_at,
          new Date(row.paid_until).toISOString(),
        );
        await stack.idle();
        const before = await order(stack, bought.orderId);
        assert.equal(before.plan_id, "mc-java-4gb");
        assert.equal(serverOf(stack, bought.orderId).memory, 4096);

        const renewed = await subscriptionControl(
          stack,
          bought.subscription,
          "renew",
        );
        assert.equal(renewed.invoice?.amount_paid, 499);
        await sweep.sweep();
        const after = await order(stack, bought.orderId);
        assert.equal(after.plan_id, "mc-java-2gb");
        assert.equal(after.amount_cents, 499);
        assert.equal(after.memory_mb, 2048);
        assert.equal(after.disk_mb, 10240);
        const server = serverOf(stack, bought.orderId);
        assert.equal(server.memory, 2048);
        assert.equal(server.disk, 10240);
        assert.deepEqual(
          (await changes(stack, bought.orderId)).map((c) => c.status),
          ["applied"],
        );
      },
    );

    await t.step(
      "a downgrade the data outgrew by the renewal waits for files to go, alerted",
      async () => {
        const bought = await running(stack, sweep);
        assert.equal(
          (await change(bought, { plan_id: "mc-java-2gb" })).status,
          200,
        );
        const server = serverOf(stack, bought.orderId);
        const usage = (mb: number) =>
          control(`${stack.panel.url}/_sandbox/servers/${server.id}/usage`, {
            disk_bytes: mb * 1024 * 1024,
            memory_bytes: 0,
          });
        await usage(15_000);
        await subscriptionControl(stack, bought.subscription, "renew");
        let row = await order(stack, bought.orderId);
        assert.equal(row.disk_mb, 10240);
        for (let i = 0; i < 4; i++) {
          sweep.clock.advance(16 * 60_000);
          await sweep.sweep();
        }
        row = await order(stack, bought.orderId);
        // Wings would stop a server whose data exceeds its disk: it keeps its disk.
        assert.equal(serverOf(stack, bought.orderId).disk, 20480);
        assert.equal(row.panel_limits.disk, 20480);
        assert.ok(row.panel_action_attempts >= 3);
        assert.ok(
          alerts.alerts.some((a) =>
            a.order_id === bought.orderId && /15000 MB of disk/.test(a.content)
          ),
          JSON.stringify(alerts.alerts),
        );
        await usage(5_000);
        sweep.clock.advance(16 * 60_000);
        await sweep.sweep();
        assert.equal(serverOf(stack, bought.orderId).disk, 10240);
        assert.equal(serverOf(stack, bought.orderId).memory, 2048);
      },
    );

    await t.step(
      "a scheduled downgrade can be canceled until it happens",
      async () => {
        const bought = await running(stack, sweep);
        assert.equal(
          (await change(bought, { plan_id: "mc-java-2gb" })).status,
          200,
        );
        const res = await change(bought, { cancel: true });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(
          (res.body.change as Record<string, unknown>).status,
          "canceled",
        );
        const sub = await stripe.subscriptions.retrieve(bought.subscription);
        assert.equal(sub.schedule, null);
        await subscriptionControl(stack, bought.subscription, "renew");
        const after = await order(stack, bought.orderId);
        assert.equal(after.plan_id, "mc-java-4gb");
        assert.equal(after.amount_cents, 999);
      },
    );

    await t.step("a downgrade below the disk in use is refused", async () => {
      const bought = await running(stack, sweep);
      const server = serverOf(stack, bought.orderId);
      await control(`${stack.panel.url}/_sandbox/servers/${server.id}/usage`, {
        disk_bytes: 15_000 * 1024 * 1024,
        memory_bytes: 1024 * 1024 * 1024,
      });
      const res = await change(bought, { plan_id: "mc-java-2gb" });
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(errorCode(res.body), "disk_in_use");
      assert.deepEqual(await changes(stack, bought.orderId), []);
    });

    await t.step(
      "another game, someone else's order, the same plan, a bad body",
      async () => {
        const bought = await running(stack, sweep);
        const other = await stack.user();
        const cases: [
          Record<string, unknown>,
          number,
          string,
          typeof bought.user?,
        ][] = [
          [{ plan_id: "mc-vanilla-4gb" }, 422, "plan_not_compatible"],
          [{ plan_id: "mc-java-4gb" }, 409, "same_plan"],
          [{ plan_id: "no-such-plan" }, 404, "plan_not_found"],
          [{ plan_id: "mc-java-8gb" }, 404, "order_not_found", other],
          [{ plan_id: "mc-java-8gb", extra: 1 }, 400, "invalid_request"],
        ];
        for (const [body, status, code, who] of cases) {
          const res = await invoke(
            (who ?? bought.user).client,
            "change-server-plan",
            {
              order_id: bought.orderId,
              ...body,
            },
          );
          assert.equal(
            res.status,
            status,
            `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`,
          );
          assert.equal(errorCode(res.body), code);
        }
        assert.deepEqual(await changes(stack, bought.orderId), []);
        assert.equal(
          (await order(stack, bought.orderId)).plan_id,
          "mc-java-4gb",
        );
      },
    );

    await t.step("two changes of one order at once: one wins", async () => {
      const bought = await running(stack, sweep);
      // Both requests read the subscription slowly: both pass the first checks and
      // race to record their change.
      const slow = await fetch(`${stack.stripe.url}/_sandbox/faults`, {
        method: "POST",
        body: JSON.stringify({
          method: "GET",
          path: `/v1/subscriptions/${bought.subscription}`,
          latencyMs: 400,
          times: 2,
        }),
      });
      await slow.body?.cancel();
      const answers = await Promise.all([
        change(bought, { plan_id: "mc-java-8gb" }),
        change(bought, { plan_id: "mc-java-8gb" }),
      ]);
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [202, 409], JSON.stringify(answers));
      assert.equal(
        errorCode(answers.find((a) => a.status === 409)!.body),
        "change_in_progress",
      );
      await stack.idle();
      assert.deepEqual(
        (await changes(stack, bought.orderId)).map((c) => c.status),
        ["applied"],
      );
      const sub = await stripe.subscriptions.retrieve(bought.subscription);
      assert.equal(sub.items.data[0].price.id, "price_mc_java_8gb_monthly");
    });

    await t.step(
      "a panel failure during the build change is retried and alerted",
      async () => {
        const bought = await running(stack, sweep);
        const server = serverOf(stack, bought.orderId);
        const fault = await fetch(`${stack.panel.url}/_sandbox/faults`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            method: "PATCH",
            path: `/api/application/servers/${server.id}/build`,
            status: 500,
            // Three failed actions: the client repeats each build call 3 times.
            times: 9,
          }),
        });
        await fault.body?.cancel();
        const res = await change(bought, { plan_id: "mc-java-8gb" });
        assert.equal(res.status, 202, JSON.stringify(res.body));
        await stack.idle();
        let row = await order(stack, bought.orderId);
        assert.equal(row.memory_mb, 8192);
        assert.equal(serverOf(stack, bought.orderId).memory, 4096);
        for (let i = 0; i < 8 && row.panel_limits.memory !== 8192; i++) {
          sweep.clock.advance(16 * 60_000);
          await sweep.sweep();
          row = await order(stack, bought.orderId);
        }
        assert.equal(serverOf(stack, bought.orderId).memory, 8192);
        assert.equal(row.panel_limits.memory, 8192);
        assert.ok(
          alerts.alerts.some((a) =>
            a.order_id === bought.orderId &&
            /Panel action keeps failing/.test(a.content) &&
            /build/.test(a.content)
          ),
          JSON.stringify(alerts.alerts),
        );
      },
    );
  } finally {
    await sweep.close();
    await stack.close();
    await alerts.close();
  }
});
