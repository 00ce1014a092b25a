import assert from "node:assert/strict";
import { sandboxClient } from "../local/stripe-sandbox/testing.ts";
import {
  HANDLED_EVENT_TYPES,
  isHandledEventType,
} from "../supabase/functions/_shared/manifest.ts";
import {
  DELIVERY_GRACE_SECONDS,
  EVENTS_CURSOR_KEY,
  LAPSE_MS,
} from "../supabase/functions/_shared/sweep/mod.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  postEvent,
  purchase,
  sandboxEvents,
  startAlertReceiver,
  subscriptionControl,
  withoutWebhooks,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { type Sweeper, sweeper } from "./_sweep.ts";

const RECOVERED = "Stripe events recovered by the sweep";

/** A sweep once the undelivered events are past their delivery grace. */
async function sweepLater(s: Sweeper) {
  s.clock.advance((DELIVERY_GRACE_SECONDS + 1) * 1000);
  return await s.sweep();
}

/** `GET /v1/events` calls the Stripe sandbox received since `since`. */
function eventListCalls(stack: TestStack, since: number): number {
  return stack.stripe.calls().slice(since).filter((call) =>
    call.method === "GET" && call.path === "/v1/events"
  ).length;
}

/** A purchase delivered as usual; answers the order and its subscription. */
async function subscribed(stack: TestStack, name: string) {
  const checkout = await purchase(stack, { server_name: name });
  const row = await order(stack, checkout.orderId);
  assert.equal(row.status, "installing");
  return {
    orderId: checkout.orderId,
    subscriptionId: String(row.stripe_subscription_id),
  };
}

/** How each of these events was recorded (`type:outcome:via`), by type. */
async function logged(stack: TestStack, ids: string[]): Promise<string[]> {
  const rows = await stack.sql`select type, outcome, received_via
    from public.stripe_events_log where event_id in ${stack.sql(ids)}
    order by type`;
  return rows.map((r) => `${r.type}:${r.outcome}:${r.received_via}`);
}

/** Rows that must not grow when an event is applied again. */
async function footprint(stack: TestStack, orderId: string) {
  const [row] = await stack.sql<
    { events: number; invoices: number; timeline: number }[]
  >`select
    (select count(*)::int from public.stripe_events_log
      where order_id = ${orderId}) as events,
    (select count(*)::int from public.order_invoices
      where order_id = ${orderId}) as invoices,
    (select count(*)::int from public.order_events
      where order_id = ${orderId}) as timeline`;
  return { ...row };
}

/** A paid order handed to the panel (the sandbox installs in a moment). */
function provisioned(status: string): boolean {
  return status === "installing" || status === "active";
}

/** Moves the sweep's clock to an hour after the order's paid-until. */
async function pastPaidUntil(stack: TestStack, s: Sweeper, orderId: string) {
  const { paid_until } = await order(stack, orderId);
  s.clock.passTo(new Date(paid_until.getTime() + LAPSE_MS));
}

function recoveryAlerts(alerts: { content: string }[]): string[] {
  return alerts.map((a) => a.content).filter((c) => c.includes(RECOVERED));
}

