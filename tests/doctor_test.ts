/**
 * The order doctor through the real sandboxes: each cause reproduced and named, lookups
 * by every kind of id, the JSON shape, the function, the CLI's exit statuses, and the
 * read-only promise (only GETs on both sandboxes, order rows unchanged).
 *
 * @module
 */
import assert from "node:assert/strict";
import { runDoctor as runDoctorCli } from "./_doctor.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import {
  doctorClients,
  type DoctorResult,
  runDoctor,
} from "../supabase/functions/_shared/doctor/mod.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  purchase,
  serversFor,
  subscriptionControl,
} from "./_purchase.ts";
import { deleteByHand, finishInstalls, sweeper } from "./_sweep.ts";
import { post } from "./_fixtures.ts";

/** A small plan: the test buys many servers in one region. */
const SMALL = { plan_id: "among-us-1gb" };

async function doctor(stack: TestStack, query: string): Promise<DoctorResult> {
  const sql = connect(stack.databaseUrl, { max: 2 });
  try {
    return await runDoctor({
      sql,
      ...doctorClients(stack.env),
      supabaseUrl: stack.gateway.url,
    }, query);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The cause code of the one order a query finds. */
async function codeOf(stack: TestStack, query: string): Promise<string> {
  const result = await doctor(stack, query);
  assert.equal(result.report.orders.length, 1, JSON.stringify(result.report));
  return result.report.orders[0].cause.code;
}

function check(result: DoctorResult, id: string) {
  const found = result.report.orders[0].checks.find((c) => c.id === id);
  assert.ok(found, id);
  return found;
}

async function panelFault(stack: TestStack, fault: Record<string, unknown>) {
  const res = await fetch(`${stack.panel.url}/_sandbox/faults`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fault),
  });
  await res.body?.cancel();
  assert.ok(res.ok);
}

