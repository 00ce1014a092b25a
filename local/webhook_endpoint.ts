/**
 * How `npm start` registers the `stripe-webhook` function with Stripe, the way an
 * operator does: through `/v1/webhook_endpoints`, subscribed to the event types the
 * webhook handles, with the signing secret Stripe answers `create` with.
 *
 * The secret is kept with the stack's other local keys (`.local/keys.json`) rather
 * than rotated on every start: an operator stores it once as the function's
 * `STRIPE_WEBHOOK_SECRET` and redeploys without touching the endpoint, and a
 * recreated endpoint would orphan the events still owed to the old one. Only when
 * the secret is lost (keys without it, or an endpoint they do not name) is the
 * endpoint rolled: deleted and created again, since Stripe never shows it twice.
 *
 * @module
 */
import Stripe from "stripe";
import { HANDLED_EVENT_TYPES } from "./handled_events.ts";

/** Marks the endpoint the stack owns, so a restart finds it instead of adding one. */
export const STACK_ENDPOINT_METADATA = { registered_by: "local/stack.ts" };

/** The stack's endpoint and its signing secret. */
export interface StackEndpoint {
  id: string;
  secret: string;
}

/**
 * Finds the stack's endpoint (by its metadata) and points it at `url`, or creates
 * it; answers its id and secret. `known` is what the last start kept.
 */
export async function registerWebhookEndpoint(
  stripe: Stripe,
  options: { url: string; known?: Partial<StackEndpoint> },
): Promise<StackEndpoint> {
  const ours: Stripe.WebhookEndpoint[] = [];
  for await (const endpoint of stripe.webhookEndpoints.list({ limit: 100 })) {
    if (
      endpoint.metadata?.registered_by === STACK_ENDPOINT_METADATA.registered_by
    ) ours.push(endpoint);
  }
  const { id, secret } = options.known ?? {};
  const kept = ours.find((e) => e.id === id);
  for (const stale of ours.filter((e) => e !== kept)) {
    await stripe.webhookEndpoints.del(stale.id);
  }
  if (kept !== undefined && secret !== undefined) {
    await stripe.webhookEndpoints.update(kept.id, {
      url: options.url,
      enabled_events: [...HANDLED_EVENT_TYPES],
      disabled: false,
    });
    return { id: kept.id, secret };
  }
  const created = await stripe.webhookEndpoints.create({
    url: options.url,
    enabled_events: [...HANDLED_EVENT_TYPES],
    description: "stripe-webhook function of the local stack",
    metadata: STACK_ENDPOINT_METADATA,
  });
  return { id: created.id, secret: created.secret! };
}
