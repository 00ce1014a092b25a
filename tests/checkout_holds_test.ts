/**
 * Unpaid checkouts hold room on a node only as long as Stripe allows a session to live
 * (30 minutes and a margin), and the hold ends with the session expired in Stripe; no
 * transaction or lock is held while Stripe answers, so a slow Stripe slows only the
 * requests that need it.
 */
import assert from "node:assert/strict";
import { errorCode, invoke } from "./_fixtures.ts";
import {
  clearStripeFaults,
  completeCheckout,
  openCheckout,
  order,
  stripeCallsArrive,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { sweeper } from "./_sweep.ts";

/** eu-west with only its 8 GB node: one 8 GB checkout fills the region. */
const FULL_REGION = {
  plan_id: "mc-java-8gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Holder",
};

/**
 * Locks on orders, and advisory locks, held by connections named `name` (a function's
 * name; the in-process sweep connects as "gameshop").
 */
async function locksHeld(stack: TestStack, name: string): Promise<number> {
  const [{ n }] = await stack.sql<{ n: number }[]>`
    select count(*)::int as n from pg_locks l
    join pg_stat_activity a on a.pid = l.pid
    where a.datname = current_database() and a.application_name = ${name}
      and (l.relation = 'public.orders'::regclass or l.locktype = 'advisory')`;
  return n;
}

/** Connections of a function inside a transaction. */
async function inTransaction(stack: TestStack, name: string): Promise<number> {
  const [{ n }] = await stack.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = ${name}
      and state like 'idle in transaction%'`;
  return n;
}

Deno.test("checkout holds end with their sessions, and nothing waits on Stripe under a lock", async (t) => {
  const stack = await startTestStack();
  await stack
    .sql`update public.ptero_nodes set enabled = false where name = 'eu-west-1'`;
  try {
    await t.step(
      "an unpaid checkout holds its room about 30 minutes: at its end the session is expired in Stripe and the room released",
      async () => {
        const s = sweeper(stack);
        try {
          const held = await openCheckout(stack, FULL_REGION);
          const row = await order(stack, held.orderId);
          const ttl = row.checkout_expires_at.getTime() -
            row.created_at.getTime();
          assert.ok(
            ttl >= 30 * 60_000 && ttl <= 33 * 60_000,
            `held ${ttl} ms`,
          );
          const next = await stack.user();
          const refused = await invoke(
            next.client,
            "create-checkout-session",
            FULL_REGION,
          );
          assert.equal(errorCode(refused.body), "region_sold_out");

          s.clock.passTo(row.checkout_expires_at);
          const summary = await s.sweep();
          assert.equal(summary.outcomes["checkout.closed"], 1);
          assert.equal((await order(stack, held.orderId)).status, "expired");
          const res = await fetch(
            `${stack.stripe.url}/v1/checkout/sessions/${held.sessionId}`,
            {
              headers: {
                Authorization: `Bearer ${stack.keys.stripeSecretKey}`,
              },
            },
          );
          assert.equal((await res.json()).status, "expired");
          // Nobody can pay for the room now, so it is sold again.
          const sold = await invoke(
            next.client,
            "create-checkout-session",
            FULL_REGION,
          );
          assert.equal(sold.status, 200, JSON.stringify(sold.body));
          s.clock.passTo(
            (await order(stack, String(sold.body.order_id)))
              .checkout_expires_at,
          );
          await s.sweep();
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a session paid while the shop expires it keeps its order and its room",
      async () => {
        const s = sweeper(stack);
        try {
          const held = await openCheckout(stack, FULL_REGION);
          stack.stripe.setWebhookUrl(undefined);
          const since = stack.stripe.calls().length;
          stack.stripe.addFault({
            method: "POST",
            path: `/v1/checkout/sessions/${held.sessionId}/expire`,
            latencyMs: 500,
            times: 1,
          });
          s.clock.passTo(
            (await order(stack, held.orderId)).checkout_expires_at,
          );
          const sweeping = s.sweep();
          await stripeCallsArrive(
            stack,
            since,
            (call) => call.path.endsWith("/expire"),
          );
          // The customer pays during the expire call: Stripe then refuses it.
          await completeCheckout(stack, held.sessionId);
          const summary = await sweeping;
          assert.equal(summary.outcomes["checkout.paid"], 1);
          const row = await order(stack, held.orderId);
          assert.notEqual(row.status, "expired");
          assert.notEqual(row.status, "pending");
        } finally {
          stack.stripe.setWebhookUrl(
            `${stack.gateway.url}/functions/v1/stripe-webhook`,
          );
          await clearStripeFaults(stack);
          await s.close();
        }
      },
    );

    await t.step(
      "Stripe answering slowly: checkouts hold no lock or transaction meanwhile, and an unrelated request answers first",
      async () => {
        const buyers = await Promise.all(
          Array.from({ length: 6 }, () => stack.user()),
        );
        const since = stack.stripe.calls().length;
        stack.stripe.addFault({
          method: "POST",
          path: "/v1/checkout/sessions",
          latencyMs: 6_000,
        });
        let unrelatedFirst = false;
        try {
          const checkouts = Promise.all(
            buyers.map((buyer, i) =>
              invoke(buyer.client, "create-checkout-session", {
                plan_id: "mc-java-2gb",
                term: "monthly",
                region: "us-east",
                server_name: `Slow ${i}`,
              })
            ),
          );
          await stripeCallsArrive(
            stack,
            since,
            (call) =>
              call.method === "POST" && call.path === "/v1/checkout/sessions",
            6,
          );
          assert.equal(await locksHeld(stack, "create-checkout-session"), 0);
          assert.equal(
            await inTransaction(stack, "create-checkout-session"),
            0,
          );
          // Six checkouts wait on Stripe; the function's pool (5) is free for others.
          const unrelated = invoke(
            buyers[0].client,
            "create-checkout-session",
            { ...FULL_REGION, plan_id: "no-such-plan" },
          ).then((res) => {
            unrelatedFirst = true;
            return res;
          });
          const first = await Promise.race([
            unrelated.then(() => "unrelated"),
            checkouts.then(() => "checkouts"),
          ]);
          assert.equal(first, "unrelated");
          assert.equal(errorCode((await unrelated).body), "plan_not_found");
          const done = await checkouts;
          assert.deepEqual(done.map((res) => res.status), [
            200,
            200,
            200,
            200,
            200,
            200,
          ]);
        } finally {
          await clearStripeFaults(stack);
        }
        assert.ok(unrelatedFirst);
      },
    );

    await t.step(
      "the sweep asks Stripe about an ended checkout with no lock held",
      async () => {
        const s = sweeper(stack);
        try {
          const held = await openCheckout(stack, {
            ...FULL_REGION,
            plan_id: "mc-java-2gb",
            region: "us-east",
            server_name: "Swept slowly",
          });
          const since = stack.stripe.calls().length;
          stack.stripe.addFault({
            method: "GET",
            path: `/v1/checkout/sessions/${held.sessionId}`,
            latencyMs: 1_000,
            times: 1,
          });
          s.clock.passTo(
            (await order(stack, held.orderId)).checkout_expires_at,
          );
          const sweeping = s.sweep();
          await stripeCallsArrive(
            stack,
            since,
            (call) => call.path === `/v1/checkout/sessions/${held.sessionId}`,
          );
          assert.equal(await locksHeld(stack, "gameshop"), 0);
          assert.equal(await inTransaction(stack, "gameshop"), 0);
          await sweeping;
          assert.equal((await order(stack, held.orderId)).status, "expired");
        } finally {
          await clearStripeFaults(stack);
          await s.close();
        }
      },
    );
  } finally {
    await stack.close();
  }
});
