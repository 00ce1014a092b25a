/**
 * Purchase helpers: open a checkout as a customer, complete it in the Stripe sandbox,
 * read back the order, and catch operator alerts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TestStack, TestUser } from "./_stack.ts";
import { invoke } from "./_fixtures.ts";

/** A checkout opened by a customer. */
export interface Checkout {
  user: TestUser;
  orderId: string;
  sessionId: string;
}

/** Opens a checkout through create-checkout-session. */
export async function openCheckout(
  stack: TestStack,
  body: Partial<
    { plan_id: string; term: string; region: string; server_name: string }
  > = {},
  user?: TestUser,
): Promise<Checkout> {
  const buyer = user ?? await stack.user();
  const res = await invoke(buyer.client, "create-checkout-session", {
    plan_id: "mc-java-4gb",
    term: "monthly",
    region: "eu-west",
    server_name: "Survival",
    ...body,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return {
    user: buyer,
    orderId: String(res.body.order_id),
    sessionId: String(res.body.session_id),
  };
}

/** Completes the session in the sandbox; answers the event ids it produced. */
export async function completeCheckout(
  stack: TestStack,
  sessionId: string,
  outcome = "paid",
  delivery = "normal",
): Promise<string[]> {
  const res = await fetch(
    `${stack.stripe.url}/_sandbox/checkout/sessions/${sessionId}/complete`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ outcome, delivery }),
    },
  );
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.event_ids as string[];
}

/** A purchase taken to the end: checkout, payment, webhooks, provisioning. */
export async function purchase(
  stack: TestStack,
  body: Parameters<typeof openCheckout>[1] = {},
): Promise<Checkout> {
  const checkout = await openCheckout(stack, body);
  await completeCheckout(stack, checkout.sessionId);
  await stack.idle();
  return checkout;
}

/** The order row. */
export async function order(stack: TestStack, orderId: string) {
  const [row] = await stack
    .sql`select * from public.orders where id = ${orderId}`;
  return row;
}

/** Servers on the panel sandbox made for an order. */
export function serversFor(stack: TestStack, orderId: string) {
  return stack.panel.state().servers.filter((s) => s.external_id === orderId);
}

/** A Discord/Slack-style webhook receiver collecting alerts. */
export function startAlertReceiver(): {
  url: string;
  alerts: { content: string; order_id: string | null }[];
  close(): Promise<void>;
} {
  const alerts: { content: string; order_id: string | null }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      alerts.push(await req.json());
      return new Response(null, { status: 204 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/alerts`,
    alerts,
    close: () => server.shutdown(),
  };
}