Deno.test("the sweep applies the Stripe events the webhook never got", async (t) => {
  const receiver = startAlertReceiver();
  const stack = await startTestStack({
    env: { ALERT_WEBHOOK_URL: receiver.url },
  });
  const stripe = sandboxClient(stack.stripe, stack.keys.stripeSecretKey);
  const s = sweeper(stack, { alertUrl: receiver.url });
  const lost: { orderId: string; eventIds: string[] }[] = [];
  try {
    await t.step(
      "a purchase reaches installing within two sweeps of payment, with one alert",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Lost" });
        const eventIds = await withoutWebhooks(
          stack,
          () => completeCheckout(stack, checkout.sessionId),
        );
        assert.equal((await order(stack, checkout.orderId)).status, "pending");
        const alertsBefore = receiver.alerts.length;

        // Just made: left to its delivery for a minute.
        const first = await s.sweep();
        assert.equal(first.outcomes["events.recovered"], undefined);
        const second = await sweepLater(s);
        assert.ok(
          (second.outcomes["events.recovered"] ?? 0) >= 2,
          JSON.stringify(second.outcomes),
        );
        const row = await order(stack, checkout.orderId);
        assert.ok(provisioned(row.status), row.status);
        assert.ok(row.paid_until instanceof Date);
        assert.deepEqual(
          (await logged(stack, eventIds)).filter((l) =>
            l.startsWith("checkout.") || l.startsWith("invoice.paid")
          ),
          [
            "checkout.session.completed:processed:poll",
            "invoice.paid:processed:poll",
          ],
        );
        const alerts = recoveryAlerts(receiver.alerts.slice(alertsBefore));
        assert.equal(alerts.length, 1, JSON.stringify(receiver.alerts));
        assert.match(
          alerts[0],
          /Stripe is not delivering to the webhook endpoint: check it is enabled, its URL and its signing secret/,
        );
        assert.match(alerts[0], /applied \d+ Stripe event/);
        const [cursor] = await stack.sql`select value from public.shop_state
          where key = ${EVENTS_CURSOR_KEY}`;
        assert.equal(typeof cursor?.value.created, "number");
        lost.push({ orderId: checkout.orderId, eventIds });
      },
    );

    await t.step(
      "a quiet sweep makes exactly one Stripe events call",
      async () => {
        const calls = stack.stripe.calls().length;
        const alertsBefore = receiver.alerts.length;
        const quiet = await sweepLater(s);
        assert.equal(eventListCalls(stack, calls), 1);
        assert.equal(quiet.outcomes["events.recovered"], undefined);
        assert.equal(
          recoveryAlerts(receiver.alerts.slice(alertsBefore)).length,
          0,
        );
      },
    );

    await t.step("a cancellation suspends the server", async () => {
      const { orderId, subscriptionId } = await subscribed(stack, "Cancel");
      const before = stack.stripe.requests().length;
      await withoutWebhooks(
        stack,
        () => stripe.subscriptions.cancel(subscriptionId),
      );
      assert.ok(stack.stripe.requests().length > before);
      assert.equal((await order(stack, orderId)).status, "installing");
      const summary = await sweepLater(s);
      assert.equal(summary.outcomes["events.recovered"], 1);
      const row = await order(stack, orderId);
      assert.equal(row.status, "canceled");
      assert.equal(row.panel_target, "suspended");
      assert.equal(row.suspend_reason, "canceled");
      // The panel follows in the same sweep.
      assert.equal(row.panel_state, "suspended");
      const ids = (await sandboxEvents(stack)).filter((e) =>
        e.type === "customer.subscription.deleted"
      ).map((e) => e.id);
      lost.push({ orderId, eventIds: ids });
    });

    await t.step("a failed renewal starts the grace period", async () => {
      const { orderId, subscriptionId } = await subscribed(stack, "Grace");
      const control = await withoutWebhooks(
        stack,
        () =>
          subscriptionControl(stack, subscriptionId, "renew", {
            outcome: "failed",
          }),
      );
      assert.equal((await order(stack, orderId)).suspend_at, null);
      const summary = await sweepLater(s);
      assert.ok((summary.outcomes["events.recovered"] ?? 0) >= 1);
      const row = await order(stack, orderId);
      assert.equal(row.subscription_status, "past_due");
      assert.ok(row.suspend_at instanceof Date, "suspend_at is set");
      assert.equal(row.panel_target, "running");
      lost.push({ orderId, eventIds: control.event_ids });
    });

    await t.step("a renewal moves paid-until", async () => {
      const { orderId, subscriptionId } = await subscribed(stack, "Renew");
      const paidUntil = (await order(stack, orderId)).paid_until;
      const control = await withoutWebhooks(
        stack,
        () =>
          subscriptionControl(stack, subscriptionId, "renew", {
            outcome: "paid",
          }),
      );
      assert.deepEqual((await order(stack, orderId)).paid_until, paidUntil);
      await sweepLater(s);
      const row = await order(stack, orderId);
      const end = Math.max(
        ...control.subscription.items.data.map((i) => i.current_period_end),
      );
      assert.deepEqual(row.paid_until, new Date(end * 1000));
      assert.ok(row.paid_until.getTime() > paidUntil.getTime());
      lost.push({ orderId, eventIds: control.event_ids });
    });

    await t.step(
      "when delivery resumes and the same events come again, nothing is applied twice",
      async () => {
        const before = await Promise.all(
          lost.map(({ orderId }) => footprint(stack, orderId)),
        );
        const events = await sandboxEvents(stack);
        for (const { eventIds } of lost) {
          for (const id of eventIds) {
            // Stripe sends it again, signed, as a late delivery would come.
            const event = events.find((e) => e.id === id);
            assert.ok(event, id);
            // Others were never asked of the list (the webhook ignores them).
            if (!isHandledEventType(event.type)) continue;
            const { status, body } = await postEvent(stack, event);
            assert.equal(status, 200, JSON.stringify(body));
            assert.equal(body.duplicate, true, `${event.type} ${id}`);
            const res = await fetch(
              `${stack.stripe.url}/_sandbox/events/${id}/deliver`,
              { method: "POST", body: "{}" },
            );
            await res.body?.cancel();
            assert.ok(res.ok);
          }
        }
        await stack.idle();
        const after = await Promise.all(
          lost.map(({ orderId }) => footprint(stack, orderId)),
        );
        assert.deepEqual(after, before);
        // And the sweep after them finds nothing left (it may still move an install
        // on: only what events write is compared).
        const summary = await sweepLater(s);
        assert.equal(summary.outcomes["events.recovered"], undefined);
        const eventsOnly = (f: { events: number; invoices: number }) => ({
          events: f.events,
          invoices: f.invoices,
        });
        assert.deepEqual(
          (await Promise.all(
            lost.map(({ orderId }) => footprint(stack, orderId)),
          )).map(eventsOnly),
          before.map(eventsOnly),
        );
        const [{ n }] = await stack.sql<{ n: number }[]>`
          select count(*)::int as n from public.order_events
          where order_id = any(${lost.map((l) => l.orderId)}::uuid[])
            and kind = 'payment' and created_at > now() - interval '1 minute'
            and detail ? 'event_id'
          group by detail->>'event_id' order by count(*) desc limit 1`;
        assert.equal(n, 1, "no event wrote its payment row twice");
      },
    );

    await t.step(
      "two orders' lost events in one sweep make one alert naming the count",
      async () => {
        const a = await openCheckout(stack, { server_name: "PairA" });
        const b = await openCheckout(stack, { server_name: "PairB" });
        await withoutWebhooks(stack, async () => {
          await completeCheckout(stack, a.sessionId);
          await completeCheckout(stack, b.sessionId);
        });
        const alertsBefore = receiver.alerts.length;
        const summary = await sweepLater(s);
        const n = summary.outcomes["events.recovered"];
        assert.ok(n >= 4, JSON.stringify(summary.outcomes));
        assert.ok(provisioned((await order(stack, a.orderId)).status));
        assert.ok(provisioned((await order(stack, b.orderId)).status));
        const alerts = recoveryAlerts(receiver.alerts.slice(alertsBefore));
        assert.equal(alerts.length, 1);
        assert.match(alerts[0], new RegExp(`applied ${n} Stripe event`));
      },
    );

    await t.step(
      "a Stripe failure leaves the cursor, and the next sweep applies the events",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Outage" });
        await withoutWebhooks(
          stack,
          () => completeCheckout(stack, checkout.sessionId),
        );
        const [cursor] = await stack.sql`select value from public.shop_state
          where key = ${EVENTS_CURSOR_KEY}`;
        stack.stripe.addFault({
          method: "GET",
          path: "/v1/events",
          status: 500,
          times: 2,
        });
        const failed = await sweepLater(s);
        assert.equal(failed.outcomes["events.failed"], 1);
        assert.equal((await order(stack, checkout.orderId)).status, "pending");
        const [kept] = await stack.sql`select value from public.shop_state
          where key = ${EVENTS_CURSOR_KEY}`;
        assert.deepEqual(kept.value, cursor.value);
        await sweepLater(s);
        assert.ok(provisioned((await order(stack, checkout.orderId)).status));
      },
    );

    await t.step(
      "with the endpoint disabled in Stripe, a renewal is applied from the filtered list",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Off");
        const paidUntil = (await order(stack, orderId)).paid_until;
        const endpoints = await stripe.webhookEndpoints.list();
        const enabled = endpoints.data.filter((e) => e.status === "enabled");
        assert.ok(enabled.length > 0);
        for (const e of enabled) {
          await stripe.webhookEndpoints.update(e.id, { disabled: true });
        }
        let control;
        try {
          control = await subscriptionControl(stack, subscriptionId, "renew", {
            outcome: "paid",
          });
        } finally {
          for (const e of enabled) {
            await stripe.webhookEndpoints.update(e.id, { disabled: false });
          }
        }
        assert.deepEqual((await order(stack, orderId)).paid_until, paidUntil);
        const calls = stack.stripe.calls().length;
        const summary = await sweepLater(s);
        assert.ok((summary.outcomes["events.recovered"] ?? 0) >= 1);
        const end = Math.max(
          ...control.subscription.items.data.map((i) => i.current_period_end),
        );
        assert.deepEqual(
          (await order(stack, orderId)).paid_until,
          new Date(end * 1000),
        );
        // Stripe was asked for exactly the webhook's types, from the cursor on.
        const list = stack.stripe.calls().slice(calls).find((c) =>
          c.method === "GET" && c.path === "/v1/events"
        );
        const query = new URLSearchParams(list?.query ?? "");
        assert.deepEqual(
          [...query.keys()].filter((k) => k.startsWith("types[")).length,
          HANDLED_EVENT_TYPES.length,
        );
        assert.ok(query.get("created[gte]"), list?.query);
      },
    );

    await t.step(
      "a lost cancellation older than the event window is healed by the paid-until net, once",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Old");
        await withoutWebhooks(
          stack,
          () => stripe.subscriptions.cancel(subscriptionId),
        );
        // The event list's window has moved past the cancellation.
        await stack.sql`update public.shop_state
          set value = jsonb_build_object('created',
            extract(epoch from now())::bigint + 3600)
          where key = ${EVENTS_CURSOR_KEY}`;
        // An hour past its paid-until, and no renewal recorded.
        await pastPaidUntil(stack, s, orderId);
        const reads = () =>
          stack.stripe.calls().filter((c) =>
            c.method === "GET" &&
            c.path === `/v1/subscriptions/${subscriptionId}`
          ).length;
        const readsBefore = reads();
        const alertsBefore = receiver.alerts.length;
        const summary = await sweepLater(s);
        assert.equal(summary.outcomes["events.recovered"], undefined);
        assert.ok(summary.outcomes["subscription.followed"] >= 1);
        assert.equal(reads(), readsBefore + 1);
        const row = await order(stack, orderId);
        assert.equal(row.status, "canceled");
        assert.equal(row.panel_target, "suspended");
        assert.equal(row.panel_state, "suspended");
        assert.ok(row.delete_at instanceof Date);
        assert.ok(
          receiver.alerts.slice(alertsBefore).some((a) =>
            a.content.includes("Subscription change applied by the sweep")
          ),
        );
      },
    );

    await t.step(
      "an order whose paid-until lapsed is asked about once, not at every sweep",
      async () => {
        const { orderId, subscriptionId } = await subscribed(stack, "Lapsed");
        await pastPaidUntil(stack, s, orderId);
        const reads = () =>
          stack.stripe.calls().filter((c) =>
            c.method === "GET" &&
            c.path === `/v1/subscriptions/${subscriptionId}`
          ).length;
        const readsBefore = reads();
        const first = await sweepLater(s);
        assert.ok(first.outcomes["subscription.unchanged"] >= 1);
        assert.equal(reads(), readsBefore + 1);
        const row = await order(stack, orderId);
        assert.ok(provisioned(row.status), row.status);
        assert.ok(row.subscription_checked_at instanceof Date);
        await sweepLater(s);
        assert.equal(reads(), readsBefore + 1);
      },
    );
  } finally {
    await s.close();
    await stack.close();
    await receiver.close();
  }
});
