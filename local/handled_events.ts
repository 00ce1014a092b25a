/**
 * The Stripe event types the `stripe-webhook` function acts on, from the one list the
 * code has (`_shared/manifest.ts`): what `npm start` and `npm run setup` subscribe the
 * webhook endpoint to. Checked against the webhook's parsed events by `deno check`.
 *
 * @module
 */
import type { ShopEvent } from "../supabase/functions/stripe-webhook/schemas.ts";
import { HANDLED_EVENT_TYPES } from "../supabase/functions/_shared/manifest.ts";

export { HANDLED_EVENT_TYPES };
/** An event type the webhook parses and applies (everything but "other"). */
export type HandledEventType = Exclude<ShopEvent["type"], "other">;

// A type the webhook learns to handle but the list misses fails `deno check` here.
type Unlisted = Exclude<HandledEventType, typeof HANDLED_EVENT_TYPES[number]>;
const _everyTypeListed: [Unlisted] extends [never] ? true : Unlisted = true;
type Unhandled = Exclude<typeof HANDLED_EVENT_TYPES[number], HandledEventType>;
const _everyListedHandled: [Unhandled] extends [never] ? true : Unhandled =
  true;
