import assert from "node:assert/strict";
import { serveLoopback } from "../local/sandbox-kit/mod.ts";
import { insertOrder, invoke } from "./_fixtures.ts";
import { order, provisionAsService } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

/**
 * A proxy in front of a sandbox that, for one route, answers an error echoing the
 * caller's Authorization header, as a misconfigured gateway or an API quoting a bad key
 * does. Every other request goes through to `target`.
 */
function startEchoingProxy(
  route: { method: string; path: string },
  reply: (authorization: string) => Response,
) {
  let target = "";
  const server = serveLoopback(
    async (req) => {
      const url = new URL(req.url);
      if (req.method === route.method && url.pathname === route.path) {
        await req.body?.cancel();
        return reply(req.headers.get("Authorization") ?? "");
      }
      const upstream = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
      });
      return new Response(upstream.body, {
        status: upstream.status,
        headers: upstream.headers,
      });
    },
  );
  return {
    url: server.url,
    forwardTo(url: string) {
      target = url;
    },
    close: () => server.close(),
  };
}

/** A stack whose Stripe and panel echo the caller's key in one error each. */
async function withLeakyUpstreams(
  fn: (stack: TestStack) => Promise<void>,
): Promise<void> {
  const stripeProxy = startEchoingProxy(
    { method: "POST", path: "/v1/checkout/sessions" },
    (authorization) =>
      Response.json({
        error: {
          type: "invalid_request_error",
          message: `Invalid API Key provided: ${
            authorization.replace(/^Bearer /, "")
          }`,
        },
      }, { status: 401 }),
  );
  const panelProxy = startEchoingProxy(
    { method: "POST", path: "/api/application/servers" },
    (authorization) =>
      new Response(
        `Bad gateway while forwarding (Authorization: ${authorization})`,
        { status: 502, headers: { "Content-Type": "text/plain" } },
      ),
  );
  try {
    const stack = await startTestStack({
      env: {
        STRIPE_API_BASE: stripeProxy.url,
        PTERODACTYL_URL: panelProxy.url,
      },
    });
    stripeProxy.forwardTo(stack.stripe.url);
    panelProxy.forwardTo(stack.panel.url);
    try {
      await fn(stack);
    } finally {
      await stack.close();
    }
  } finally {
    await stripeProxy.close();
    await panelProxy.close();
  }
}

/** Opens a checkout through the leaky Stripe: 502. */
async function failCheckout(stack: TestStack): Promise<void> {
  const user = await stack.user();
  const res = await invoke(user.client, "create-checkout-session", {
    plan_id: "mc-java-4gb",
    term: "monthly",
    region: "eu-west",
    server_name: "Leaky",
  });
  assert.equal(res.status, 502);
}

/** Provisions a paid order through the leaky panel: the order ends in error. */
async function failProvisioning(stack: TestStack): Promise<string> {
  const user = await stack.user();
  const orderId = await insertOrder(stack.sql, user.id, { status: "paid" });
  const res = await provisionAsService(stack, orderId);
  assert.equal(res.status, 200);
  assert.equal(res.body.status, "error");
  assert.equal((await order(stack, orderId)).status, "error");
  return orderId;
}

Deno.test("secrets echoed back by Stripe or the panel are redacted from the logs", async (t) => {
  await withLeakyUpstreams(async (stack) => {
    /** Log lines of one function that mention `text`. */
    const linesOf = (fn: string, text: string) =>
      stack.logs.filter((line) =>
        line.includes(`"fn":"${fn}"`) && line.includes(text)
      );

    await t.step(
      "a Stripe error quoting the secret key: logged with the key redacted",
      async () => {
        await failCheckout(stack);
        const lines = linesOf(
          "create-checkout-session",
          "Invalid API Key provided: [redacted]",
        );
        assert.equal(lines.length, 1, "the Stripe error is logged");
        assert.ok(!stack.logs.join("\n").includes(stack.keys.stripeSecretKey));
      },
    );

    await t.step(
      "a panel error quoting the application key: logged with the key redacted",
      async () => {
        await failProvisioning(stack);
        const lines = linesOf(
          "servers-provision",
          "Authorization: Bearer [redacted]",
        );
        assert.ok(lines.some((line) => line.includes("Provisioning failed")));
        assert.ok(!stack.logs.join("\n").includes(stack.keys.panelApiKey));
      },
    );
  });
});

// An upstream error that echoes a key must not carry it onto the order, its timeline
// or the alert: the customer reads the first two, an operator channel the last.
Deno.test({
  name:
    "secrets echoed back by Stripe or the panel never reach the order's timeline",
  fn: async () => {
    await withLeakyUpstreams(async (stack) => {
      await failCheckout(stack);
      await failProvisioning(stack);
      const stored = JSON.stringify(
        await stack.sql`select o.error_message, e.message, e.detail
          from public.orders o join public.order_events e on e.order_id = o.id`,
      );
      assert.ok(stored.includes("[redacted]"));
      assert.ok(!stored.includes(stack.keys.stripeSecretKey));
      assert.ok(!stored.includes(stack.keys.panelApiKey));
    });
  },
});
