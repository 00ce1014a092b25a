import assert from "node:assert/strict";
import { signPayload } from "../local/stripe-sandbox/mod.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  postEvent,
  postWebhook,
  provisionAsService,
  purchase,
  serversFor,
  startAlertReceiver,
  statusTrail,
  unhandledEvent,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

/** The status trail of an order paid and provisioned once. */
const PROVISIONED = ["pending", "paid", "provisioning", "installing"];

async function eventCount(stack: TestStack): Promise<number> {
  const [{ n }] = await stack
    .sql`select count(*)::int as n from public.stripe_events_log`;
  return n;
}

Deno.test("a purchase becomes a server: stripe-webhook and servers-provision", async (t) => {
  const receiver = startAlertReceiver();
  const stack = await startTestStack({
    env: { ALERT_WEBHOOK_URL: receiver.url },
  });
  try {
    await t.step(
      "checkout, payment, signed webhooks, one server for the right owner",
      async () => {
        const checkout = await openCheckout(stack);
        const eventIds = await completeCheckout(stack, checkout.sessionId);
        assert.equal(eventIds.length, 3);
        await stack.idle();

        const row = await order(stack, checkout.orderId);
        assert.equal(row.status, "installing");
        assert.match(row.stripe_subscription_id, /^sub_/);
        assert.ok(row.paid_at instanceof Date);
        const [account] = await stack
          .sql`select ptero_user_id from public.external_accounts
        where user_id = ${checkout.user.id}`;
        const servers = serversFor(stack, checkout.orderId);
        assert.equal(servers.length, 1);
        const server = servers[0];
        assert.equal(row.pterodactyl_server_id, server.id);
        assert.equal(row.pterodactyl_server_identifier, server.identifier);
        assert.equal(server.owner_id, account.ptero_user_id);
        const owner = stack.panel.state().users.find((u) =>
          u.id === server.owner_id
        );
        assert.equal(owner?.external_id, checkout.user.id);
        assert.equal(owner?.email, checkout.user.email);
        assert.equal(server.name, "Survival");
        assert.equal(server.egg_id, 1);
        assert.equal(server.image, "ghcr.io/pterodactyl/yolks:java_21");
        assert.deepEqual([server.memory, server.disk, server.cpu, server.io], [
          4096,
          20480,
          200,
          500,
        ]);
        assert.deepEqual([server.database_limit, server.backup_limit], [2, 2]);
        assert.deepEqual(server.variables, {
          MINECRAFT_VERSION: "1.21.4",
          SERVER_JARFILE: "server.jar",
          BUILD_NUMBER: "latest",
        });
        const [node] = await stack
          .sql`select panel_node_id, region from public.ptero_nodes
        where id = ${row.node_id}`;
        assert.equal(node.region, "eu-west");
        assert.equal(server.node_id, node.panel_node_id);

        assert.deepEqual(
          await statusTrail(stack, checkout.orderId),
          PROVISIONED,
        );
        const attempts = await stack.sql`select message from public.order_events
        where order_id = ${checkout.orderId} and kind = 'provision_attempt' order by id`;
        assert.deepEqual(attempts.map((a) => a.message), [
          "Attempt 1 started",
          "Attempt 1 succeeded",
        ]);
        const events = await stack
          .sql`select event_id, type, outcome from public.stripe_events_log
        where event_id in ${stack.sql(eventIds)} order by type`;
        // The stack's endpoint is subscribed to the handled types only, so
        // customer.subscription.created is not sent.
        assert.deepEqual(events.map((e) => `${e.type}:${e.outcome}`), [
          "checkout.session.completed:processed",
          "invoice.paid:processed",
        ]);
        const chain = await stack
          .sql`select source, kind from public.order_chain
          where order_id = ${checkout.orderId} order by at`;
        const sources = new Set(chain.map((c) => `${c.source}:${c.kind}`));
        for (
          const expected of [
            "order:status",
            "order:checkout",
            "order:provision_attempt",
            "stripe:checkout.session.completed",
            "stripe:invoice.paid",
          ]
        ) assert.ok(sources.has(expected), expected);
      },
    );

    await t.step(
      "a bad or stale signature is 400 and writes nothing",
      async () => {
        const before = await eventCount(stack);
        const payload = JSON.stringify({
          id: "evt_forged",
          object: "event",
          type: "invoice.paid",
        });
        const missing = await postWebhook(stack, payload);
        assert.equal(missing.status, 400);
        assert.equal(errorCode(missing.body), "invalid_signature");
        const wrongKey = await postWebhook(
          stack,
          payload,
          await signPayload("whsec_wrong", payload),
        );
        assert.equal(wrongKey.status, 400);
        const stale = await postWebhook(
          stack,
          payload,
          await signPayload(
            stack.keys.stripeWebhookSecret,
            payload,
            Math.floor(Date.now() / 1000) - 600,
          ),
        );
        assert.equal(stale.status, 400);
        const good = await signPayload(stack.keys.stripeWebhookSecret, payload);
        const tampered = await postWebhook(
          stack,
          payload.replace("invoice", "charge"),
          good,
        );
        assert.equal(tampered.status, 400);
        assert.equal(await eventCount(stack), before);
      },
    );

    await t.step(
      "an event type we do not handle is acknowledged and logged",
      async () => {
        const event = unhandledEvent(`evt_unhandled_${crypto.randomUUID()}`);
        const res = await postEvent(stack, event);
        assert.equal(res.status, 200);
        assert.equal(res.body.outcome, "ignored");
        const [row] = await stack
          .sql`select outcome from public.stripe_events_log
        where event_id = ${String(event.id)}`;
        assert.equal(row.outcome, "ignored");
      },
    );

    await t.step(
      "10 concurrent copies of one event: one order change, one server",
      async () => {
        const checkout = await openCheckout(stack, {
          server_name: "Duplicates",
        });
        stack.stripe.setWebhookUrl(undefined);
        const eventIds = await completeCheckout(stack, checkout.sessionId);
        stack.stripe.setWebhookUrl(
          `${stack.gateway.url}/functions/v1/stripe-webhook`,
        );
        const events =
          await (await fetch(`${stack.stripe.url}/_sandbox/events`)).json() as {
            id: string;
            type: string;
          }[];
        const completed = events.find((e) =>
          eventIds.includes(e.id) && e.type === "checkout.session.completed"
        );
        assert.ok(completed);
        const res = await fetch(
          `${stack.stripe.url}/_sandbox/events/${completed.id}/deliver`,
          {
            method: "POST",
            body: JSON.stringify({ copies: 10, concurrent: true }),
          },
        );
        const delivered = await res.json() as { statuses: number[] };
        assert.deepEqual(delivered.statuses, Array(10).fill(200));
        await stack.idle();
        assert.deepEqual(
          await statusTrail(stack, checkout.orderId),
          PROVISIONED,
        );
        assert.equal(serversFor(stack, checkout.orderId).length, 1);
        const [{ n }] = await stack
          .sql`select count(*)::int as n from public.stripe_events_log
        where event_id = ${completed.id}`;
        assert.equal(n, 1);
      },
    );

    await t.step("out-of-order delivery changes nothing twice", async () => {
      const checkout = await openCheckout(stack, { server_name: "Reversed" });
      await completeCheckout(stack, checkout.sessionId, "paid", "reverse");
      await stack.idle();
      assert.deepEqual(await statusTrail(stack, checkout.orderId), PROVISIONED);
      assert.equal(serversFor(stack, checkout.orderId).length, 1);
    });

    await t.step(
      "metadata that disagrees with the order: recorded, alerted, not provisioned",
      async () => {
        const checkout = await openCheckout(stack, { server_name: "Tampered" });
        await stack.sql`update public.orders set server_name = 'Something else'
        where id = ${checkout.orderId}`;
        const alertsBefore = receiver.alerts.length;
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
        assert.equal((await order(stack, checkout.orderId)).status, "pending");
        assert.equal(serversFor(stack, checkout.orderId).length, 0);
        const rows = await stack
          .sql`select outcome, error from public.stripe_events_log
        where order_id = ${checkout.orderId} and outcome = 'mismatch'`;
        assert.ok(rows.length >= 1);
        assert.match(rows[0].error, /server_name/);
        const alerts = receiver.alerts.slice(alertsBefore);
        assert.ok(
          alerts.some((a) =>
            a.order_id === checkout.orderId && /match/.test(a.content)
          ),
        );
      },
    );

    await t.step(
      "async payment: pending waits, success provisions, failure expires",
      async () => {
        const ok = await openCheckout(stack, { server_name: "Async ok" });
        await completeCheckout(stack, ok.sessionId, "async_pending");
        await stack.idle();
        assert.equal((await order(stack, ok.orderId)).status, "pending");
        await completeCheckout(stack, ok.sessionId, "async_succeeded");
        await stack.idle();
        assert.equal((await order(stack, ok.orderId)).status, "installing");
        assert.equal(serversFor(stack, ok.orderId).length, 1);

        const failed = await openCheckout(stack, {
          server_name: "Async failed",
        });
        await completeCheckout(stack, failed.sessionId, "async_failed");
        await stack.idle();
        const row = await order(stack, failed.orderId);
        assert.equal(row.status, "expired");
        assert.match(row.error_message, /payment failed/i);
        assert.equal(serversFor(stack, failed.orderId).length, 0);
      },
    );

    await t.step("an expired checkout ends the order as expired", async () => {
      const checkout = await openCheckout(stack, { server_name: "Abandoned" });
      await completeCheckout(stack, checkout.sessionId, "expired");
      await stack.idle();
      assert.equal((await order(stack, checkout.orderId)).status, "expired");
    });

    await t.step(
      "panel 500: error with cause and next attempt, then an admin retry succeeds",
      async () => {
        stack.panel.addFault({
          method: "POST",
          path: "/api/application/servers",
          status: 500,
          times: 1,
        });
        const alertsBefore = receiver.alerts.length;
        const checkout = await purchase(stack, { server_name: "Flaky panel" });
        const failed = await order(stack, checkout.orderId);
        assert.equal(failed.status, "error");
        assert.match(
          failed.error_message,
          /Creating the server on the panel failed: .*500/,
        );
        assert.equal(failed.attempt_count, 1);
        assert.ok(failed.next_attempt_at > new Date());
        // The room reserved at checkout stays booked for the retry.
        assert.notEqual(failed.node_id, null);
        assert.ok(
          receiver.alerts.slice(alertsBefore).some((a) =>
            a.order_id === checkout.orderId
          ),
          "an alert was posted",
        );

        const retry = await provisionAsService(stack, checkout.orderId);
        assert.equal(retry.status, 200);
        assert.equal(retry.body.status, "installing");
        assert.equal(retry.body.attempt, 2);
        assert.equal(retry.body.error, null);
        assert.equal(serversFor(stack, checkout.orderId).length, 1);
        assert.equal(
          retry.body.server_id,
          serversFor(stack, checkout.orderId)[0].id,
        );
      },
    );

    await t.step(
      "a create whose response is lost is reconciled without a duplicate",
      async () => {
        stack.panel.addFault({
          method: "POST",
          path: "/api/application/servers",
          loseResponse: true,
          times: 1,
        });
        const checkout = await purchase(stack, {
          server_name: "Lost reply",
          region: "us-east",
        });
        const row = await order(stack, checkout.orderId);
        assert.equal(row.status, "installing");
        assert.equal(row.attempt_count, 1);
        const servers = serversFor(stack, checkout.orderId);
        assert.equal(servers.length, 1);
        assert.equal(row.pterodactyl_server_id, servers[0].id);
      },
    );

    await t.step(
      "rate limited (429) for longer than a call may wait: the next attempt is scheduled after Retry-After",
      async () => {
        // The panel asks for 60 s: the function does not wait that long in the call.
        stack.panel.addFault({
          method: "POST",
          path: "/api/application/servers",
          status: 429,
          retryAfterSeconds: 60,
          times: 1,
        });
        const throttled = await purchase(stack, {
          server_name: "Throttled long",
        });
        const row = await order(stack, throttled.orderId);
        assert.equal(row.status, "error");
        assert.match(row.error_message, /429/);
        assert.ok(row.next_attempt_at.getTime() >= Date.now() + 55_000);
        const retry = await provisionAsService(stack, throttled.orderId);
        assert.equal(retry.body.status, "installing");
        assert.equal(serversFor(stack, throttled.orderId).length, 1);
      },
    );

    await t.step(
      "re-invoking on an installing order calls the panel zero times",
      async () => {
        const checkout = await purchase(stack, {
          server_name: "Done already",
          region: "us-east",
        });
        stack.panel.resetCalls();
        const again = await provisionAsService(stack, checkout.orderId);
        assert.equal(again.status, 200);
        assert.equal(again.body.status, "installing");
        assert.equal(stack.panel.calls().length, 0);
        await stack
          .sql`update public.orders set status = 'active' where id = ${checkout.orderId}`;
        const active = await provisionAsService(stack, checkout.orderId);
        assert.equal(active.body.status, "active");
        assert.equal(stack.panel.calls().length, 0);
      },
    );

    await t.step("servers-provision is for the service only", async () => {
      const checkout = await openCheckout(stack, { server_name: "Not yours" });
      const user = await invoke(checkout.user.client, "servers-provision", {
        order_id: checkout.orderId,
      });
      assert.equal(user.status, 403);
      assert.equal(errorCode(user.body), "forbidden");
      const anon = await invoke(stack.anon, "servers-provision", {
        order_id: checkout.orderId,
      });
      assert.equal(anon.status, 403);
      const none = await fetch(
        `${stack.gateway.url}/functions/v1/servers-provision`,
        {
          method: "POST",
          body: JSON.stringify({ order_id: checkout.orderId }),
        },
      );
      assert.equal(none.status, 401);
      await none.body?.cancel();
      const bad = await provisionAsService(stack, "not-a-uuid");
      assert.equal(bad.status, 400);
      assert.equal(errorCode(bad.body), "invalid_request");
      // A secret key in the apikey header is a service caller too; a pending order is refused.
      const secret = await fetch(
        `${stack.gateway.url}/functions/v1/servers-provision`,
        {
          method: "POST",
          headers: {
            apikey: stack.keys.secretKey,
            "Content-Type": "application/json",
          },
          body: JSON.stringify({ order_id: checkout.orderId }),
        },
      );
      assert.equal(secret.status, 409);
      assert.equal(errorCode(await secret.json()), "order_not_provisionable");
      const unknown = await provisionAsService(stack, crypto.randomUUID());
      assert.equal(unknown.status, 404);
      assert.equal((await order(stack, checkout.orderId)).status, "pending");
    });

    await t.step("an unknown egg: error saying what to fix", async () => {
      const checkout = await openCheckout(stack, {
        plan_id: "mc-java-2gb",
        server_name: "Bad egg",
      });
      await stack
        .sql`update public.plans set ptero_egg_id = 99 where id = 'mc-java-2gb'`;
      try {
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
      } finally {
        await stack
          .sql`update public.plans set ptero_egg_id = 1 where id = 'mc-java-2gb'`;
      }
      const row = await order(stack, checkout.orderId);
      assert.equal(row.status, "error");
      assert.match(row.error_message, /egg 99 of nest 1/);
      assert.equal(serversFor(stack, checkout.orderId).length, 0);
    });

    await t.step(
      "no capacity left in the region: error with the cause, and an alert",
      async () => {
        const checkout = await openCheckout(stack, {
          plan_id: "mc-java-8gb",
          region: "us-east",
        });
        // After the checkout reserved its room, an operator takes the region's nodes
        // out of service: the paid order has nowhere to go.
        const disabled = await stack
          .sql`update public.ptero_nodes set enabled = false
          where region = 'us-east' and enabled returning id`;
        try {
          const alertsBefore = receiver.alerts.length;
          await completeCheckout(stack, checkout.sessionId);
          await stack.idle();
          const row = await order(stack, checkout.orderId);
          assert.equal(row.status, "error");
          assert.match(
            row.error_message,
            /Choosing a node failed: no enabled node in region "us-east"/,
          );
          assert.ok(
            receiver.alerts.slice(alertsBefore).some((a) =>
              a.order_id === checkout.orderId
            ),
          );
          assert.equal(serversFor(stack, checkout.orderId).length, 0);
        } finally {
          // The region is out of service for this step only.
          await stack.sql`update public.ptero_nodes set enabled = true
            where id in ${stack.sql(disabled.map((n) => n.id))}`;
        }
      },
    );

    await t.step(
      "log lines name the event and the order they are about",
      async () => {
        const checkout = await purchase(stack, {
          server_name: "Traced",
          region: "us-east",
        });
        const lines = stack.logs.map((line) => JSON.parse(line)).filter((
          line,
        ) => line.order_id === checkout.orderId);
        assert.ok(
          lines.some((line) =>
            line.fn === "stripe-webhook" && /^evt_/.test(line.event_id)
          ),
        );
        assert.ok(lines.some((line) => line.fn === "servers-provision"));
      },
    );
  } finally {
    await stack.close();
    await receiver.close();
  }
});

