/**
 * `create-billing-portal-session` and what the customer does in Stripe's portal: a
 * session for one's own Stripe customer only, and a cancellation made there (flexible
 * billing: `cancel_at`, not `cancel_at_period_end`) followed as a coming cancellation,
 * with its date, until the customer resumes.
 */
import assert from "node:assert/strict";
import { order, purchase } from "./_purchase.ts";
import { startTestStack } from "./_stack.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";

Deno.test("the customer portal: own customer only; a cancel there is followed until resumed", async (t) => {
  const stack = await startTestStack();
  const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
  try {
    const bought = await purchase(stack);
    const row = await order(stack, bought.orderId);
    const subscriptionId = String(row.stripe_subscription_id);
    let sessionUrl = "";

    await t.step("a session for the caller's own Stripe customer", async () => {
      const res = await invoke(
        bought.user.client,
        "create-billing-portal-session",
        { order_id: bought.orderId },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      sessionUrl = String(res.body.url);
      const id = new URL(sessionUrl).pathname.split("/").pop()!;
      const sessions = stack.stripe.calls().filter((c) =>
        c.method === "POST" && c.path === "/v1/billing_portal/sessions"
      );
      assert.equal(sessions.length, 1);
      // The page is the customer's: it shows their subscription.
      const page = await fetch(sessionUrl);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(html, new RegExp(subscriptionId));
      assert.ok(id.startsWith("bps_"), id);
      // Without an order id, the caller's own customer too.
      const plain = await invoke(
        bought.user.client,
        "create-billing-portal-session",
        {},
      );
      assert.equal(plain.status, 200, JSON.stringify(plain.body));
    });

    await t.step(
      "someone else's order is not found; no customer is a 409",
      async () => {
        const other = await stack.user();
        const before = stack.stripe.calls().length;
        const res = await invoke(
          other.client,
          "create-billing-portal-session",
          {
            order_id: bought.orderId,
          },
        );
        assert.equal(res.status, 404, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "order_not_found");
        const none = await invoke(
          other.client,
          "create-billing-portal-session",
          {},
        );
        assert.equal(none.status, 409, JSON.stringify(none.body));
        assert.equal(errorCode(none.body), "no_stripe_customer");
        const elsewhere = await invoke(
          bought.user.client,
          "create-billing-portal-session",
          { return_url: "https://evil.example/phish" },
        );
        assert.equal(elsewhere.status, 422, JSON.stringify(elsewhere.body));
        assert.equal(errorCode(elsewhere.body), "return_url_not_allowed");
        assert.equal(stack.stripe.calls().length, before);
      },
    );

    await t.step(
      "a cancel in the portal shows as a coming cancellation with its date",
      async () => {
        const id = new URL(sessionUrl).pathname.split("/").pop()!;
        const res = await fetch(
          `${stack.stripe.url}/_sandbox/billing_portal/sessions/${id}/cancel`,
          {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ feedback: "too_expensive" }),
          },
        );
        assert.equal(res.status, 200, await res.text());
        await stack.idle();
        const sub = await stripe.subscriptions.retrieve(subscriptionId);
        assert.equal(sub.cancel_at_period_end, false);
        assert.ok(sub.cancel_at);
        const after = await order(stack, bought.orderId);
        assert.equal(after.cancel_at_period_end, true);
        assert.equal(
          new Date(after.cancel_at).getTime(),
          sub.cancel_at * 1000,
        );
        assert.equal(after.status, "installing");
        const status = await invoke(
          bought.user.client,
          "sync-server-status",
          {},
        );
        const view = (status.body.orders as Record<string, unknown>[])[0];
        assert.equal(
          view.cancel_at,
          new Date(sub.cancel_at * 1000).toISOString(),
        );
        assert.equal(view.cancel_at_period_end, true);
        const words = await stack.sql<{ customer_message: string }[]>`
        select customer_message from public.order_events
        where order_id = ${bought.orderId} and audience = 'customer'
        order by id desc limit 1`;
        assert.match(
          words[0].customer_message,
          new RegExp(
            `ends on ${
              new Date(sub.cancel_at * 1000).toISOString().slice(0, 10)
            }`,
          ),
        );
      },
    );

    await t.step("resuming in the portal withdraws it", async () => {
      const id = new URL(sessionUrl).pathname.split("/").pop()!;
      const res = await fetch(
        `${stack.stripe.url}/_sandbox/billing_portal/sessions/${id}/resume`,
        {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: "{}",
        },
      );
      assert.equal(res.status, 200, await res.text());
      await stack.idle();
      const after = await order(stack, bought.orderId);
      assert.equal(after.cancel_at_period_end, false);
      assert.equal(after.cancel_at, null);
      const status = await invoke(bought.user.client, "sync-server-status", {});
      const view = (status.body.orders as Record<string, unknown>[])[0];
      assert.equal(view.cancel_at, null);
    });
  } finally {
    await stack.close();
  }
});
