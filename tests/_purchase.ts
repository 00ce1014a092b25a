/**
 * Purchase helpers: open a checkout as a customer, complete it in the Stripe sandbox,
 * read back the order, and catch operator alerts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type Stripe from "stripe";
import { serveLoopback } from "../local/sandbox-kit/mod.ts";
import { EVENTS_CURSOR_KEY } from "../supabase/functions/_shared/sweep/events.ts";
import { signPayload } from "../local/stripe-sandbox/mod.ts";
import type { TestStack, TestUser } from "./_stack.ts";
import { type Invocation, invoke } from "./_fixtures.ts";

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
  const server = serveLoopback(async (req) => {
    alerts.push(await req.json());
    return new Response(null, { status: 204 });
  });
  return {
    url: `${server.url}/alerts`,
    alerts,
    close: () => server.close(),
  };
}

/** What stripe-webhook answered. */
export interface WebhookReply {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs a raw payload to stripe-webhook, with a signature header when given. */
export async function postWebhook(
  stack: TestStack,
  payload: string,
  signature?: string,
): Promise<WebhookReply> {
  const res = await fetch(`${stack.gateway.url}/functions/v1/stripe-webhook`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(signature ? { "Stripe-Signature": signature } : {}),
    },
    body: payload,
  });
  return { status: res.status, body: await res.json() };
}

/** Signs an event with the stack's webhook secret and POSTs it, as Stripe does. */
export async function postEvent(
  stack: TestStack,
  event: Record<string, unknown>,
): Promise<WebhookReply> {
  const payload = JSON.stringify(event);
  return await postWebhook(
    stack,
    payload,
    await signPayload(stack.keys.stripeWebhookSecret, payload),
  );
}

/** A minimal event of a type stripe-webhook acknowledges without acting on it. */
export function unhandledEvent(id: string): Record<string, unknown> {
  return {
    id,
    object: "event",
    type: "customer.created",
    api_version: "2025-01-01",
    created: Math.floor(Date.now() / 1000),
    data: { object: { id: "cus_x", object: "customer" } },
  };
}

/** The events the Stripe sandbox made, as it sends them. */
export async function sandboxEvents(
  stack: TestStack,
): Promise<({ id: string; type: string } & Record<string, unknown>)[]> {
  const res = await fetch(`${stack.stripe.url}/_sandbox/events`);
  return await res.json();
}

/** The order's status changes, oldest first. */
export async function statusTrail(
  stack: TestStack,
  orderId: string,
): Promise<string[]> {
  const rows = await stack.sql`select to_status from public.order_events
    where order_id = ${orderId} and kind = 'status' order by id`;
  return rows.map((r) => r.to_status);
}

/** Titles of the alerts recorded on the order's timeline, oldest first. */
export async function alertsOn(
  stack: TestStack,
  orderId: string,
): Promise<string[]> {
  const rows = await stack.sql`select message from public.order_events
    where order_id = ${orderId} and kind = 'alert' order by id`;
  return rows.map((r) => r.message);
}

/** Invokes servers-provision for an order with the service-role key. */
export async function provisionAsService(
  stack: TestStack,
  orderId: string,
): Promise<Invocation> {
  return await invoke(stack.anon, "servers-provision", { order_id: orderId }, {
    Authorization: `Bearer ${stack.keys.serviceRoleKey}`,
  });
}

/** What a sandbox subscription control answers. */
export interface SubscriptionControl {
  subscription: Stripe.Subscription;
  invoice?: Stripe.Invoice;
  event_ids: string[];
}

/**
 * Runs a Stripe sandbox subscription control (`renew`, `recover`, `dispute`, …: time
 * passing, a bank, a customer) and waits for its events to be handled.
 */
export async function subscriptionControl(
  stack: TestStack,
  subscriptionId: string,
  action: string,
  body: Record<string, unknown> = {},
): Promise<SubscriptionControl> {
  const res = await fetch(
    `${stack.stripe.url}/_sandbox/subscriptions/${subscriptionId}/${action}`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    },
  );
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  await stack.idle();
  return answer as SubscriptionControl;
}

/** Clears the Stripe sandbox's faults. */
export async function clearStripeFaults(stack: TestStack): Promise<void> {
  const res = await fetch(`${stack.stripe.url}/_sandbox/faults`, {
    method: "DELETE",
  });
  await res.body?.cancel();
  assert.ok(res.ok);
}

/**
 * Resolves once a sandbox has received `n` requests matching `match` since the
 * `since`-th (a call is recorded when it arrives, before any latency fault).
 */
export async function callsArrive(
  sandbox: { calls(): { method: string; path: string }[] },
  since: number,
  match: (call: { method: string; path: string }) => boolean,
  n = 1,
): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (sandbox.calls().slice(since).filter(match).length >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`the sandbox never received ${n} such requests`);
}

/** {@linkcode callsArrive} on the stack's Stripe sandbox. */
export async function stripeCallsArrive(
  stack: TestStack,
  since: number,
  match: (call: { method: string; path: string }) => boolean,
  n = 1,
): Promise<void> {
  await callsArrive(stack.stripe, since, match, n);
}

/**
 * Runs `fn` while Stripe's events reach nobody (a lost webhook: every endpoint
 * disabled), then reconnects. With `pastEventList`, the sweep's event cursor is moved
 * past them too, as for events Stripe no longer lists, so a test of another net is
 * not healed first by the sweep's `events` job.
 */
export async function withoutWebhooks<T>(
  stack: TestStack,
  fn: () => Promise<T>,
  options: { pastEventList?: boolean } = {},
): Promise<T> {
  stack.stripe.setWebhookUrl(undefined);
  try {
    return await fn();
  } finally {
    stack.stripe.setWebhookUrl(
      `${stack.gateway.url}/functions/v1/stripe-webhook`,
    );
    if (options.pastEventList) {
      await stack.sql`
        insert into public.shop_state (key, value)
        values (${EVENTS_CURSOR_KEY}, jsonb_build_object('created',
          extract(epoch from now())::bigint + 86400))
        on conflict (key) do update set value = excluded.value`;
    }
  }
}

/** Has the Stripe sandbox deliver an event again (`copies` times, at once or not). */
export async function redeliver(
  stack: TestStack,
  eventId: string,
  options: { copies?: number; concurrent?: boolean } = {},
): Promise<void> {
  const res = await fetch(
    `${stack.stripe.url}/_sandbox/events/${eventId}/deliver`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(options),
    },
  );
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
}
