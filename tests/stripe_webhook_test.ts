import assert from "node:assert/strict";
import { injectDbError } from "./_fixtures.ts";
import {
  alertsOn,
  completeCheckout,
  openCheckout,
  order,
  postEvent,
  provisionAsService,
  sandboxEvents,
  serversFor,
  statusTrail,
  unhandledEvent,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

const INTERNAL_ERROR = {
  error: { code: "internal_error", message: "Internal server error" },
};

/** The outcome and error stripe_events_log recorded for each event of the order. */
async function eventLog(stack: TestStack, orderId: string) {
  const rows = await stack
    .sql`select type, outcome, error from public.stripe_events_log
    where order_id = ${orderId} order by type`;
  return rows.map((r) => ({
    type: r.type,
    outcome: r.outcome,
    error: r.error,
  }));
}

/** Asserts a paid checkout was refused as a mismatch: recorded, alerted, not provisioned. */
async function assertRefused(
  stack: TestStack,
  orderId: string,
  status: string,
  problem: RegExp,
): Promise<void> {
  const row = await order(stack, orderId);
  assert.equal(row.status, status);
  assert.equal(row.paid_at, null);
  assert.equal(serversFor(stack, orderId).length, 0);
  const events = await eventLog(stack, orderId);
  assert.deepEqual(events.map((e) => `${e.type}:${e.outcome}`), [
    "checkout.session.completed:mismatch",
    "invoice.paid:mismatch",
  ]);
  for (const event of events) assert.match(event.error, problem);
  const alerts = await alertsOn(stack, orderId);
  assert.equal(alerts.length, 2);
  assert.ok(
    alerts.every((title) => title === "Payment event does not match its order"),
  );
}

Deno.test("stripe-webhook checks, records and answers", async (t) => {
  const stack = await startTestStack();
  try {
    await t.step(
      "a payment from another Stripe customer than the order's is a mismatch",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Customer" });
        await stack
          .sql`update public.orders set stripe_customer_id = 'cus_someone_else'
          where id = ${checkout.orderId}`;
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
        await assertRefused(
          stack,
          checkout.orderId,
          "pending",
          /customer is "cus_\w+", the order has "cus_someone_else"/,
        );
      },
    );

    await t.step(
      "a payment of another amount than the order's is a mismatch",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Amount" });
        await stack.sql`update public.orders set amount_cents = 1999
          where id = ${checkout.orderId}`;
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
        await assertRefused(
          stack,
          checkout.orderId,
          "pending",
          /amount( paid)? is 999, the order has 1999/,
        );
      },
    );

    for (const status of ["expired", "canceled"]) {
      await t.step(
        `a payment for an order that is ${status}: mismatch, nothing provisioned`,
        async () => {
          const checkout = await openCheckout(stack, {
            server_name: `Paid ${status}`,
          });
          await stack
            .sql`update public.orders set status = ${status}::public.order_status
            where id = ${checkout.orderId}`;
          await completeCheckout(stack, checkout.sessionId);
          await stack.idle();
          await assertRefused(
            stack,
            checkout.orderId,
            status,
            new RegExp(`payment received for an order that is "${status}"`),
          );
          assert.deepEqual(await statusTrail(stack, checkout.orderId), [
            "pending",
            status,
          ]);
        },
      );
    }

    await t.step(
      "a duplicate event is acknowledged as such and applied once",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Twice" });
        // A completed checkout whose payment is still processing writes one note.
        const ids = await completeCheckout(
          stack,
          checkout.sessionId,
          "async_pending",
        );
        await stack.idle();
        const completed = (await sandboxEvents(stack)).find((e) =>
          ids.includes(e.id) && e.type === "checkout.session.completed"
        );
        assert.ok(completed);
        const [logged] = await stack
          .sql`select processed_at from public.stripe_events_log where event_id = ${completed.id}`;

        for (let copy = 0; copy < 2; copy++) {
          const again = await postEvent(stack, completed);
          assert.equal(again.status, 200);
          assert.deepEqual(again.body, { received: true, duplicate: true });
        }
        const notes = await stack.sql`select message from public.order_events
          where order_id = ${checkout.orderId} and kind = 'payment'`;
        assert.deepEqual(notes.map((n) => n.message), [
          "Checkout completed; the payment is still processing",
        ]);
        const rows = await stack
          .sql`select processed_at from public.stripe_events_log where event_id = ${completed.id}`;
        assert.equal(rows.length, 1);
        assert.deepEqual(rows[0].processed_at, logged.processed_at);
      },
    );

    await t.step(
      "a transient database error is a 503 so Stripe retries, and the retry is applied",
      async () => {
        const event = unhandledEvent(`evt_transient_${crypto.randomUUID()}`);
        const remove = await injectDbError(stack.sql, {
          table: "stripe_events_log",
          when: `new.event_id = '${event.id}'`,
          errcode: "40P01",
          message: "deadlock detected (injected by the test)",
        });
        let refused;
        try {
          refused = await postEvent(stack, event);
        } finally {
          await remove();
        }
        assert.equal(refused.status, 503);
        assert.deepEqual(refused.body, {
          error: {
            code: "temporarily_unavailable",
            message: "Try again later",
          },
        });
        const [{ n }] = await stack.sql`select count(*)::int as n
          from public.stripe_events_log where event_id = ${String(event.id)}`;
        assert.equal(n, 0);
        assert.ok(
          stack.logs.some((line) =>
            line.includes("Database unavailable; Stripe will retry") &&
            line.includes(String(event.id))
          ),
        );

        const retried = await postEvent(stack, event);
        assert.equal(retried.status, 200);
        assert.equal(retried.body.outcome, "ignored");
      },
    );

    await t.step(
      "an unexpected error is a bare 500; the detail is only in the log",
      async () => {
        const event = unhandledEvent(`evt_broken_${crypto.randomUUID()}`);
        const detail = `trigger broke on ${event.id}`;
        const remove = await injectDbError(stack.sql, {
          table: "stripe_events_log",
          when: `new.event_id = '${event.id}'`,
          errcode: "P0001",
          message: detail,
        });
        try {
          const res = await postEvent(stack, event);
          assert.equal(res.status, 500);
          assert.deepEqual(res.body, INTERNAL_ERROR);
        } finally {
          await remove();
        }
        const logged = stack.logs.find((line) => line.includes(detail));
        assert.ok(logged, "the cause is logged");
        assert.equal(JSON.parse(logged).level, "error");
      },
    );

    await t.step(
      "a failed hand-off to servers-provision stays on the order for the sweep",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Hand-off" });
        // servers-provision cannot claim this order: it answers 500.
        const remove = await injectDbError(stack.sql, {
          table: "orders",
          when:
            `new.id = '${checkout.orderId}' and new.status = 'provisioning'`,
          errcode: "P0001",
          message: "claim refused by the test",
        });
        try {
          await completeCheckout(stack, checkout.sessionId);
          await stack.idle();
        } finally {
          await remove();
        }
        const row = await order(stack, checkout.orderId);
        assert.equal(row.status, "paid");
        assert.match(
          row.error_message,
          /^Handing the order to servers-provision failed: servers-provision answered 500/,
        );
        assert.ok(row.next_attempt_at instanceof Date);
        assert.ok(row.next_attempt_at <= new Date(), "due for the sweep now");
        const notes = await stack
          .sql`select message, actor from public.order_events
          where order_id = ${checkout.orderId} and kind = 'note'`;
        assert.deepEqual(notes.map((n) => [n.message, n.actor]), [
          [row.error_message, "stripe-webhook"],
        ]);
        assert.deepEqual(await alertsOn(stack, checkout.orderId), [
          "Provisioning hand-off failed",
        ]);
        // The body servers-provision answered carried no internals.
        assert.ok(row.error_message.includes(JSON.stringify(INTERNAL_ERROR)));
        assert.ok(
          !row.error_message.includes("claim refused by the test"),
        );
        assert.ok(
          stack.logs.some((line) =>
            line.includes('"fn":"servers-provision"') &&
            line.includes("claim refused by the test")
          ),
        );
        // The sweep (or an operator) can then provision it.
        const retry = await provisionAsService(stack, checkout.orderId);
        assert.equal(retry.body.status, "installing");
      },
    );
  } finally {
    await stack.close();
  }
});
