import assert from "node:assert/strict";
import { sandboxClient } from "../local/stripe-sandbox/testing.ts";
import {
  clearStripeFaults,
  order,
  postEvent,
  purchase,
  stripeCallsArrive,
} from "./_purchase.ts";
import { sweeper } from "./_sweep.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

/**
 * What the webhook's connections hold across a Stripe call: transactions open for
 * longer than any of its statements takes (idle in transaction, or older than 500 ms)
 * and the locks those hold.
 */
async function webhookHolds(stack: TestStack) {
  const [row] = await stack.sql`
    with webhook as (
      select pid, state, state_change, xact_start from pg_stat_activity
      where datname = current_database() and application_name = 'stripe-webhook'),
    held as (
      select pid from webhook
      where (state like 'idle in transaction%'
          and state_change < now() - interval '200 milliseconds')
        or xact_start < now() - interval '500 milliseconds')
    select (select count(*)::int from webhook) as connections,
      (select count(*)::int from held) as in_transaction,
      (select count(*)::int from pg_locks l join held using (pid)
        where l.granted) as locks`;
  return row;
}

/** Whether the order's row can be locked at once (nobody holds it). */
async function rowFree(stack: TestStack, orderId: string): Promise<boolean> {
  try {
    await stack.sql.begin((tx) =>
      tx`select id from public.orders where id = ${orderId} for update nowait`
    );
    return true;
  } catch {
    return false;
  }
}

/** Starts a sandbox control (a customer's refund, say) without waiting for it. */
function control(
  stack: TestStack,
  subscriptionId: string,
  action: string,
): Promise<void> {
  return fetch(
    `${stack.stripe.url}/_sandbox/subscriptions/${subscriptionId}/${action}`,
    { method: "POST", headers: { "Content-Type": "application/json" } },
  ).then(async (res) => {
    await res.body?.cancel();
    assert.ok(res.ok);
  });
}

const LATENCY_MS = 3_000;

Deno.test("stripe-webhook calls Stripe outside its transactions", async (t) => {
  const stack = await startTestStack();
  const stripe = sandboxClient(stack.stripe, stack.keys.stripeSecretKey);
  try {
    await t.step(
      "a slow subscription read holds no lock and no open transaction",
      async () => {
        const checkout = await purchase(stack, { server_name: "Slow read" });
        const row = await order(stack, checkout.orderId);
        const sub = row.stripe_subscription_id;
        stack.stripe.addFault({
          method: "GET",
          path: `/v1/subscriptions/${sub}`,
          latencyMs: LATENCY_MS,
          times: 1,
        });
        const from = stack.stripe.requests().length;
        const started = Date.now();
        let settled = false;
        const reply = postEvent(stack, {
          id: `evt_slow_${crypto.randomUUID().replaceAll("-", "")}`,
          object: "event",
          type: "customer.subscription.updated",
          api_version: "2026-10-28.endive",
          created: Math.floor(Date.now() / 1000),
          data: {
            object: {
              id: sub,
              object: "subscription",
              metadata: { order_id: checkout.orderId },
            },
          },
        }).finally(() => settled = true);
        try {
          await stripeCallsArrive(
            stack,
            from,
            (r) => r.method === "GET" && r.path === `/v1/subscriptions/${sub}`,
          );
          await new Promise((resolve) => setTimeout(resolve, 300));
          const holds = await webhookHolds(stack);
          assert.equal(settled, false, "the read is still in flight");
          assert.ok(holds.connections >= 1, "the webhook is connected");
          assert.equal(holds.in_transaction, 0, JSON.stringify(holds));
          assert.equal(holds.locks, 0, JSON.stringify(holds));
          assert.ok(await rowFree(stack, checkout.orderId));
        } finally {
          const res = await reply;
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.equal(res.body.outcome, "processed");
        }
        assert.ok(Date.now() - started >= LATENCY_MS);
      },
    );

    await t.step(
      "a full refund cancels the subscription after commit, under its idempotency key",
      async () => {
        const checkout = await purchase(stack, { server_name: "Refund now" });
        const sub = (await order(stack, checkout.orderId))
          .stripe_subscription_id;
        stack.stripe.addFault({
          method: "DELETE",
          path: `/v1/subscriptions/${sub}`,
          latencyMs: LATENCY_MS,
          times: 1,
        });
        const from = stack.stripe.requests().length;
        const refunding = control(stack, sub, "refund");
        await stripeCallsArrive(
          stack,
          from,
          (r) => r.method === "DELETE" && r.path === `/v1/subscriptions/${sub}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 600));
        // The call is in flight: the order's change and the intent are committed.
        const during = await order(stack, checkout.orderId);
        assert.equal(during.status, "canceled");
        assert.ok(during.subscription_cancel_due_at instanceof Date);
        const holds = await webhookHolds(stack);
        assert.equal(holds.in_transaction, 0, JSON.stringify(holds));
        assert.equal(holds.locks, 0, JSON.stringify(holds));
        assert.ok(await rowFree(stack, checkout.orderId));
        await refunding;
        await stack.idle();

        const after = await order(stack, checkout.orderId);
        assert.equal(after.subscription_cancel_due_at, null);
        assert.equal(
          (await stripe.subscriptions.retrieve(sub)).status,
          "canceled",
        );
        const deletes = stack.stripe.requests().slice(from).filter((r) =>
          r.method === "DELETE"
        );
        assert.deepEqual(
          [...new Set(deletes.map((r) => r.idempotencyKey))],
          [`cancel-${checkout.orderId}`],
        );
      },
    );

    await t.step(
      "a failed cancellation stays due and the sweep carries it out",
      async () => {
        const checkout = await purchase(stack, { server_name: "Refund later" });
        const sub = (await order(stack, checkout.orderId))
          .stripe_subscription_id;
        stack.stripe.addFault({
          method: "DELETE",
          path: `/v1/subscriptions/${sub}`,
          status: 500,
        });
        const from = stack.stripe.requests().length;
        try {
          await control(stack, sub, "refund");
          await stack.idle();
        } finally {
          await clearStripeFaults(stack);
        }
        let row = await order(stack, checkout.orderId);
        assert.equal(row.status, "canceled");
        assert.ok(row.subscription_cancel_due_at instanceof Date, "still due");
        assert.equal(
          (await stripe.subscriptions.retrieve(sub)).status,
          "active",
        );

        const s = sweeper(stack);
        try {
          // Not yet due again: the failed try moved it a little later.
          assert.equal(
            (await s.sweep()).outcomes["subscription_cancel.canceled"],
            undefined,
          );
          s.clock.passTo(row.subscription_cancel_due_at);
          const summary = await s.sweep();
          assert.equal(summary.outcomes["subscription_cancel.canceled"], 1);
        } finally {
          await s.close();
        }
        row = await order(stack, checkout.orderId);
        assert.equal(row.subscription_cancel_due_at, null);
        assert.equal(
          (await stripe.subscriptions.retrieve(sub)).status,
          "canceled",
        );
        const keys = stack.stripe.requests().slice(from).filter((r) =>
          r.method === "DELETE"
        ).map((r) => r.idempotencyKey);
        assert.ok(keys.length >= 2, "tried, then retried");
        assert.ok(keys.every((k) => k === `cancel-${checkout.orderId}`));
        const notes = await stack
          .sql`select message, actor from public.order_events
          where order_id = ${checkout.orderId} and kind = 'note'
            and message like '%canceled in Stripe'`;
        assert.deepEqual(notes.map((n) => n.actor), ["sweep"]);
      },
    );
  } finally {
    await stack.close();
  }
});
