import assert from "node:assert/strict";
import type Stripe from "stripe";
import { sandboxClient } from "../local/stripe-sandbox/testing.ts";
import {
  order,
  postEvent,
  purchase,
  startAlertReceiver,
  subscriptionControl,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

const GRACE_SECONDS = 3 * 86400;
const RETENTION_SECONDS = 14 * 86400;

/** A purchase that reached installing; answers the order id and its subscription. */
async function subscribed(
  stack: TestStack,
  serverName: string,
  region?: string,
): Promise<{ orderId: string; subscriptionId: string }> {
  const checkout = await purchase(stack, {
    server_name: serverName,
    ...(region ? { region } : {}),
  });
  const row = await order(stack, checkout.orderId);
  assert.equal(row.status, "installing");
  return {
    orderId: checkout.orderId,
    subscriptionId: row.stripe_subscription_id,
  };
}

/** A renewal fails and Stripe's retries end with the subscription unpaid. */
async function dunningEndsUnpaid(
  stack: TestStack,
  subscriptionId: string,
): Promise<void> {
  await subscriptionControl(stack, subscriptionId, "renew", {
    outcome: "failed",
  });
  await subscriptionControl(stack, subscriptionId, "dunning_exhausted", {
    result: "unpaid",
  });
}

/** The customer's bank disputes the payment; the webhook applies the dispute. */
async function disputeProcessed(
  stack: TestStack,
  subscriptionId: string,
): Promise<void> {
  const disputed = await subscriptionControl(stack, subscriptionId, "dispute");
  assert.deepEqual(await outcomes(stack, disputed.event_ids), [
    "charge.dispute.created:processed",
  ]);
}

/** Posts a signed event as Stripe would deliver it; answers the 200 body. */
async function deliver(
  stack: TestStack,
  event: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const { status, body } = await postEvent(stack, event);
  assert.equal(status, 200, JSON.stringify(body));
  await stack.idle();
  return body;
}

/**
 * An event delivered before, sent again under a new id: to the handler the same as a
 * first delivery that arrives late (Stripe does not keep order), or as a second event
 * about the same object (`invoice.paid` and its siblings).
 */
async function resend(
  stack: TestStack,
  eventId: string,
): Promise<Record<string, unknown>> {
  const [row] = await stack.sql`select payload from public.stripe_events_log
    where event_id = ${eventId}`;
  assert.ok(row, `event ${eventId} was delivered`);
  return await deliver(stack, {
    ...row.payload,
    id: `evt_late_${crypto.randomUUID().replaceAll("-", "")}`,
  });
}

/** The id of the first event of `type` among a control call's events. */
async function eventOf(
  stack: TestStack,
  ids: string[],
  type: string,
): Promise<string> {
  const rows = await stack.sql`select event_id from public.stripe_events_log
    where event_id in ${stack.sql(ids)} and type = ${type}`;
  assert.equal(rows.length, 1, `one ${type} among ${ids.join(", ")}`);
  return rows[0].event_id;
}

async function outcomes(stack: TestStack, ids: string[]): Promise<string[]> {
  const rows = await stack
    .sql`select type, outcome from public.stripe_events_log
    where event_id in ${stack.sql(ids)} order by type`;
  return rows.map((r) => `${r.type}:${r.outcome}`);
}

async function timeline(stack: TestStack, orderId: string, kind: string) {
  return await stack
    .sql`select message, detail, to_status from public.order_events
    where order_id = ${orderId} and kind = ${kind} order by id`;
}

function periodEnd(subscription: Stripe.Subscription): Date {
  return new Date(
    Math.max(...subscription.items.data.map((i) => i.current_period_end)) *
      1000,
  );
}

/** Asserts `date` is `seconds` after a moment between `before` and `after`. */
function assertDeadline(
  date: Date,
  seconds: number,
  before: number,
  after: number,
): void {
  assert.ok(date instanceof Date, "deadline is set");
  const start = date.getTime() - seconds * 1000;
  assert.ok(
    start >= before - 1000 && start <= after + 1000,
    `${date.toISOString()} is ${seconds}s after the event`,
  );
}

Deno.test("stripe-webhook follows a subscription's life", async (t) => {
  const receiver = startAlertReceiver();
  const stack = await startTestStack({
    env: {
      ALERT_WEBHOOK_URL: receiver.url,
      PAYMENT_GRACE_SECONDS: String(GRACE_SECONDS),
      RETENTION_SECONDS: String(RETENTION_SECONDS),
    },
  });
  const stripe = sandboxClient(stack.stripe, stack.keys.stripeSecretKey);
  try {
    await t.step("the first invoice sets paid-until", async () => {
      const { orderId, subscriptionId } = await subscribed(stack, "First");
      const row = await order(stack, orderId);
      const sub = await stripe.subscriptions.retrieve(subscriptionId);
      assert.deepEqual(row.paid_until, periodEnd(sub));
      assert.equal(row.subscription_status, "active");
      const invoices = await stack.sql`select billing_reason
        from public.order_invoices where order_id = ${orderId}`;
      assert.deepEqual(invoices.map((i) => i.billing_reason), [
        "subscription_create",
      ]);
    });

    await t.step(
      "renewal paid: paid-until moves once, even when the event comes twice",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Renew");
        const renewal = await subscriptionControl(
          stack,
          subscriptionId,
          "renew",
          {
            outcome: "paid",
            delivery: "duplicate",
          },
        );
        const row = await order(stack, orderId);
        assert.deepEqual(row.paid_until, periodEnd(renewal.subscription));
        assert.equal(row.status, "installing");
        const paid = await eventOf(stack, renewal.event_ids, "invoice.paid");
        assert.equal(
          (await resend(stack, paid)).outcome,
          "processed",
        );
        assert.deepEqual(
          (await order(stack, orderId)).paid_until,
          row.paid_until,
        );
        const receipts = (await timeline(stack, orderId, "payment")).filter(
          (e) => e.detail.invoice_id === renewal.invoice?.id,
        );
        assert.equal(receipts.length, 1);
        assert.match(receipts[0].message, /^Payment received: paid until /);
        const [{ n }] = await stack.sql`select count(*)::int as n
          from public.order_invoices where order_id = ${orderId}`;
        assert.equal(n, 2);
      },
    );

    await t.step(
      "payment failed: grace deadline and a customer message, no alert; a late failure after recovery changes nothing",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Grace");
        const alertsBefore = receiver.alerts.length;
        const before = Date.now();
        const failed = await subscriptionControl(
          stack,
          subscriptionId,
          "renew",
          {
            outcome: "failed",
          },
        );
        const after = Date.now();
        let row = await order(stack, orderId);
        assert.equal(row.status, "installing");
        assert.equal(row.panel_target, "running");
        assert.equal(row.subscription_status, "past_due");
        assertDeadline(row.suspend_at, GRACE_SECONDS, before, after);
        const messages = await timeline(stack, orderId, "payment");
        assert.match(messages.at(-1)?.message, /^Your payment failed/);
        assert.equal(receiver.alerts.length, alertsBefore);

        // A second failure keeps the first deadline.
        const failure = await eventOf(
          stack,
          failed.event_ids,
          "invoice.payment_failed",
        );
        await resend(stack, failure);
        assert.deepEqual(
          (await order(stack, orderId)).suspend_at,
          row.suspend_at,
        );

        const recovered = await subscriptionControl(
          stack,
          subscriptionId,
          "recover",
        );
        row = await order(stack, orderId);
        assert.equal(row.suspend_at, null);
        assert.equal(row.subscription_status, "active");
        assert.deepEqual(row.paid_until, periodEnd(recovered.subscription));

        // The failure and the past_due update, arriving late, are stale now.
        await resend(stack, failure);
        row = await order(stack, orderId);
        assert.equal(row.suspend_at, null);
        const pastDue = await stack
          .sql`select event_id from public.stripe_events_log
          where event_id in ${stack.sql(failed.event_ids)}
            and type = 'customer.subscription.updated'
            and payload #>> '{data,object,status}' = 'past_due'`;
        assert.equal(pastDue.length, 1);
        await resend(stack, pastDue[0].event_id);
        row = await order(stack, orderId);
        assert.equal(row.suspend_at, null);
        assert.equal(row.subscription_status, "active");
        assert.equal(row.panel_target, "running");
      },
    );

    await t.step(
      "dunning ends unpaid: suspended at once; paying lifts it and restores the status",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Dunning");
        await stack.sql`update public.orders set status = 'active'
          where id = ${orderId}`;
        await dunningEndsUnpaid(stack, subscriptionId);
        let row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "billing");
        assert.equal(row.suspend_at, null);
        // The hand-off to sync-server-status suspended it on the panel at once.
        const server = () =>
          stack.panel.state().servers.find((s) =>
            s.id === row.pterodactyl_server_id
          );
        assert.equal(server()?.status, "suspended");
        assert.deepEqual([row.panel_state, row.panel_action_due_at], [
          "suspended",
          null,
        ]);

        await subscriptionControl(stack, subscriptionId, "recover");
        row = await order(stack, orderId);
        assert.equal(row.status, "active");
        assert.equal(row.panel_target, "running");
        assert.equal(row.suspend_reason, null);
        assert.equal(row.subscription_status, "active");
        assert.equal(server()?.status, null);
        const trail = await timeline(stack, orderId, "status");
        assert.deepEqual(trail.slice(-2).map((e) => e.to_status), [
          "suspended",
          "active",
        ]);
      },
    );

    await t.step(
      "dispute: suspended, not lifted by a later payment",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Dispute");
        await disputeProcessed(stack, subscriptionId);
        let row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "dispute");

        const renewal = await subscriptionControl(
          stack,
          subscriptionId,
          "renew",
          {
            outcome: "paid",
          },
        );
        row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "dispute");
        assert.deepEqual(row.paid_until, periodEnd(renewal.subscription));
      },
    );

    await t.step(
      "a dispute on an order suspended for non-payment makes it a dispute suspension: paying the overdue invoice does not lift it",
      async () => {
        // Another region: eu-west's room is for the steps below.
        const { orderId, subscriptionId } = await subscribed(
          stack,
          "Both",
          "us-east",
        );
        await dunningEndsUnpaid(stack, subscriptionId);
        let row = await order(stack, orderId);
        assert.equal(row.suspend_reason, "billing");
        await disputeProcessed(stack, subscriptionId);
        row = await order(stack, orderId);
        assert.equal(row.status, "suspended");
        assert.equal(row.suspend_reason, "dispute");

        await subscriptionControl(stack, subscriptionId, "recover");
        row = await order(stack, orderId);
        assert.equal(row.subscription_status, "active");
        assert.equal(row.status, "suspended");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "dispute");
        const server = stack.panel.state().servers.find((s) =>
          s.id === row.pterodactyl_server_id
        );
        assert.equal(server?.status, "suspended");
      },
    );

    await t.step(
      "cancelled at period end: runs until then, then suspended and scheduled for deletion",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Later");
        await stripe.subscriptions.update(subscriptionId, {
          cancel_at_period_end: true,
        });
        await stack.idle();
        let row = await order(stack, orderId);
        assert.equal(row.cancel_at_period_end, true);
        assert.equal(row.status, "installing");
        assert.equal(row.panel_target, "running");
        assert.equal(row.delete_at, null);
        const messages = await timeline(stack, orderId, "payment");
        assert.match(
          messages.at(-1)?.message,
          /^Your subscription ends on \d{4}-\d\d-\d\d; the server keeps running until then$/,
        );

        const before = Date.now();
        await subscriptionControl(stack, subscriptionId, "advance");
        const after = Date.now();
        row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "canceled");
        assertDeadline(row.delete_at, RETENTION_SECONDS, before, after);
      },
    );

    await t.step(
      "cancelled now: suspended now, deleted after retention; the end arriving again keeps the date",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Now");
        const before = Date.now();
        await stripe.subscriptions.cancel(subscriptionId);
        await stack.idle();
        const after = Date.now();
        const row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.subscription_status, "canceled");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "canceled");
        assertDeadline(row.delete_at, RETENTION_SECONDS, before, after);

        const [deleted] = await stack
          .sql`select event_id from public.stripe_events_log
          where order_id = ${orderId} and type = 'customer.subscription.deleted'`;
        await resend(stack, deleted.event_id);
        assert.deepEqual(
          (await order(stack, orderId)).delete_at,
          row.delete_at,
        );
      },
    );

    await t.step(
      "full refund of the only payment: canceled, and billing stops in Stripe",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Refund");
        await subscriptionControl(stack, subscriptionId, "refund");
        const row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.suspend_reason, "canceled");
        assert.ok(row.delete_at instanceof Date);
        const sub = await stripe.subscriptions.retrieve(subscriptionId);
        assert.equal(sub.status, "canceled");
      },
    );

    await t.step(
      "a refund after a renewal leaves the order running",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Partial");
        await subscriptionControl(stack, subscriptionId, "renew", {
          outcome: "paid",
        });
        await subscriptionControl(stack, subscriptionId, "refund");
        const row = await order(stack, orderId);
        assert.equal(row.status, "installing");
        assert.equal(row.panel_target, "running");
        const sub = await stripe.subscriptions.retrieve(subscriptionId);
        assert.equal(sub.status, "active");
      },
    );

    await t.step(
      "events of unknown subscriptions are ignored; metadata naming another order's subscription is a mismatch",
      async () => {
        const unknown = await deliver(stack, {
          id: "evt_unknown_sub",
          object: "event",
          type: "customer.subscription.updated",
          api_version: "2026-10-28.endive",
          created: Math.floor(Date.now() / 1000),
          data: {
            object: {
              id: "sub_elsewhere",
              object: "subscription",
              metadata: {},
            },
          },
        });
        assert.equal(unknown.outcome, "ignored");

        const { orderId } = await subscribed(stack, "Other");
        const alertsBefore = receiver.alerts.length;
        const foreign = await deliver(stack, {
          id: "evt_foreign_sub",
          object: "event",
          type: "customer.subscription.deleted",
          api_version: "2026-10-28.endive",
          created: Math.floor(Date.now() / 1000),
          data: {
            object: {
              id: "sub_foreign",
              object: "subscription",
              metadata: { order_id: orderId },
            },
          },
        });
        assert.equal(foreign.outcome, "mismatch");
        assert.equal((await order(stack, orderId)).status, "installing");
        assert.equal(receiver.alerts.length, alertsBefore + 1);
      },
    );
  } finally {
    await stack.close();
    await receiver.close();
  }
});
