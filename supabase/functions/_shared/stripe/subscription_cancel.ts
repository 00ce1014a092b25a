/**
 * Canceling an order's Stripe subscription, after commit. The decision is recorded in
 * the transaction that makes it (`orders.subscription_cancel_due_at`); this module makes
 * the call outside any transaction, with the idempotency key `cancel-<order id>`, then
 * records the result in a short transaction guarded by the intent still being there.
 * A temporary failure leaves the intent for the next delivery or the sweep.
 *
 * @module
 */
import type { Alerter } from "../platform/alerts.ts";
import type { Sql } from "../platform/db.ts";
import type { Logger } from "../platform/log.ts";
import {
  leaseDueSubscriptionCancels,
  postponeSubscriptionCancel,
  settleSubscriptionCancel,
} from "../orders/orders.ts";
import { isTemporaryStripeError, Stripe } from "./client.ts";

/** What carrying out a cancellation needs. */
export interface CancelDeps {
  sql: Sql;
  stripe: Stripe;
  alert: Alerter;
  log: Logger;
  now?: () => Date;
}

/** How long a failed cancellation waits before the sweep tries again. */
export const CANCEL_RETRY_MS = 60_000;
/** How long a worker holds a cancellation it took from the sweep's list. */
const CANCEL_LEASE_MS = 5 * 60_000;

/** The idempotency key of an order's cancellation: every try is the same request. */
export function cancelIdempotencyKey(orderId: string): string {
  return `cancel-${orderId}`;
}

/** What one try did. */
export type CancelOutcome = "canceled" | "retry" | "refused";

/**
 * Cancels the subscription of an order whose intent is recorded; never call it inside
 * a transaction. Never throws.
 */
export async function carryOutSubscriptionCancel(
  deps: CancelDeps,
  cancel: { orderId: string; subscriptionId: string },
  actor: string,
): Promise<CancelOutcome> {
  const { orderId, subscriptionId } = cancel;
  const log = deps.log.child({ order_id: orderId });
  try {
    let message = `Subscription "${subscriptionId}" canceled in Stripe`;
    let outcome: CancelOutcome = "canceled";
    try {
      await deps.stripe.subscriptions.cancel(subscriptionId, undefined, {
        idempotencyKey: cancelIdempotencyKey(orderId),
      });
    } catch (error) {
      const status = error instanceof Stripe.errors.StripeError
        ? error.statusCode
        : undefined;
      if (
        isTemporaryStripeError(error) ||
        !(error instanceof Stripe.errors.StripeError)
      ) {
        const at = new Date(
          (deps.now?.() ?? new Date()).getTime() + CANCEL_RETRY_MS,
        );
        await postponeSubscriptionCancel(deps.sql, orderId, at);
        log.warn("Canceling the subscription failed; it will be retried", {
          error,
          retry_at: at.toISOString(),
        });
        return "retry";
      }
      if (status === 404) {
        message =
          `Subscription "${subscriptionId}" is unknown to Stripe: nothing left to cancel`;
      } else {
        outcome = "refused";
        message =
          `Stripe refused to cancel subscription "${subscriptionId}" (${status}): ${
            error instanceof Error ? error.message : String(error)
          }`;
      }
    }
    const settled = await deps.sql.begin((tx) =>
      settleSubscriptionCancel(tx, orderId, { subscriptionId, actor, message })
    );
    if (settled && outcome === "refused") {
      await deps.alert({
        title: "Subscription not canceled in Stripe",
        message:
          `${message}. The order is canceled; cancel the subscription in the Stripe dashboard so billing stops.`,
        orderId,
      });
    }
    log.info(message, { settled });
    return outcome;
  } catch (error) {
    log.error("Recording the subscription cancellation failed", { error });
    return "retry";
  }
}

/** The sweep's step: cancellations whose intent is due (a failed or lost try). */
export async function cancelDueSubscriptions(
  deps: CancelDeps,
  count: (outcome: string) => void,
): Promise<void> {
  const now = deps.now?.() ?? new Date();
  const due = await leaseDueSubscriptionCancels(deps.sql, {
    now,
    leaseUntil: new Date(now.getTime() + CANCEL_LEASE_MS),
    limit: 100,
  });
  for (const order of due) {
    if (!order.stripe_subscription_id) continue;
    const outcome = await carryOutSubscriptionCancel(deps, {
      orderId: order.id,
      subscriptionId: order.stripe_subscription_id,
    }, "sweep");
    count(`subscription_cancel.${outcome}`);
  }
}
