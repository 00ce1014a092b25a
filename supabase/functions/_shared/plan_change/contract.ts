/**
 * The request and answer shapes of `change-server-plan` and
 * `create-billing-portal-session`.
 *
 * @module
 */
import { z } from "zod";
import type { PlanChangeKind } from "../orders/plan_changes.ts";

/** No control characters: Postgres refuses NUL in text, and none belongs in an id. */
const PRINTABLE = /^\P{Cc}*$/u;

/** `change-server-plan`'s body: a change (or its preview), or a cancellation. */
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
/** `change-server-plan`'s body. */
export type ChangeServerPlanRequest = z.infer<typeof ChangeServerPlanRequest>;

/** `change-server-plan`'s answer to a preview (`{preview}`). */
export interface PlanChangePreview {
  kind: PlanChangeKind;
  order_id: string;
  from_plan_id: string;
  to_plan_id: string;
  /** What is charged now (Stripe's proration preview), in the currency's cents. */
  amount_due_cents: number;
  currency: string;
  /** An upgrade takes effect now; a downgrade at the end of the paid period. */
  effective: "now" | "period_end";
  effective_at: string | null;
  limits: { memory_mb: number; disk_mb: number };
  /** Memory a game reads at start (Java's heap) changes at its next restart. */
  restart_needed: boolean;
}

/** `create-billing-portal-session`'s body. */
export const BillingPortalRequest = z.strictObject({
  order_id: z.uuid().optional(),
  return_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
});
/** `create-billing-portal-session`'s body. */
export type BillingPortalRequest = z.infer<typeof BillingPortalRequest>;
