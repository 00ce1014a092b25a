/**
 * Test helpers for code that runs against the Stripe sandbox: an SDK client pointed
 * at it, and a webhook receiver that verifies signatures with the real SDK.
 *
 * @module
 */
import Stripe from "stripe";
import { serveLoopback } from "../sandbox-kit/mod.ts";
import { loadCatalogue } from "../catalogue.ts";
import { startStripeSandbox, type StripeSandbox } from "./mod.ts";

/** The real SDK pointed at a sandbox (fetch client, as in Deno and Edge Functions). */
export function sandboxClient(
  sandbox: Pick<StripeSandbox, "port">,
  secretKey: string,
  options: { maxNetworkRetries?: number } = {},
): Stripe {
  return new Stripe(secretKey, {
    host: "127.0.0.1",
    port: sandbox.port,
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: options.maxNetworkRetries ?? 0,
  });
}

/** One delivery a receiver got. */
export interface ReceivedWebhook {
  body: string;
  signature: string;
  userAgent: string;
  contentType: string;
  /** the event as `constructEventAsync` returned it, or undefined if it threw */
  event: Stripe.Event | undefined;
  /** what it answered */
  status: number;
}

/** A local webhook endpoint. */
export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  close(): Promise<void>;
}

/**
 * Starts a webhook endpoint on 127.0.0.1 that verifies each delivery with
 * `stripe.webhooks.constructEventAsync` and answers `statuses[n]` to the n-th one
 * (200 once they run out; 400 for a bad signature).
 */
export function startWebhookReceiver(
  webhookSecret: string,
  statuses: number[] = [],
): Promise<WebhookReceiver> {
  const stripe = new Stripe("sk_test_unused", {
    httpClient: Stripe.createFetchHttpClient(),
  });
  const crypto = Stripe.createSubtleCryptoProvider();
  const received: ReceivedWebhook[] = [];
  const server = serveLoopback(
    async (req) => {
      const body = await req.text();
      const signature = req.headers.get("stripe-signature") ?? "";
      let event: Stripe.Event | undefined;
      try {
        event = await stripe.webhooks.constructEventAsync(
          body,
          signature,
          webhookSecret,
          undefined,
          crypto,
        );
      } catch {
        event = undefined;
      }
      const status = event === undefined
        ? 400
        : statuses[received.length] ?? 200;
      received.push({
        body,
        signature,
        userAgent: req.headers.get("user-agent") ?? "",
        contentType: req.headers.get("content-type") ?? "",
        event,
        status,
      });
      return new Response(status < 300 ? '{"received":true}' : "failed", {
        status,
      });
    },
  );
  return Promise.resolve({
    url: `${server.url}/webhook`,
    received,
    close: () => server.close(),
  });
}

/** A sandbox delivering to a receiver, with an SDK client on it. */
export interface SandboxEnv {
  sandbox: StripeSandbox;
  stripe: Stripe;
  receiver: WebhookReceiver;
}

/**
 * Runs `fn` with a catalogue-seeded sandbox whose webhooks go to a receiver answering
 * `statuses` in turn (then 200), and closes both afterwards.
 */
export async function withSandbox(
  options: {
    secretKey: string;
    webhookSecret: string;
    statuses?: number[];
    retryDelaysMs?: number[];
  },
  fn: (env: SandboxEnv) => Promise<void>,
): Promise<void> {
  const receiver = await startWebhookReceiver(
    options.webhookSecret,
    options.statuses,
  );
  const sandbox = await startStripeSandbox({
    catalogue: await loadCatalogue(),
    secretKey: options.secretKey,
    webhookSecret: options.webhookSecret,
    webhookUrl: receiver.url,
    retryDelaysMs: options.retryDelaysMs,
  });
  try {
    await fn({
      sandbox,
      stripe: sandboxClient(sandbox, options.secretKey),
      receiver,
    });
  } finally {
    await sandbox.close();
    await receiver.close();
  }
}

/** Makes a control call (`POST /_sandbox/…`, JSON) and answers its JSON; throws unless 200. */
export async function sandboxControl(
  sandbox: Pick<StripeSandbox, "url">,
  path: string,
  body: unknown = {},
): Promise<Record<string, unknown>> {
  const res = await fetch(`${sandbox.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) {
    throw new Error(
      `Control call ${path} answered ${res.status}: ${JSON.stringify(json)}`,
    );
  }
  return json;
}

/** A subscription to `price` bought through a paid checkout, as a customer does. */
export async function subscribe(
  sandbox: Pick<StripeSandbox, "url">,
  stripe: Stripe,
  price: string,
  email = "ada@example.com",
): Promise<Stripe.Subscription> {
  const session = await stripe.checkout.sessions.create({
    mode: "subscription",
    success_url: "https://shop.example/success",
    customer_email: email,
    line_items: [{ price, quantity: 1 }],
  });
  const done = await sandboxControl(
    sandbox,
    `/_sandbox/checkout/sessions/${session.id}/complete`,
  );
  const completed = done.session as { subscription: string };
  return await stripe.subscriptions.retrieve(completed.subscription);
}

/** Options of `withSandbox` for tests: test keys, and retries after 20 ms. */
export const QUICK_SANDBOX: {
  secretKey: string;
  webhookSecret: string;
  retryDelaysMs: number[];
} = {
  secretKey: "sk_test_local_quick_0123456789abcdef",
  webhookSecret: "whsec_local_quick_secret",
  retryDelaysMs: [20],
};

/** The events of `type` a receiver got about the object `objectId`, oldest first. */
export function receivedEvents(
  receiver: WebhookReceiver,
  type: string,
  objectId: string,
): Stripe.Event[] {
  return receiver.received.flatMap((r) =>
    r.event?.type === type &&
      (r.event.data.object as { id?: string }).id === objectId
      ? [r.event]
      : []
  );
}

/**
 * Moves a subscription's first item to `price` now, as an upgrade does: invoiced at
 * once (`always_invoice`) and applied only once paid (`pending_if_incomplete`).
 */
export function upgradeNow(
  stripe: Stripe,
  sub: Stripe.Subscription,
  price: string,
  extra: Stripe.SubscriptionUpdateParams = {},
  idempotencyKey?: string,
): Promise<Stripe.Response<Stripe.Subscription>> {
  return stripe.subscriptions.update(sub.id, {
    items: [{ id: sub.items.data[0].id, price }],
    proration_behavior: "always_invoice",
    payment_behavior: "pending_if_incomplete",
    ...extra,
  }, idempotencyKey === undefined ? undefined : { idempotencyKey });
}
