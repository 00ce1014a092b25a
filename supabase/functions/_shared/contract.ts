/**
 * The contract between the storefront and the backend: the request and response of
 * every user-facing function, their error codes, and the catalogue and order columns
 * a storefront may read through the Data API. The functions build their replies
 * against these types (`satisfies`), and the storefront (`storefront/`) imports them,
 * so a change to a response breaks the storefront's type check instead of its users.
 *
 * Browser-safe: imports zod only.
 *
 * @module
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------
// Shared values

/** Billing terms. */
export const TERMS = ["monthly", "quarterly", "yearly"] as const;
/** A billing term. */
export type Term = typeof TERMS[number];

/** Every status an order can be in. */
export const ORDER_STATUSES = [
  "pending",
  "paid",
  "provisioning",
  "installing",
  "active",
  "error",
  "suspended",
  "canceled",
  "expired",
] as const;
/** An order's status. */
export type OrderStatus = typeof ORDER_STATUSES[number];

/** What the panel showed last for an order's server. */
export const PANEL_STATES = [
  "installing",
  "installed",
  "install_failed",
  "suspended",
  "missing",
  "deleted",
] as const;
/** What the panel showed last for an order's server. */
export type PanelState = typeof PANEL_STATES[number];

/** Why a server is (to be) suspended; only `billing` lifts on payment. */
export const SUSPEND_REASONS = [
  "billing",
  "dispute",
  "canceled",
  "admin",
] as const;
/** Why a server is (to be) suspended. */
export type SuspendReason = typeof SUSPEND_REASONS[number];

/** Every error body: `{"error": {"code", "message", …}}` with a stable code. */
export const ErrorBody = z.object({
  error: z.looseObject({ code: z.string(), message: z.string() }),
});
/** Every error body. */
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Codes any function may answer (authentication, body, limits, outages). */
export const COMMON_ERROR_CODES = [
  "unauthorized",
  "user_not_found",
  "invalid_json",
  "invalid_request",
  "payload_too_large",
  "method_not_allowed",
  "forbidden",
  "panel_unavailable",
  "internal_error",
] as const;

/** No control characters: Postgres refuses NUL in text, and none belongs in an id. */
const PRINTABLE = /^\P{Cc}*$/u;

// ---------------------------------------------------------------------------------
// create-checkout-session (user JWT)