Deno.test("servers-provision without panel credentials says what to set", async () => {
  const stack = await startTestStack({ env: { PTERODACTYL_API_KEY: "" } });
  try {
    const checkout = await purchase(stack, { server_name: "No panel" });
    const row = await order(stack, checkout.orderId);
    assert.equal(row.status, "error");
    assert.match(row.error_message, /set PTERODACTYL_API_KEY/);
    assert.ok(row.next_attempt_at > new Date());
    assert.equal(stack.panel.calls().length, 0);
  } finally {
    await stack.close();
  }
});

Deno.test("20 concurrent purchases on a small node never overfill it", async () => {
  const stack = await startTestStack();
  try {
    // eu-west keeps only its 8 GB node: room for eight 1 GB servers.
    await stack
      .sql`update public.ptero_nodes set enabled = false where name = 'eu-west-1'`;
    const [small] = await stack
      .sql`select id, panel_node_id, memory_mb from public.ptero_nodes
        where name = 'eu-west-2'`;
    const room = small.memory_mb / 1024;
    const answers = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const buyer = await stack.user();
        return await invoke(buyer.client, "create-checkout-session", {
          plan_id: "among-us-1gb",
          term: "monthly",
          region: "eu-west",
          server_name: `Crewmate ${i}`,
        });
      }),
    );
    // The checkouts beyond the room are refused before anyone pays.
    const sold = answers.filter((a) => a.status === 200);
    assert.equal(sold.length, room);
    assert.deepEqual(
      answers.filter((a) => a.status !== 200).map((a) =>
        `${a.status} ${errorCode(a.body)}`
      ),
      Array(20 - room).fill("409 region_sold_out"),
    );
    await Promise.all(
      sold.map((a) => completeCheckout(stack, String(a.body.session_id))),
    );
    await stack.idle();
    const orderIds = sold.map((a) => String(a.body.order_id));
    const rows = await stack
      .sql`select status, node_id from public.orders where id in ${
      stack.sql(orderIds)
    }`;
    assert.deepEqual(rows.map((r) => r.status), Array(room).fill("installing"));
    assert.ok(rows.every((r) => r.node_id === small.id));
    const [{ total }] = await stack
      .sql`select sum(memory_mb)::int as total from public.orders
        where node_id = ${small.id} and status <> 'expired'`;
    assert.ok(
      total <= small.memory_mb,
      `${total} MB booked on a ${small.memory_mb} MB node`,
    );
    const onNode = stack.panel.state().servers.filter((s) =>
      s.node_id === small.panel_node_id
    );
    assert.ok(onNode.reduce((sum, s) => sum + s.memory, 0) <= small.memory_mb);
    assert.equal(
      orderIds.reduce((n, id) => n + serversFor(stack, id).length, 0),
      room,
    );
  } finally {
    await stack.close();
  }
});
