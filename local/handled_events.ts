/**
 * The Stripe event types the `stripe-webhook` function acts on: what `npm start`
 * subscribes its webhook endpoint to, as an operator would in the dashboard. The one
 * list is the manifest's (`_shared/manifest.ts`), which the sweep's event recovery
 * lists too; this module keeps the local platform's import path.
 *
 * @module
 */
export {
  HANDLED_EVENT_TYPES,
  type HandledEventType,
} from "../supabase/functions/_shared/manifest.ts";
