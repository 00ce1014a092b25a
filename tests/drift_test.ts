/**
 * Money and servers never drift apart: a server the panel makes while its order is
 * cancelled, refunded or disputed is recorded on the order and follows the order's
 * target in the same pass; a server left on the panel with an order's external id is
 * attached by the sweep; one naming no order is alerted once. After every race the
 * shop's invariants hold (`_invariants.ts`: each server recorded on its order, a
 * server of an order that no longer pays suspended).
 */
import assert from "node:assert/strict";
import { callPanel, serverPayload } from "../local/panel-sandbox/testing.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import {
  callsArrive,
  completeCheckout,
  openCheckout,
  order,
  serversFor,
  startAlertReceiver,
  subscriptionControl,
} from "./_purchase.ts";
import { assertInvariants } from "./_invariants.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { sweeper } from "./_sweep.ts";

const SERVERS = "/api/application/servers";
/** How long the panel's create takes in these tests: long enough to act during it. */
const SLOW_CREATE_MS = 1_500;

/**
 * A purchase whose panel create is slow: answers once the panel has received the create.
 */
async function paidWithSlowCreate(stack: TestStack) {
  const checkout = await openCheckout(stack);
  stack.panel.addFault({
    method: "POST",
    path: SERVERS,
    latencyMs: SLOW_CREATE_MS,
    times: 1,
  });
  const since = stack.panel.calls().length;
  await completeCheckout(stack, checkout.sessionId);
  await callsArrive(
    stack.panel,
    since,
    (call) => call.method === "POST" && call.path === SERVERS,
  );
  assert.equal((await order(stack, checkout.orderId)).status, "provisioning");
  const { stripe_subscription_id } = await order(stack, checkout.orderId);
  return { ...checkout, subscriptionId: String(stripe_subscription_id) };
}

Deno.test("a server made while its order changed is recorded and follows the order", async (t) => {
  const stack = await startTestStack();
  const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
  stack.panel.configure({ installDelayMs: 3_600_000 });
  try {
    await t.step(
      "cancelled during the create: recorded, suspended at once, deleted after retention",
      async () => {
        const bought = await paidWithSlowCreate(stack);
        await stripe.subscriptions.cancel(bought.subscriptionId);
        await stack.idle();
        const row = await order(stack, bought.orderId);
        const [server] = serversFor(stack, bought.orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.pterodactyl_server_id, server.id);
        assert.equal(row.pterodactyl_server_identifier, server.identifier);
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.panel_state, "suspended");
        assert.equal(server.status, "suspended");
        assert.equal(row.panel_action_due_at, null);
        await assertInvariants(stack);

        const s = sweeper(stack);
        try {
          s.clock.passTo(row.delete_at);
          await s.sweep();
        } finally {
          await s.close();
        }
        assert.deepEqual(serversFor(stack, bought.orderId), []);
        assert.equal(
          (await order(stack, bought.orderId)).panel_state,
          "deleted",
        );
      },
    );

    await t.step(
      "refunded during the create: recorded and suspended, the subscription cancelled",
      async () => {
        const bought = await paidWithSlowCreate(stack);
        await subscriptionControl(stack, bought.subscriptionId, "refund");
        const row = await order(stack, bought.orderId);
        const [server] = serversFor(stack, bought.orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.pterodactyl_server_id, server.id);
        assert.equal(server.status, "suspended");
        assert.equal(
          (await stripe.subscriptions.retrieve(bought.subscriptionId)).status,
          "canceled",
        );
        await assertInvariants(stack);
      },
    );

    await t.step(
      "disputed during the create: recorded and suspended in the same pass",
      async () => {
        const bought = await paidWithSlowCreate(stack);
        await subscriptionControl(stack, bought.subscriptionId, "dispute");
        const row = await order(stack, bought.orderId);
        const [server] = serversFor(stack, bought.orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.suspend_reason, "dispute");
        assert.equal(row.pterodactyl_server_id, server.id);
        assert.equal(server.status, "suspended");
        await assertInvariants(stack);
      },
    );

    await t.step(
      "a server left on the panel with an order's id is attached by the sweep and follows the order",
      async () => {
        const bought = await paidWithSlowCreate(stack);
        await stripe.subscriptions.cancel(bought.subscriptionId);
        await stack.idle();
        // As if the create's answer had been lost and nothing recorded it.
        await stack.sql`update public.orders set pterodactyl_server_id = null,
            pterodactyl_server_identifier = null, panel_state = null
          where id = ${bought.orderId}`;
        const [server] = serversFor(stack, bought.orderId);
        await callPanel(
          stack.panel,
          "POST",
          `${SERVERS}/${server.id}/unsuspend`,
          {
            key: stack.keys.panelApiKey,
          },
        );
        assert.equal(serversFor(stack, bought.orderId)[0].status, null);

        const s = sweeper(stack);
        try {
          const swept = await s.sweep();
          assert.equal(swept.outcomes["server.attached"], 1);
        } finally {
          await s.close();
        }
        const row = await order(stack, bought.orderId);
        assert.equal(row.pterodactyl_server_id, server.id);
        assert.equal(serversFor(stack, bought.orderId)[0].status, "suspended");
        await assertInvariants(stack);
      },
    );

    await t.step(
      "a server whose external id names no order is alerted once and left alone",
      async () => {
        const free = stack.panel.state().allocations.find((a) =>
          a.server_id === null
        )!;
        const stranger = crypto.randomUUID();
        const made = await callPanel(stack.panel, "POST", SERVERS, {
          key: stack.keys.panelApiKey,
          body: serverPayload({
            name: "Made by hand",
            external_id: stranger,
            allocation: { default: free.id },
          }),
        });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const receiver = startAlertReceiver();
        const s = sweeper(stack, { alertUrl: receiver.url });
        try {
          const first = await s.sweep();
          assert.equal(first.outcomes["server.unknown"], 1);
          const second = await s.sweep();
          assert.equal(second.outcomes["server.unknown"], undefined);
          const about = receiver.alerts.filter((a) =>
            a.content.includes(stranger)
          );
          assert.equal(about.length, 1);
        } finally {
          await s.close();
          await receiver.close();
        }
        const [remembered] = await stack.sql`
          select panel_server_id from public.panel_orphans
          where external_id = ${stranger}`;
        assert.ok(remembered);
        // Never deleted without a person.
        assert.equal(
          stack.panel.state().servers.filter((x) => x.external_id === stranger)
            .length,
          1,
        );
      },
    );
  } finally {
    await stack.close();
  }
});