/** `create-checkout-session` request. */
export const CheckoutRequest = z.strictObject({
  plan_id: z.string().trim().min(1).max(64).regex(
    PRINTABLE,
    "must not contain control characters",
  ),
  term: z.enum(TERMS),
  region: z.string().trim().min(1).max(32).regex(
    PRINTABLE,
    "must not contain control characters",
  ),
  server_name: z.string().trim().min(3).max(40).regex(
    /^[\p{L}\p{N} _.'-]+$/u,
    "may contain letters, digits, spaces and _ . ' -",
  ),
});
/** `create-checkout-session` request. */
export type CheckoutRequest = z.infer<typeof CheckoutRequest>;

/** `create-checkout-session` 200: the Stripe Checkout page of a `pending` order. */
export const CheckoutResponse = z.object({
  order_id: z.uuid(),
  session_id: z.string(),
  url: z.url(),
});
/** `create-checkout-session` 200. */
export type CheckoutResponse = z.infer<typeof CheckoutResponse>;

/** `create-checkout-session` error codes (besides the common ones). */
export const CHECKOUT_ERROR_CODES = [
  "plan_not_found",
  "plan_inactive",
  "term_not_offered",
  "region_unknown",
  "region_sold_out",
  "too_many_open_checkouts",
  "checkout_in_progress",
  "stripe_error",
] as const;

// ---------------------------------------------------------------------------------
// create-pterodactyl-user (user JWT)

/** `create-pterodactyl-user` 200: the caller's panel account. */
export const PanelUserResponse = z.object({
  ptero_user_id: z.number().int(),
  username: z.string(),
  panel_url: z.string(),
  created: z.boolean(),
});
/** `create-pterodactyl-user` 200. */
export type PanelUserResponse = z.infer<typeof PanelUserResponse>;

// ---------------------------------------------------------------------------------
// change-server-plan (user JWT)

/** `change-server-plan` request: a change (or its preview), or canceling a scheduled one. */
export const ChangeServerPlanRequest = z.union([
  z.strictObject({
    order_id: z.uuid(),
    plan_id: z.string().trim().min(1).max(64).regex(
      PRINTABLE,
      "must not contain control characters",
    ),
    preview: z.boolean().optional(),
  }),
  z.strictObject({
    order_id: z.uuid(),
    /** Cancels the order's scheduled downgrade. */
    cancel: z.literal(true),
  }),
]);
/** `change-server-plan` request. */
export type ChangeServerPlanRequest = z.infer<typeof ChangeServerPlanRequest>;

/** Upgrades are charged and applied now; downgrades wait for the period's end. */
export const PLAN_CHANGE_KINDS = ["upgrade", "downgrade"] as const;
/** Upgrade or downgrade. */
export type PlanChangeKind = typeof PLAN_CHANGE_KINDS[number];

/** Where a plan change is. */
export const PLAN_CHANGE_STATUSES = [
  "requested",
  "awaiting_payment",
  "scheduled",
  "applied",
  "failed",
  "canceled",
  "expired",
] as const;
/** A plan change's status. */
export type PlanChangeStatus = typeof PLAN_CHANGE_STATUSES[number];

/** What a plan change would do, before the customer confirms it. */
export const PlanChangePreview = z.object({
  kind: z.enum(PLAN_CHANGE_KINDS),
  order_id: z.uuid(),
  from_plan_id: z.string(),
  to_plan_id: z.string(),
  /** What is charged now (Stripe's proration preview), in the currency's cents. */
  amount_due_cents: z.number().int(),
  currency: z.string(),
  /** An upgrade takes effect now; a downgrade at the end of the paid period. */
  effective: z.enum(["now", "period_end"]),
  effective_at: z.iso.datetime({ offset: true }).nullable(),
  limits: z.object({ memory_mb: z.number().int(), disk_mb: z.number().int() }),
  /** Memory a game reads at start (Java's heap) changes at its next restart. */
  restart_needed: z.boolean(),
});
/** A plan change's preview. */
export type PlanChangePreview = z.infer<typeof PlanChangePreview>;

/** A plan change as the customer sees it (`message` in customer words). */
export const PlanChangeView = z.object({
  id: z.string(),
  kind: z.enum(PLAN_CHANGE_KINDS),
  from_plan_id: z.string(),
  to_plan_id: z.string(),
  status: z.enum(PLAN_CHANGE_STATUSES),
  effective_at: z.iso.datetime({ offset: true }).nullable(),
  amount_due_cents: z.number().int(),
  currency: z.string(),
  message: z.string(),
});
/** A plan change as the customer sees it. */
export type PlanChangeView = z.infer<typeof PlanChangeView>;

/** `change-server-plan` 200 with `preview: true`. */
export const ChangePlanPreviewResponse = z.object({
  preview: PlanChangePreview,
});
/** `change-server-plan` 200 with `preview: true`. */
export type ChangePlanPreviewResponse = z.infer<
  typeof ChangePlanPreviewResponse
>;

/** `change-server-plan` 202 (upgrade) / 200 (downgrade, or a cancel). */
export const ChangePlanResponse = z.object({ change: PlanChangeView });
/** `change-server-plan` 202 / 200. */
export type ChangePlanResponse = z.infer<typeof ChangePlanResponse>;

/** `change-server-plan` error codes (besides the common ones). */
export const CHANGE_PLAN_ERROR_CODES = [
  "order_not_found",
  "plan_not_found",
  "plan_not_compatible",
  "node_full",
  "disk_in_use",
  "change_in_progress",
  "order_not_active",
  "same_plan",
  "payment_failed",
] as const;

// ---------------------------------------------------------------------------------
// create-billing-portal-session (user JWT)

/** `create-billing-portal-session` request. */
export const BillingPortalRequest = z.strictObject({
  order_id: z.uuid().optional(),
  return_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
});
/** `create-billing-portal-session` request. */
export type BillingPortalRequest = z.infer<typeof BillingPortalRequest>;

/** `create-billing-portal-session` 200: Stripe's customer portal. */
export const BillingPortalResponse = z.object({ url: z.url() });
/** `create-billing-portal-session` 200. */
export type BillingPortalResponse = z.infer<typeof BillingPortalResponse>;

/** `create-billing-portal-session` error codes (besides the common ones). */
export const BILLING_PORTAL_ERROR_CODES = [
  "order_not_found",
  "no_stripe_customer",
] as const;

// ---------------------------------------------------------------------------------
// sync-server-status (user JWT)

/** The customer's view of one order. */
export const OrderView = z.object({
  order_id: z.uuid(),
  server_name: z.string(),
  plan_id: z.string(),
  region: z.string(),
  status: z.enum(ORDER_STATUSES),
  /** The status in customer words. */
  message: z.string(),
  server: z.object({
    identifier: z.string().nullable(),
    panel_status: z.enum(PANEL_STATES).nullable(),
    live_state: z.string().nullable(),
  }),
  limits: z.object({
    memory_mb: z.number().int(),
    disk_mb: z.number().int(),
    cpu_percent: z.number().int(),
    databases: z.number().int(),
    backups: z.number().int(),
    allocations: z.number().int(),
  }),
  paid_until: z.iso.datetime({ offset: true }).nullable(),
  cancel_at_period_end: z.boolean(),
  /** When a coming cancellation takes effect (cancel at period end, or Stripe's cancel_at). */
  cancel_at: z.iso.datetime({ offset: true }).nullable(),
  suspend_reason: z.enum(SUSPEND_REASONS).nullable(),
  delete_at: z.iso.datetime({ offset: true }).nullable(),
  /** The latest plan change (on its way, or how a recent one ended). */
  plan_change: PlanChangeView.nullable(),
});
/** The customer's view of one order. */
export type OrderView = z.infer<typeof OrderView>;

/** `sync-server-status` 200 for a signed-in customer: their orders, newest first. */
export const SyncResponse = z.object({ orders: z.array(OrderView) });
/** `sync-server-status` 200 for a customer. */
export type SyncResponse = z.infer<typeof SyncResponse>;

// ---------------------------------------------------------------------------------
// What a storefront reads through the Data API (supabase-js `from(...)`)

/** `regions`: anyone reads the active ones. */
export const REGION_COLUMNS = "id,display_name";
/** A row of `regions` as the storefront reads it. */
export const RegionRow = z.object({ id: z.string(), display_name: z.string() });
/** A row of `regions`. */
export type RegionRow = z.infer<typeof RegionRow>;

/** `plans`: anyone reads the active ones. */
export const PLAN_COLUMNS =
  "id,game,display_name,memory_mb,disk_mb,cpu_percent";
/** A row of `plans` as the storefront reads it. */
export const PlanRow = z.object({
  id: z.string(),
  game: z.string(),
  display_name: z.string(),
  memory_mb: z.number().int(),
  disk_mb: z.number().int(),
  cpu_percent: z.number().int(),
});
/** A row of `plans`. */
export type PlanRow = z.infer<typeof PlanRow>;

/** `plan_prices`: anyone reads the active prices of active plans. */
export const PLAN_PRICE_COLUMNS = "plan_id,term,amount_cents,currency";
/** A row of `plan_prices` as the storefront reads it. */
export const PlanPriceRow = z.object({
  plan_id: z.string(),
  term: z.enum(TERMS),
  amount_cents: z.number().int(),
  currency: z.string(),
});
/** A row of `plan_prices`. */
export type PlanPriceRow = z.infer<typeof PlanPriceRow>;

/** `plan_region_availability`: anyone reads available / sold out, nothing more. */
export const AVAILABILITY_COLUMNS = "plan_id,region,available";
/** A row of `plan_region_availability`. */
export const AvailabilityRow = z.object({
  plan_id: z.string(),
  region: z.string(),
  available: z.boolean(),
});
/** A row of `plan_region_availability`. */
export type AvailabilityRow = z.infer<typeof AvailabilityRow>;

/** Every limit an order is entitled to (columns of `public.orders` and `plans`). */
export const LIMIT_COLUMNS = [
  "memory_mb",
  "disk_mb",
  "cpu_percent",
  "swap_mb",
  "io_weight",
  "databases",
  "backups",
  "allocations",
] as const;

/**
 * The columns of `orders` a signed-in customer may read (their own rows only): the
 * column grants of the migrations, no operator columns (`error_message` and the like).
 */
export const CUSTOMER_ORDER_COLUMNS = [
  "id",
  "user_id",
  "plan_id",
  "item_type",
  "term",
  "region",
  "server_name",
  "status",
  "amount_cents",
  "currency",
  ...LIMIT_COLUMNS,
  "stripe_checkout_url",
  "checkout_expires_at",
  "pterodactyl_server_identifier",
  "customer_message",
  "paid_at",
  "paid_until",
  "subscription_status",
  "cancel_at_period_end",
  "cancel_at",
  "suspend_reason",
  "suspend_at",
  "delete_at",
  "panel_state",
  "created_at",
  "updated_at",
] as const;

/**
 * The columns of `plan_changes` a signed-in customer may read (their own rows only):
 * what a change is and where it stands, never the operator's words.
 */
export const CUSTOMER_PLAN_CHANGE_COLUMNS = [
  "id",
  "order_id",
  "user_id",
  "kind",
  "status",
  "from_plan_id",
  "to_plan_id",
  "amount_cents",
  "currency",
  "limits",
  "amount_due_cents",
  "effective_at",
  "expires_at",
  "customer_message",
  "created_at",
  "updated_at",
  "settled_at",
] as const;
