/**
 * The shop's facts in one place, for every part that needs them (the functions, the
 * sweep's recovery of missed events, the doctor, setup): which functions exist, who
 * calls each and what environment each needs, and which Stripe event types the webhook
 * handles. Light on purpose: zod and the env schemas only, so a function importing it
 * loads nothing it does not use.
 *
 * @module
 */
import { z } from "zod";
import { lifecycleEnv } from "./orders/lifecycle_config.ts";
import {
  alertEnv,
  panelEnv,
  siteEnv,
  stripeEnv,
  supabaseServiceEnv,
  supabaseUserEnv,
  webhookEnv,
} from "./platform/config.ts";

/**
 * The Stripe event types `stripe-webhook` acts on (others are acknowledged and logged
 * as `ignored`): the webhook endpoint subscribes to exactly these, and the sweep lists
 * exactly these when it looks for events that were never delivered.
 */
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
  "customer.subscription.pending_update_applied",
  "customer.subscription.pending_update_expired",
  "charge.dispute.created",
  "charge.refunded",
] as const;
/** An event type the webhook acts on. */
export type HandledEventType = typeof HANDLED_EVENT_TYPES[number];

/** Whether Stripe's event type is one the webhook acts on. */
export function isHandledEventType(type: string): type is HandledEventType {
  return (HANDLED_EVENT_TYPES as readonly string[]).includes(type);
}

/** The checkout's own settings. */
export const checkoutEnv = z.object({
  MAX_OPEN_CHECKOUTS: z.coerce.number().int().min(1).max(1000).default(5),
});

/** The customer portal's own settings. */
export const portalEnv = z.object({
  /** A portal configuration without plan switches (`npm run setup` prints its id). */
  STRIPE_PORTAL_CONFIGURATION: z.string().regex(/^bpc_\w+$/).optional(),
});

/**
 * The SDKs (npm packages) a function may load. A function loads only those it calls:
 * `tests/function_imports_test.ts` checks each function's module graph against this.
 */
export type Sdk = "stripe" | "@supabase/supabase-js" | "postgres";

/** Who may call a function. */
export type Caller = "user" | "stripe" | "service" | "user or service";

/** Every function: who calls it, and the environment it refuses to start without. */
export const FUNCTIONS = {
  "create-checkout-session": {
    caller: "user",
    env: supabaseUserEnv.and(stripeEnv).and(siteEnv).and(checkoutEnv),
    // supabase-js: the user's token (getClaims).
    sdks: ["stripe", "@supabase/supabase-js", "postgres"],
  },
  "stripe-webhook": {
    caller: "stripe",
    // supabase-js: hands orders to servers-provision and sync-server-status.
    sdks: ["stripe", "@supabase/supabase-js", "postgres"],
    env: supabaseServiceEnv.and(stripeEnv).and(webhookEnv).and(alertEnv).and(
      // Payment grace and retention (seconds); defaults and rules are the sweep's too.
      lifecycleEnv.pick({
        PAYMENT_GRACE_SECONDS: true,
        RETENTION_SECONDS: true,
      }),
    ),
  },
  "servers-provision": {
    caller: "service",
    // The panel is plain fetch.
    sdks: ["postgres"],
    env: supabaseServiceEnv.and(panelEnv).and(alertEnv).and(
      lifecycleEnv.pick({ PROVISION_MAX_ATTEMPTS: true }),
    ),
  },
  "create-pterodactyl-user": {
    caller: "user",
    sdks: ["@supabase/supabase-js", "postgres"],
    env: supabaseUserEnv.and(panelEnv),
  },
  "sync-server-status": {
    caller: "user or service",
    sdks: ["stripe", "@supabase/supabase-js", "postgres"],
    // Stripe is required: the sweep never expires a checkout without asking it.
    env: supabaseServiceEnv.and(panelEnv).and(stripeEnv).and(alertEnv).and(
      lifecycleEnv,
    ),
  },
  "change-server-plan": {
    caller: "user or service",
    sdks: ["stripe", "@supabase/supabase-js", "postgres"],
    // Stripe for the subscription; the panel's client API reads the disk in use.
    env: supabaseServiceEnv.and(stripeEnv).and(panelEnv).and(alertEnv).and(
      lifecycleEnv.pick({ PTERODACTYL_CLIENT_API_KEY: true }),
    ),
  },
  "create-billing-portal-session": {
    caller: "user",
    sdks: ["stripe", "@supabase/supabase-js", "postgres"],
    env: supabaseUserEnv.and(stripeEnv).and(siteEnv).and(portalEnv),
  },
  "order-doctor": {
    caller: "service",
    sdks: ["stripe", "postgres"],
    // Read-only: the database, GETs on Stripe and the panel.
    env: supabaseServiceEnv.and(panelEnv).and(stripeEnv),
  },
} as const satisfies Record<
  string,
  { caller: Caller; env: z.ZodType; sdks: readonly Sdk[] }
>;
/** A function's name. */
export type FunctionName = keyof typeof FUNCTIONS;
