/**
 * The Stripe event types the `stripe-webhook` function acts on: what `npm start`
 * subscribes its webhook endpoint to, as an operator would in the dashboard. The
 * webhook exports its types only as a type (`ShopEvent`), so the list lives here,
 * checked against it both ways by `deno check`; it can move next to the webhook
 * later.
 *
 * @module
 */
import type { ShopEvent } from "../supabase/functions/stripe-webhook/schemas.ts";

/** An event type the webhook parses and applies (everything but "other"). */
export type HandledEventType = Exclude<ShopEvent["type"], "other">;

/** Every event type the webhook handles, in the order its `applyEvent` lists them. */
export const HANDLED_EVENT_TYPES = [
  "checkout.session.completed",
  "checkout.session.async_payment_succeeded",
  "checkout.session.async_payment_failed",
  "checkout.session.expired",
  "invoice.paid",
  "invoice.payment_failed",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "customer.subscription.paused",
  "customer.subscription.resumed",
  "charge.dispute.created",
  "charge.refunded",
] as const satisfies readonly HandledEventType[];

// A type the webhook learns to handle but the list misses fails `deno check` here.
type Unlisted = Exclude<HandledEventType, typeof HANDLED_EVENT_TYPES[number]>;
const _everyTypeListed: [Unlisted] extends [never] ? true : Unlisted = true;