Deno.test("the order doctor names each cause through the real sandboxes", async (t) => {
  const stack = await startTestStack();
  const sweep = sweeper(stack);
  try {
    await t.step("an open checkout is awaiting_payment", async () => {
      const checkout = await openCheckout(stack, SMALL);
      const result = await doctor(stack, checkout.orderId);
      assert.equal(result.report.orders[0].cause.code, "awaiting_payment");
      assert.equal(check(result, "checkout_session").ok, true);
    });

    await t.step(
      "a paid order is installing, then ok once the sweep saw it installed; found by every id",
      async () => {
        const checkout = await purchase(stack, SMALL);
        assert.equal(await codeOf(stack, checkout.orderId), "installing");
        await finishInstalls(stack);
        await sweep.sweep();
        const row = await order(stack, checkout.orderId);
        assert.equal(row.status, "active");
        for (
          const query of [
            checkout.orderId,
            checkout.user.email.toUpperCase(),
            checkout.sessionId,
            row.stripe_subscription_id,
            String(row.pterodactyl_server_id),
            row.pterodactyl_server_identifier,
          ]
        ) {
          const result = await doctor(stack, query);
          assert.equal(result.report.orders.length, 1, query);
          assert.equal(result.report.orders[0].order_id, checkout.orderId);
          assert.equal(result.report.orders[0].cause.code, "ok", query);
        }
        // An identifier is 8 hex digits: one without letters is still found.
        const identifier = row.pterodactyl_server_identifier;
        await stack.sql`update public.orders
          set pterodactyl_server_identifier = '80000008' where id = ${checkout.orderId}`;
        try {
          const digits = await doctor(stack, "80000008");
          assert.deepEqual(
            digits.report.orders.map((o: { order_id: string }) => o.order_id),
            [checkout.orderId],
          );
        } finally {
          await stack.sql`update public.orders
            set pterodactyl_server_identifier = ${identifier}
            where id = ${checkout.orderId}`;
        }
        const result = await doctor(stack, checkout.orderId);
        // The JSON shape, exactly.
        const json = JSON.parse(JSON.stringify(result.report));
        assert.deepEqual(Object.keys(json), ["query", "orders"]);
        assert.deepEqual(Object.keys(json.orders[0]), [
          "order_id",
          "status",
          "cause",
          "checks",
        ]);
        assert.deepEqual(Object.keys(json.orders[0].cause), [
          "code",
          "message",
          "fix",
        ]);
        for (const c of json.orders[0].checks) {
          assert.deepEqual(Object.keys(c), ["id", "ok", "detail"]);
        }
        for (
          const id of [
            "checkout_session",
            "stripe_events",
            "subscription",
            "provisioning",
            "panel_account",
            "panel_server",
            "panel_target",
          ]
        ) assert.equal(check(result, id).ok, true, id);
        assert.equal(check(result, "shop_sweep").ok, true);
        assert.match(
          check(result, "stripe_events").detail,
          /checkout\.session\.completed evt_\w+ recorded \(processed\)/,
        );
      },
    );

    await t.step(
      "the doctor is read-only: only GETs, rows unchanged",
      async () => {
        const checkout = await purchase(stack, SMALL);
        const before = await order(stack, checkout.orderId);
        const [{ n: events }] = await stack.sql`select count(*)::int as n
        from public.order_events where order_id = ${checkout.orderId}`;
        stack.panel.resetCalls();
        const stripeBefore = stack.stripe.calls().length;
        await doctor(stack, checkout.orderId);
        const panelMethods = stack.panel.calls().map((c) => c.method);
        const stripeMethods = stack.stripe.calls().slice(stripeBefore).map((
          c,
        ) => c.method);
        assert.ok(panelMethods.length > 0 && stripeMethods.length > 0);
        assert.deepEqual(
          new Set([...panelMethods, ...stripeMethods]),
          new Set(["GET"]),
        );
        // Bounded: a handful of calls per order.
        assert.ok(panelMethods.length + stripeMethods.length <= 10);
        const after = await order(stack, checkout.orderId);
        assert.equal(after.updated_at.getTime(), before.updated_at.getTime());
        const [{ n: eventsAfter }] = await stack.sql`select count(*)::int as n
        from public.order_events where order_id = ${checkout.orderId}`;
        assert.equal(eventsAfter, events);
      },
    );

    await t.step(
      "a payment whose webhook never came is webhook_not_delivered",
      async () => {
        const checkout = await openCheckout(stack, SMALL);
        const url = `${stack.gateway.url}/functions/v1/stripe-webhook`;
        stack.stripe.setWebhookUrl(undefined);
        try {
          await completeCheckout(stack, checkout.sessionId);
        } finally {
          stack.stripe.setWebhookUrl(url);
        }
        const result = await doctor(stack, checkout.sessionId);
        const { cause } = result.report.orders[0];
        assert.equal(cause.code, "webhook_not_delivered");
        assert.match(cause.message, /checkout\.session\.completed evt_/);
        assert.match(cause.fix, /stripe-webhook/);
        assert.equal(check(result, "stripe_events").ok, false);
      },
    );

    await t.step(
      "a panel fault is provisioning_retrying with the panel's message",
      async () => {
        await panelFault(stack, {
          method: "POST",
          path: "/api/application/servers",
          status: 503,
          message: "Wings is restarting",
        });
        try {
          const checkout = await purchase(stack, SMALL);
          const result = await doctor(stack, checkout.orderId);
          const { cause } = result.report.orders[0];
          assert.equal(cause.code, "provisioning_retrying", cause.message);
          assert.match(cause.message, /panel answered 503/);
          assert.match(cause.message, /next attempt at \d{4}-/);
          assert.match(cause.fix, /servers-provision.*"order_id":"/);
        } finally {
          stack.panel.clearFaults();
        }
      },
    );

    await t.step("no node with room after payment is no_capacity", async () => {
      const checkout = await openCheckout(stack, {
        ...SMALL,
        region: "us-east",
      });
      await stack
        .sql`update public.ptero_nodes set enabled = false where region = 'us-east'`;
      try {
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
        const result = await doctor(stack, checkout.orderId);
        assert.equal(result.report.orders[0].cause.code, "no_capacity");
        assert.match(result.report.orders[0].cause.fix, /us-east/);
      } finally {
        await stack
          .sql`update public.ptero_nodes set enabled = true where region = 'us-east'`;
      }
    });

    await t.step("a failed install is install_failed", async () => {
      stack.panel.configure({ installDelayMs: 60_000 });
      try {
        const checkout = await purchase(stack, SMALL);
        const row = await order(stack, checkout.orderId);
        await finishInstalls(stack, {
          server_id: row.pterodactyl_server_id,
          outcome: "failure",
        });
        assert.equal(await codeOf(stack, checkout.orderId), "install_failed");
      } finally {
        stack.panel.configure({ installDelayMs: 100 });
      }
    });

    await t.step(
      "a server deleted on the panel by hand is server_missing",
      async () => {
        const checkout = await purchase(stack, SMALL);
        await finishInstalls(stack);
        const [server] = serversFor(stack, checkout.orderId);
        await deleteByHand(stack, server.id);
        const result = await doctor(stack, checkout.orderId);
        assert.equal(result.report.orders[0].cause.code, "server_missing");
        assert.equal(check(result, "panel_server").ok, false);
        // The sweep marks it; the doctor still names it.
        await sweep.sweep();
        assert.equal(await codeOf(stack, checkout.orderId), "server_missing");
      },
    );

    await t.step(
      "a failed renewal is payment_grace, then suspended_billing",
      async () => {
        const checkout = await purchase(stack, SMALL);
        await finishInstalls(stack);
        await sweep.sweep();
        const row = await order(stack, checkout.orderId);
        await subscriptionControl(stack, row.stripe_subscription_id, "renew", {
          outcome: "failed",
        });
        const grace = await doctor(stack, checkout.orderId);
        assert.equal(grace.report.orders[0].cause.code, "payment_grace");
        assert.match(grace.report.orders[0].cause.message, /until \d{4}-/);
        await subscriptionControl(
          stack,
          row.stripe_subscription_id,
          "dunning_exhausted",
          { result: "unpaid" },
        );
        await sweep.sweep();
        assert.equal(
          await codeOf(stack, checkout.orderId),
          "suspended_billing",
        );
      },
    );

    await t.step(
      "a canceled subscription is canceled_pending_deletion",
      async () => {
        const checkout = await purchase(stack, SMALL);
        const row = await order(stack, checkout.orderId);
        const stripe = createStripe(
          stack.keys.stripeSecretKey,
          stack.stripe.url,
        );
        await stripe.subscriptions.cancel(row.stripe_subscription_id);
        await stack.idle();
        await sweep.sweep();
        const result = await doctor(stack, checkout.orderId);
        const { cause } = result.report.orders[0];
        assert.equal(cause.code, "canceled_pending_deletion", cause.message);
        assert.match(cause.message, /deleted at \d{4}-/);
      },
    );

    await t.step(
      "a server suspended by hand on the panel is state_drift",
      async () => {
        const checkout = await purchase(stack, SMALL);
        await finishInstalls(stack);
        await sweep.sweep();
        const row = await order(stack, checkout.orderId);
        const res = await fetch(
          `${stack.panel.url}/api/application/servers/${row.pterodactyl_server_id}/suspend`,
          {
            method: "POST",
            headers: {
              Authorization: `Bearer ${stack.keys.panelApiKey}`,
              Accept: "application/json",
            },
          },
        );
        await res.body?.cancel();
        assert.equal(res.status, 204);
        const result = await doctor(stack, checkout.orderId);
        const { cause } = result.report.orders[0];
        assert.equal(cause.code, "state_drift");
        assert.match(cause.message, /panel has it suspended/);
        assert.match(cause.fix, /sync-server-status/);
      },
    );

    await t.step(
      "a lost cancellation is state_drift between Stripe and the database",
      async () => {
        const checkout = await purchase(stack, SMALL);
        const row = await order(stack, checkout.orderId);
        const url = `${stack.gateway.url}/functions/v1/stripe-webhook`;
        stack.stripe.setWebhookUrl(undefined);
        try {
          const stripe = createStripe(
            stack.keys.stripeSecretKey,
            stack.stripe.url,
          );
          await stripe.subscriptions.cancel(row.stripe_subscription_id);
        } finally {
          stack.stripe.setWebhookUrl(url);
        }
        const result = await doctor(stack, checkout.orderId);
        const { cause } = result.report.orders[0];
        assert.equal(cause.code, "state_drift");
        assert.match(cause.message, /subscription is canceled/);
        assert.match(cause.message, /customer\.subscription\.deleted evt_/);
      },
    );

    await t.step("a customer's email lists every order", async () => {
      const first = await purchase(stack, SMALL);
      await openCheckout(
        stack,
        { ...SMALL, server_name: "Second" },
        first.user,
      );
      const result = await doctor(stack, first.user.email);
      assert.equal(result.report.orders.length, 2);
    });

    await t.step(
      "shop checks: a stale sweep fails even on a healthy order",
      async () => {
        const checkout = await purchase(stack, SMALL);
        await stack
          .sql`update public.shop_state set updated_at = now() - interval '10 minutes'
        where key = 'last_sweep'`;
        const result = await doctor(stack, checkout.orderId);
        assert.equal(check(result, "shop_sweep").ok, false);
        assert.match(check(result, "shop_sweep").detail, /not running/);
        assert.equal(result.report.orders[0].cause.code, "installing");
        await stack.sql`delete from public.shop_state where key = 'last_sweep'`;
        const never = await doctor(stack, checkout.orderId);
        assert.match(check(never, "shop_sweep").detail, /never run/);
      },
    );

    await t.step(
      "the dashboard view lists orders needing attention",
      async () => {
        const rows = await stack
          .sql`select * from public.orders_needing_attention`;
        const codes = new Set(rows.map((r) => r.cause_code));
        for (
          const code of ["no_capacity", "server_missing", "suspended_billing"]
        ) {
          assert.ok(codes.has(code), `${code} in ${[...codes]}`);
        }
        for (const r of rows) {
          assert.ok(r.customer_email?.includes("@"));
          assert.ok(r.in_status_for !== null);
        }
      },
    );

    await t.step(
      "order-doctor answers the report to the service only",
      async () => {
        const checkout = await purchase(stack, SMALL);
        const asService = await post(
          stack,
          "order-doctor",
          JSON.stringify({ query: checkout.orderId }),
          { apikey: stack.keys.secretKey },
        );
        assert.equal(asService.status, 200);
        assert.equal(
          (asService.body.orders as { order_id: string }[])[0].order_id,
          checkout.orderId,
        );
        const asUser = await post(
          stack,
          "order-doctor",
          JSON.stringify({ query: checkout.orderId }),
          { Authorization: `Bearer ${checkout.user.token}` },
        );
        assert.equal(asUser.status, 403);
        const bad = await post(
          stack,
          "order-doctor",
          JSON.stringify({ query: "not an id!" }),
          { apikey: stack.keys.secretKey },
        );
        assert.equal(bad.status, 422);
      },
    );

    await t.step(
      "npm run doctor: exit statuses and plain text when piped",
      async () => {
        const healthy = await purchase(stack, SMALL);
        const ok = await runDoctorCli(stack, [healthy.orderId]);
        assert.equal(ok.code, 0, ok.stderr + ok.stdout);
        assert.match(ok.stdout, /✓ panel_server/);
        assert.ok(!ok.stdout.includes("\x1b["), "no colour when piped");
        assert.match(ok.stdout, /cause: installing/);

        const broken = await purchase(stack, SMALL);
        await finishInstalls(stack);
        await deleteByHand(stack, serversFor(stack, broken.orderId)[0].id);
        const one = await runDoctorCli(stack, [broken.orderId, "--json"]);
        assert.equal(one.code, 1, one.stderr);
        assert.equal(
          JSON.parse(one.stdout).orders[0].cause.code,
          "server_missing",
        );

        assert.equal((await runDoctorCli(stack, ["not an id!"])).code, 2);
        assert.equal(
          (await runDoctorCli(stack, [crypto.randomUUID()])).code,
          2,
        );
        assert.equal((await runDoctorCli(stack, [])).code, 2);
      },
    );
  } finally {
    await sweep.close();
    await stack.close();
  }
});
