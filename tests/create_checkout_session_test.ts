import assert from "node:assert/strict";
import Stripe from "stripe";
import { errorCode, insertOrder, invoke } from "./_fixtures.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

const BODY = {
  plan_id: "mc-java-4gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Creepers",
};

function stripeFor(stack: TestStack): Stripe {
  const base = new URL(stack.stripe.url);
  return new Stripe(stack.keys.stripeSecretKey, {
    host: base.hostname,
    port: Number(base.port),
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
  });
}

async function orderCount(stack: TestStack): Promise<number> {
  const [{ n }] = await stack.sql`select count(*)::int as n from public.orders`;
  return n;
}

Deno.test("create-checkout-session", async (t) => {
  const stack = await startTestStack();
  try {
    await t.step(
      "a signed-in customer gets a Stripe checkout for a pending order",
      async () => {
        const alice = await stack.user();
        const res = await invoke(alice.client, "create-checkout-session", BODY);
        assert.equal(res.status, 200);
        const { order_id, session_id, url } = res.body as Record<
          string,
          string
        >;
        assert.match(order_id, /^[0-9a-f-]{36}$/);
        assert.match(session_id, /^cs_test_/);
        assert.ok(url.startsWith(stack.stripe.url), url);

        const [order] = await stack
          .sql`select * from public.orders where id = ${order_id}`;
        assert.equal(order.user_id, alice.id);
        assert.equal(order.status, "pending");
        assert.equal(order.plan_id, "mc-java-4gb");
        assert.equal(order.stripe_price_id, "price_mc_java_4gb_monthly");
        assert.equal(order.amount_cents, 999);
        assert.equal(order.memory_mb, 4096);
        assert.equal(order.stripe_checkout_session_id, session_id);
        assert.match(order.stripe_customer_id, /^cus_/);

        const session = await stripeFor(stack).checkout.sessions.retrieve(
          session_id,
          {
            expand: ["line_items"],
          },
        );
        assert.equal(session.mode, "subscription");
        assert.equal(session.client_reference_id, order_id);
        assert.equal(session.customer, order.stripe_customer_id);
        const expectedMetadata = {
          order_id,
          user_id: alice.id,
          item_type: "game",
          plan_id: "mc-java-4gb",
          term: "monthly",
          region: "eu-west",
          server_name: "Creepers",
        };
        assert.deepEqual(session.metadata, expectedMetadata);
        assert.equal(session.amount_total, 999);

        // As short as Stripe allows (30 minutes after it creates the session), plus
        // a margin so it never refuses; the key names the order and that end.
        const ttl = session.expires_at - session.created;
        assert.ok(ttl >= 30 * 60 && ttl <= 33 * 60, `session lives ${ttl} s`);
        assert.equal(
          new Date(order.checkout_expires_at).getTime(),
          session.expires_at * 1000,
        );
        const create = stack.stripe.requests().find((r) =>
          r.path === "/v1/checkout/sessions" &&
          r.idempotencyKey ===
            `checkout-session-${order_id}-${session.expires_at}`
        );
        assert.ok(create, "the session is created with the order's key");
        const body = create.body as {
          line_items: { price: string; quantity: string }[];
          subscription_data: { metadata: Record<string, string> };
        };
        assert.deepEqual(body.line_items, [{
          price: "price_mc_java_4gb_monthly",
          quantity: "1",
        }]);
        assert.deepEqual(body.subscription_data.metadata, expectedMetadata);

        const events = await stack
          .sql`select kind, to_status from public.order_events
        where order_id = ${order_id} order by id`;
        assert.deepEqual(events.map((e) => `${e.kind}:${e.to_status ?? ""}`), [
          "status:pending",
          "checkout:",
        ]);
        const [customer] = await stack
          .sql`select stripe_customer_id from public.stripe_customers
        where user_id = ${alice.id}`;
        assert.equal(customer.stripe_customer_id, order.stripe_customer_id);
      },
    );

    await t.step("a second purchase reuses the Stripe customer", async () => {
      const carol = await stack.user();
      const first = await invoke(carol.client, "create-checkout-session", BODY);
      const second = await invoke(carol.client, "create-checkout-session", {
        ...BODY,
        server_name: "Second world",
      });
      assert.equal(first.status, 200);
      assert.equal(second.status, 200);
      assert.notEqual(first.body.order_id, second.body.order_id);
      const customers = stack.stripe.requests().filter((r) =>
        r.path === "/v1/customers" &&
        r.idempotencyKey === `customer-${carol.id}`
      );
      assert.equal(customers.length, 1);
      const orders = await stack.sql`select distinct stripe_customer_id
        from public.orders where user_id = ${carol.id}`;
      assert.equal(orders.length, 1);
    });

    await t.step(
      "an open checkout past its expiry is closed and a new one opened",
      async () => {
        const user = await stack.user();
        const body = { ...BODY, server_name: "Late again" };
        const first = await invoke(
          user.client,
          "create-checkout-session",
          body,
        );
        assert.equal(first.status, 200);
        const reused = await invoke(
          user.client,
          "create-checkout-session",
          body,
        );
        assert.equal(reused.body.order_id, first.body.order_id);

        await stack.sql`update public.orders
          set checkout_expires_at = now() - interval '1 minute'
          where id = ${String(first.body.order_id)}`;
        const second = await invoke(
          user.client,
          "create-checkout-session",
          body,
        );
        assert.equal(second.status, 200);
        assert.notEqual(second.body.order_id, first.body.order_id);
        assert.notEqual(second.body.session_id, first.body.session_id);
        const rows = await stack.sql`select id, status from public.orders
          where user_id = ${user.id} order by created_at`;
        assert.deepEqual(rows.map((r) => [r.id, r.status]), [
          [first.body.order_id, "expired"],
          [second.body.order_id, "pending"],
        ]);
        const [closed] = await stack.sql`select message from public.order_events
          where order_id = ${
          String(first.body.order_id)
        } and to_status = 'expired'`;
        assert.equal(
          closed.message,
          "Checkout ended before payment: its session was expired in Stripe",
        );
        const session = await stripeFor(stack).checkout.sessions.retrieve(
          String(first.body.session_id),
        );
        assert.equal(session.status, "expired");
      },
    );

    await t.step(
      "an expired checkout whose session Stripe no longer knows (keys switched): a new one, never a 5xx",
      async () => {
        const user = await stack.user();
        const body = { ...BODY, server_name: "Switched keys" };
        const first = await invoke(
          user.client,
          "create-checkout-session",
          body,
        );
        assert.equal(first.status, 200);
        // As after switching test keys to live: the stored session is unknown.
        await stack.sql`update public.orders
          set checkout_expires_at = now() - interval '1 minute',
            stripe_checkout_session_id = 'cs_test_unknown_to_these_keys'
          where id = ${String(first.body.order_id)}`;
        const second = await invoke(
          user.client,
          "create-checkout-session",
          body,
        );
        assert.equal(second.status, 200, JSON.stringify(second.body));
        assert.notEqual(second.body.order_id, first.body.order_id);
        const [old] = await stack.sql`select status from public.orders
          where id = ${String(first.body.order_id)}`;
        assert.equal(old.status, "expired");
      },
    );

    await t.step(
      "a deactivated price is not sold: 422, nothing written, Stripe not called",
      async () => {
        const user = await stack.user();
        const orders = await orderCount(stack);
        const calls = stack.stripe.requests().length;
        await stack.sql`update public.plan_prices set active = false
          where plan_id = 'mc-java-2gb' and term = 'quarterly'`;
        try {
          const res = await invoke(user.client, "create-checkout-session", {
            ...BODY,
            plan_id: "mc-java-2gb",
            term: "quarterly",
          });
          assert.equal(res.status, 422);
          assert.equal(errorCode(res.body), "term_not_offered");
          assert.deepEqual(
            (res.body.error as { offered_terms: string[] }).offered_terms,
            ["monthly", "yearly"],
          );
        } finally {
          await stack.sql`update public.plan_prices set active = true
            where plan_id = 'mc-java-2gb' and term = 'quarterly'`;
        }
        assert.equal(await orderCount(stack), orders);
        assert.equal(stack.stripe.requests().length, calls);
      },
    );

    await t.step(
      "a double submit makes one order and one checkout",
      async () => {
        const bob = await stack.user();
        const before = stack.stripe.requests().length;
        const body = { ...BODY, server_name: "Double click" };
        const [first, second] = await Promise.all([
          invoke(bob.client, "create-checkout-session", body),
          invoke(bob.client, "create-checkout-session", body),
        ]);
        assert.equal(first.status, 200);
        assert.equal(second.status, 200);
        assert.equal(first.body.order_id, second.body.order_id);
        assert.equal(first.body.session_id, second.body.session_id);
        const third = await invoke(bob.client, "create-checkout-session", body);
        assert.equal(third.body.session_id, first.body.session_id);
        const [{ n }] = await stack
          .sql`select count(*)::int as n from public.orders
        where user_id = ${bob.id}`;
        assert.equal(n, 1);
        const sessions = new Set(
          stack.stripe.requests().slice(before).filter((r) =>
            r.path === "/v1/checkout/sessions"
          )
            .map((r) => r.idempotencyKey),
        );
        assert.equal(sessions.size, 1);
        assert.ok(
          [...sessions][0]?.startsWith(
            `checkout-session-${first.body.order_id}-`,
          ),
        );
      },
    );

    await t.step("without a valid token: 401 and nothing written", async () => {
      const before = await orderCount(stack);
      const none = await fetch(
        `${stack.gateway.url}/functions/v1/create-checkout-session`,
        {
          method: "POST",
          body: JSON.stringify(BODY),
        },
      );
      assert.equal(none.status, 401);
      await none.body?.cancel();
      const forged = await invoke(stack.anon, "create-checkout-session", BODY, {
        Authorization: "Bearer not.a.jwt",
      });
      assert.equal(forged.status, 401);
      // The anon key is a valid JWT, but not a signed-in user.
      const anon = await invoke(stack.anon, "create-checkout-session", BODY);
      assert.equal(anon.status, 401);
      assert.equal(errorCode(anon.body), "unauthorized");
      assert.equal(await orderCount(stack), before);
    });

    const errorCases: [string, unknown, number, string][] = [
      ["missing fields", { plan_id: "mc-java-4gb" }, 400, "invalid_request"],
      ["a bad term", { ...BODY, term: "weekly" }, 400, "invalid_request"],
      [
        "a client-supplied price",
        { ...BODY, price: 1 },
        400,
        "invalid_request",
      ],
      [
        "an unknown plan",
        { ...BODY, plan_id: "no-such-plan" },
        404,
        "plan_not_found",
      ],
      [
        "an inactive plan",
        { ...BODY, plan_id: "mc-java-1gb-legacy" },
        404,
        "plan_inactive",
      ],
      [
        "a term not offered",
        { ...BODY, plan_id: "mc-vanilla-4gb", term: "yearly" },
        422,
        "term_not_offered",
      ],
      [
        "an unknown region",
        { ...BODY, region: "mars-1" },
        422,
        "region_unknown",
      ],
    ];
    for (const [what, body, status, code] of errorCases) {
      await t.step(
        `${what}: ${status} ${code}, nothing written, Stripe not called`,
        async () => {
          const user = await stack.user();
          const orders = await orderCount(stack);
          const calls = stack.stripe.requests().length;
          const res = await invoke(
            user.client,
            "create-checkout-session",
            body,
          );
          assert.equal(res.status, status);
          assert.equal(errorCode(res.body), code);
          assert.equal(
            typeof (res.body.error as { message: unknown }).message,
            "string",
          );
          assert.equal(await orderCount(stack), orders);
          assert.equal(stack.stripe.requests().length, calls);
        },
      );
    }

    await t.step("invalid fields are named", async () => {
      const user = await stack.user();
      const res = await invoke(user.client, "create-checkout-session", {
        term: "weekly",
      });
      const fields = (res.body.error as { fields: { field: string }[] }).fields
        .map((f) => f.field);
      assert.deepEqual(fields.sort(), [
        "plan_id",
        "region",
        "server_name",
        "term",
      ]);
    });

    await t.step(
      "a region without capacity: 409 before any payment",
      async () => {
        const filler = await stack.user();
        const nodes = await stack
          .sql`select id, memory_mb from public.ptero_nodes
        where region = 'us-east'`;
        try {
          for (const node of nodes) {
            for (let used = 0; used + 8192 <= node.memory_mb; used += 8192) {
              await insertOrder(stack.sql, filler.id, {
                status: "active",
                planId: "mc-java-8gb",
                region: "us-east",
                nodeId: node.id,
                serverName: `filler ${node.id} ${used}`,
              });
            }
          }
          const user = await stack.user();
          const orders = await orderCount(stack);
          const calls = stack.stripe.requests().length;
          const res = await invoke(user.client, "create-checkout-session", {
            ...BODY,
            plan_id: "mc-java-8gb",
            region: "us-east",
          });
          assert.equal(res.status, 409);
          assert.equal(errorCode(res.body), "region_sold_out");
          assert.equal(await orderCount(stack), orders);
          assert.equal(stack.stripe.requests().length, calls);
          // The smaller plan still fits nowhere in us-east either: the region is full.
          const small = await invoke(user.client, "create-checkout-session", {
            ...BODY,
            plan_id: "among-us-1gb",
            region: "us-east",
          });
          assert.equal(small.status, 409);
        } finally {
          // The region is full for this step only.
          await stack
            .sql`delete from public.orders where user_id = ${filler.id}`;
        }
      },
    );

    await t.step(
      "Stripe refusing the checkout: 502, and the pending order is closed with the cause",
      async () => {
        const user = await stack.user();
        await fetch(`${stack.stripe.url}/_sandbox/faults`, {
          method: "POST",
          body: JSON.stringify({
            method: "POST",
            path: "/v1/checkout/sessions",
            // A refusal, which the SDK does not retry: no backoff to wait through.
            status: 400,
            type: "invalid_request_error",
            message: "No such price",
            times: 1,
          }),
        }).then((r) => r.body?.cancel());
        try {
          const res = await invoke(
            user.client,
            "create-checkout-session",
            BODY,
          );
          assert.equal(res.status, 502);
          assert.equal(errorCode(res.body), "stripe_error");
          const [order] = await stack
            .sql`select status, error_message from public.orders
          where user_id = ${user.id}`;
          assert.equal(order.status, "expired");
          assert.equal(
            order.error_message,
            "Stripe refused the checkout session: No such price",
          );
        } finally {
          await fetch(`${stack.stripe.url}/_sandbox/faults`, {
            method: "DELETE",
          })
            .then((r) => r.body?.cancel());
        }
        // The customer can try again at once: a new checkout opens.
        const retry = await invoke(
          user.client,
          "create-checkout-session",
          BODY,
        );
        assert.equal(retry.status, 200);
      },
    );

    await t.step(
      "a browser preflight is answered with CORS headers",
      async () => {
        const res = await fetch(
          `${stack.gateway.url}/functions/v1/create-checkout-session`,
          {
            method: "OPTIONS",
            headers: {
              Origin: "http://localhost:3000",
              "Access-Control-Request-Method": "POST",
              "Access-Control-Request-Headers":
                "authorization, x-client-info, apikey, content-type",
            },
          },
        );
        await res.body?.cancel();
        assert.equal(res.status, 204);
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        const allowed = res.headers.get("access-control-allow-headers") ?? "";
        for (
          const header of [
            "authorization",
            "x-client-info",
            "apikey",
            "content-type",
          ]
        ) {
          assert.ok(allowed.includes(header), header);
        }
      },
    );
  } finally {
    await stack.close();
  }
});
