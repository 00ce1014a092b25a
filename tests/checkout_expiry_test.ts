import assert from "node:assert/strict";
import { CHECKOUT_SETTLE_MS } from "../supabase/functions/_shared/sweep/mod.ts";
import { errorCode, insertOrder, invoke } from "./_fixtures.ts";
import {
  alertsOn,
  clearStripeFaults,
  completeCheckout,
  openCheckout,
  order,
  serversFor,
  statusTrail,
  withoutWebhooks,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { finishInstalls, type Sweeper, sweeper } from "./_sweep.ts";

/** Moves the sweep's clock past the checkout's end. */
async function pastCheckoutEnd(stack: TestStack, s: Sweeper, orderId: string) {
  s.clock.passTo((await order(stack, orderId)).checkout_expires_at);
}

/** The sweep's timeline rows about checkouts on an order. */
async function checkoutNotes(stack: TestStack, orderId: string) {
  return await stack.sql<
    { message: string; detail: Record<string, unknown> }[]
  >`
    select message, detail from public.order_events
    where order_id = ${orderId} and kind = 'checkout' and actor = 'sweep'
    order by id`;
}

/** Checkout session calls the Stripe sandbox received since `since`. */
function sessionCalls(stack: TestStack, since: number): string[] {
  return stack.stripe.calls().slice(since)
    .filter((call) => call.path.startsWith("/v1/checkout/sessions/"))
    .map((call) => `${call.method} ${call.path}`);
}

/** Holds an order's row lock, as a webhook or a checkout in progress does, until released. */
async function holdOrder(
  stack: TestStack,
  orderId: string,
): Promise<{ release(): Promise<void> }> {
  const locked = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  const holding = stack.sql.begin(async (tx) => {
    await tx`select id from public.orders where id = ${orderId} for update`;
    locked.resolve();
    await done.promise;
  });
  holding.catch(locked.reject);
  await locked.promise;
  return {
    async release() {
      done.resolve();
      await holding;
    },
  };
}

const FULL_REGION = {
  plan_id: "mc-java-8gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Abandoned",
};
const ROOMY = { plan_id: "mc-java-2gb", region: "us-east" };

Deno.test("the sweep settles abandoned checkouts with Stripe", async (t) => {
  const stack = await startTestStack();
  // eu-west keeps only its 8 GB node: one 8 GB checkout fills the region.
  await stack
    .sql`update public.ptero_nodes set enabled = false where name = 'eu-west-1'`;
  // Installs end when a step says so.
  stack.panel.configure({ installDelayMs: 3_600_000 });
  try {
    let installingId = "";

    await t.step(
      "a checkout Stripe expired whose webhook was lost is expired and gives its room back",
      async () => {
        const s = sweeper(stack);
        const other = sweeper(stack, { clock: s.clock });
        try {
          const abandoned = await openCheckout(stack, FULL_REGION);
          const next = await stack.user();
          const refused = await invoke(
            next.client,
            "create-checkout-session",
            FULL_REGION,
          );
          assert.equal(refused.status, 409);
          assert.equal(errorCode(refused.body), "region_sold_out");
          await withoutWebhooks(
            stack,
            () => completeCheckout(stack, abandoned.sessionId, "expired"),
            { pastEventList: true },
          );

          // Before its end the order is left alone; at its end the hold ends.
          const early = await s.sweep();
          assert.equal(early.outcomes["checkout.expired"], undefined);
          assert.equal(
            (await order(stack, abandoned.orderId)).status,
            "pending",
          );
          s.clock.passTo(
            (await order(stack, abandoned.orderId)).checkout_expires_at,
          );
          // An order another worker holds (a webhook, a checkout writing its session)
          // is skipped, not waited for.
          const held = await holdOrder(stack, abandoned.orderId);
          let timer: ReturnType<typeof setTimeout> | undefined;
          const skipped = await Promise.race([
            s.sweep(),
            // Generous: only a sweep waiting for the lock takes this long.
            new Promise<"waited">((resolve) => {
              timer = setTimeout(() => resolve("waited"), 30_000);
            }),
          ]).finally(async () => {
            clearTimeout(timer);
            await held.release();
          });
          assert.notEqual(skipped, "waited");
          assert.equal(
            skipped !== "waited" && skipped.outcomes["checkout.expired"],
            undefined,
          );
          assert.equal(
            (await order(stack, abandoned.orderId)).status,
            "pending",
          );

          // Two sweeps at once: one of them settles it.
          const [a, b] = await Promise.all([s.sweep(), other.sweep()]);
          assert.equal(
            (a.outcomes["checkout.expired"] ?? 0) +
              (b.outcomes["checkout.expired"] ?? 0),
            1,
            JSON.stringify([a.outcomes, b.outcomes]),
          );
          const row = await order(stack, abandoned.orderId);
          assert.equal(row.status, "expired");
          assert.match(row.error_message, /Checkout expired without payment/);
          assert.deepEqual(await statusTrail(stack, abandoned.orderId), [
            "pending",
            "expired",
          ]);
          const [status] = await stack.sql`
            select actor, message from public.order_events
            where order_id = ${abandoned.orderId} and to_status = 'expired'`;
          assert.equal(status.actor, "sweep");
          const notes = await checkoutNotes(stack, abandoned.orderId);
          assert.equal(notes.length, 1);
          assert.equal(notes[0].detail.session_status, "expired");

          // The room is free again: the next buyer gets a checkout.
          const reopened = await invoke(
            next.client,
            "create-checkout-session",
            FULL_REGION,
          );
          assert.equal(reopened.status, 200, JSON.stringify(reopened.body));
          // Tidy: that checkout ends the ordinary way, through its webhook.
          await completeCheckout(
            stack,
            String(reopened.body.session_id),
            "expired",
          );
          await stack.idle();
          assert.equal(
            (await order(stack, String(reopened.body.order_id))).status,
            "expired",
          );
        } finally {
          await s.close();
          await other.close();
        }
      },
    );

    await t.step(
      "a pending order whose session was never created is expired without asking Stripe",
      async () => {
        const s = sweeper(stack);
        try {
          const user = await stack.user();
          const [node] = await stack.sql<{ id: number }[]>`
            select id::int from public.ptero_nodes where name = 'us-east-1'`;
          // What a checkout leaves when it dies between its two transactions.
          const orderId = await insertOrder(stack.sql, user.id, {
            region: "us-east",
            nodeId: node.id,
            serverName: "Never opened",
          });
          await s.sweep();
          assert.equal((await order(stack, orderId)).status, "pending");

          s.clock.advance(CHECKOUT_SETTLE_MS + 1000);
          const since = stack.stripe.calls().length;
          const summary = await s.sweep();
          assert.equal(summary.outcomes["checkout.unopened"], 1);
          assert.deepEqual(sessionCalls(stack, since), []);
          const row = await order(stack, orderId);
          assert.equal(row.status, "expired");
          assert.match(row.error_message, /Checkout never opened/);
          const [room] = await stack.sql`
            select count(*)::int as n from public.orders
            where id = ${orderId} and node_id is not null and status <> 'expired'`;
          assert.equal(room.n, 0);
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a paid checkout whose webhooks were all lost is applied, provisioned and alerted",
      async () => {
        const s = sweeper(stack);
        try {
          const paid = await openCheckout(stack, {
            ...ROOMY,
            server_name: "Paid unseen",
          });
          const eventIds = await withoutWebhooks(
            stack,
            () => completeCheckout(stack, paid.sessionId, "paid"),
            { pastEventList: true },
          );
          assert.equal((await order(stack, paid.orderId)).status, "pending");

          await pastCheckoutEnd(stack, s, paid.orderId);
          const summary = await s.sweep();
          assert.equal(summary.outcomes["checkout.paid"], 1);
          assert.equal(summary.outcomes["provision.installing"], 1);
          const row = await order(stack, paid.orderId);
          assert.equal(row.status, "installing", row.error_message);
          assert.ok(row.stripe_subscription_id);
          assert.equal(serversFor(stack, paid.orderId).length, 1);
          assert.deepEqual(await statusTrail(stack, paid.orderId), [
            "pending",
            "paid",
            "provisioning",
            "installing",
          ]);
          assert.deepEqual(await alertsOn(stack, paid.orderId), [
            "Paid checkout whose webhook never arrived",
          ]);

          // The lost events arrive after all: nothing happens twice, nothing disagrees.
          for (const id of eventIds) {
            const res = await fetch(
              `${stack.stripe.url}/_sandbox/events/${id}/deliver`,
              { method: "POST", body: "{}" },
            );
            await res.body?.cancel();
            assert.equal(res.status, 200);
          }
          await stack.idle();
          const outcomes = await stack.sql`
            select outcome from public.stripe_events_log
            where event_id in ${stack.sql(eventIds)}`;
          assert.ok(
            outcomes.every((r) =>
              r.outcome === "processed" || r.outcome === "ignored"
            ),
            JSON.stringify(outcomes),
          );
          assert.equal((await order(stack, paid.orderId)).status, "installing");
          assert.equal(serversFor(stack, paid.orderId).length, 1);
          installingId = paid.orderId;
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a completed checkout whose payment is processing stays pending and is asked about hourly",
      async () => {
        const s = sweeper(stack);
        try {
          const slow = await openCheckout(stack, {
            ...ROOMY,
            server_name: "Bank transfer",
          });
          await withoutWebhooks(
            stack,
            () => completeCheckout(stack, slow.sessionId, "async_pending"),
            { pastEventList: true },
          );
          await pastCheckoutEnd(stack, s, slow.orderId);
          const first = await s.sweep();
          assert.equal(first.outcomes["checkout.processing"], 1);
          assert.equal((await order(stack, slow.orderId)).status, "pending");
          const since = stack.stripe.calls().length;
          const again = await s.sweep();
          assert.equal(again.outcomes["checkout.processing"], undefined);
          assert.deepEqual(sessionCalls(stack, since), []);
          s.clock.advance(3_600_000);
          const later = await s.sweep();
          assert.equal(later.outcomes["checkout.processing"], 1);
          assert.equal((await checkoutNotes(stack, slow.orderId)).length, 2);
          // The payment fails in the end; its webhook arrives and closes the order.
          await completeCheckout(stack, slow.sessionId, "async_failed");
          await stack.idle();
          assert.equal((await order(stack, slow.orderId)).status, "expired");
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a checkout session Stripe does not know keeps its order pending with its room, alerted; the sweep never expires it",
      async () => {
        const s = sweeper(stack);
        try {
          const lost = await openCheckout(stack, {
            ...ROOMY,
            server_name: "Unknown to Stripe",
          });
          const room = async () => {
            const [row] = await stack.sql`select n.free_memory_mb
              from public.node_capacity n join public.orders o on o.node_id = n.node_id
              where o.id = ${lost.orderId}`;
            return row.free_memory_mb;
          };
          const held = await room();
          // Made with other keys, or its account deleted: Stripe answers 404.
          stack.stripe.addFault({
            method: "GET",
            path: `/v1/checkout/sessions/${lost.sessionId}`,
            status: 404,
            type: "invalid_request_error",
            code: "resource_missing",
            message: `No such checkout.session: '${lost.sessionId}'`,
          });
          try {
            await pastCheckoutEnd(stack, s, lost.orderId);
            const summary = await s.sweep();
            assert.equal(summary.outcomes["checkout.unknown"], 1);
            assert.deepEqual(await alertsOn(stack, lost.orderId), [
              "Checkout session unknown to Stripe",
            ]);
            // Days later, sweep after sweep: still pending, still holding its room.
            for (let day = 0; day < 3; day++) {
              s.clock.advance(25 * 3600_000);
              await s.sweep();
            }
          } finally {
            await clearStripeFaults(stack);
          }
          const row = await order(stack, lost.orderId);
          assert.equal(row.status, "pending");
          assert.notEqual(row.node_id, null);
          assert.equal(await room(), held);
          assert.deepEqual(await statusTrail(stack, lost.orderId), ["pending"]);
          assert.ok(
            (await checkoutNotes(stack, lost.orderId)).every((note) =>
              note.message.includes("keeps its room")
            ),
          );
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a Stripe outage leaves the order untouched, is counted, and the rest of the sweep runs",
      async () => {
        const s = sweeper(stack);
        try {
          const open = await openCheckout(stack, {
            ...ROOMY,
            server_name: "Still open",
          });
          const before = await order(stack, open.orderId);
          const installing = await order(stack, installingId);
          await finishInstalls(stack, {
            server_id: installing.pterodactyl_server_id,
          });
          stack.stripe.addFault({
            method: "GET",
            path: "^/v1/checkout/sessions/",
            status: 500,
          });
          await pastCheckoutEnd(stack, s, open.orderId);
          let summary;
          try {
            summary = await s.sweep();
          } finally {
            await clearStripeFaults(stack);
          }
          assert.equal(summary.outcomes["checkout.failed"], 1);
          // The step after it ran: the finished install was noticed.
          assert.equal(summary.outcomes["install.active"], 1);
          assert.equal((await order(stack, installingId)).status, "active");
          const after = await order(stack, open.orderId);
          assert.equal(after.status, "pending");
          assert.equal(after.updated_at.getTime(), before.updated_at.getTime());
          assert.equal((await checkoutNotes(stack, open.orderId)).length, 0);
          assert.ok(
            stack.logs.some((line) =>
              line.includes("Asking Stripe about an abandoned checkout failed")
            ),
          );

          // Stripe is back: the session, still open past its end, is expired there first.
          const since = stack.stripe.calls().length;
          const retried = await s.sweep();
          assert.equal(retried.outcomes["checkout.closed"], 1);
          assert.deepEqual(sessionCalls(stack, since), [
            `GET /v1/checkout/sessions/${open.sessionId}`,
            `POST /v1/checkout/sessions/${open.sessionId}/expire`,
          ]);
          assert.equal((await order(stack, open.orderId)).status, "expired");
          // Stripe's expiry event follows and changes nothing.
          await stack.idle();
          assert.deepEqual(await statusTrail(stack, open.orderId), [
            "pending",
            "expired",
          ]);
        } finally {
          await s.close();
        }
      },
    );
  } finally {
    await stack.close();
  }
});
