/**
 * Sweep job, the second net behind the event list: an order whose `paid_until` passed
 * more than an hour ago with no renewal recorded has its subscription read back from
 * Stripe (outside any transaction) and followed like a subscription event, through the
 * webhook's lifecycle step. It catches what the event list cannot: an event older than
 * the list's window, or one Stripe no longer keeps. Each order is asked about at most
 * every few hours (`orders.subscription_checked_at`).
 *
 * @module
 */
import {
  changeOrder,
  ordersLapsedWithoutRenewal,
  readOrder,
} from "../orders/orders.ts";
import { DomainError } from "../platform/errors.ts";
import { carryOutSubscriptionCancel } from "../stripe/subscription_cancel.ts";
import { followSubscription } from "../../stripe-webhook/apply.ts";
import type { SubscriptionFacts } from "../../stripe-webhook/lifecycle.ts";
import {
  currentSubscription,
  StripeRefusal,
} from "../../stripe-webhook/read.ts";
import { ACTOR, clock, type Count, type SweepDeps } from "./job.ts";

/** How long after `paid_until` an order without a renewal is looked at. */
export const LAPSE_MS = 3600_000;
/** How long before the same order's subscription is read again. */
export const SUBSCRIPTION_RECHECK_MS = 6 * 3600_000;
/** Subscriptions read per run (one Stripe call each). */
const SUBSCRIPTION_LIMIT = 20;

/** Reads back and follows the subscriptions of orders whose paid-until lapsed. */
export async function followLapsedSubscriptions(
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
): Promise<void> {
  const now = clock(deps);
  const due = await ordersLapsedWithoutRenewal(deps.sql, {
    lapsedBefore: new Date(now.getTime() - LAPSE_MS),
    checkedBefore: new Date(now.getTime() - SUBSCRIPTION_RECHECK_MS),
    limit: SUBSCRIPTION_LIMIT,
  });
  for (const { id: orderId, subscriptionId } of due) {
    if (!more()) return;
    const log = deps.log.child({ order_id: orderId });
    let subscription: SubscriptionFacts | null;
    try {
      subscription = await currentSubscription(deps.stripe, subscriptionId);
    } catch (error) {
      if (error instanceof StripeRefusal) {
        // Asking again at once would be refused again: it waits like any other.
        log.warn("Stripe refused reading a lapsed order's subscription", {
          error: error.message,
        });
        subscription = null;
      } else if (error instanceof DomainError) {
        // Stripe is unavailable: every other order would fail too.
        log.warn("Reading a lapsed order's subscription failed", {
          error: error.message,
        });
        count("subscription.failed");
        return;
      } else throw error;
    }
    const followed = await deps.sql.begin(async (tx) => {
      const before = await readOrder(tx, orderId, { lock: true });
      const applied = subscription
        ? await followSubscription(tx, deps, {
          orderId,
          subscription,
          actor: ACTOR,
          detail: {
            subscription_id: subscriptionId,
            subscription_status: subscription.status,
            read_by: "sweep",
          },
        })
        : null;
      const after = await changeOrder(tx, orderId, {
        set: { subscription_checked_at: now },
        actor: ACTOR,
      });
      const changed = before !== null && after !== null &&
        (before.status !== after.status ||
          before.panel_target !== after.panel_target ||
          before.suspend_at?.getTime() !== after.suspend_at?.getTime());
      return { applied, changed, before };
    });
    if (!subscription || !followed.applied) {
      count("subscription.refused");
      continue;
    }
    const { applied } = followed;
    if (!followed.changed) {
      count("subscription.unchanged");
      continue;
    }
    count("subscription.followed");
    log.warn("Followed a lapsed order's subscription", {
      subscription_status: subscription.status,
    });
    // After the commit: an alert never announces a change that rolled back.
    await deps.alert({
      title: "Subscription change applied by the sweep",
      message:
        `The order was paid until ${followed.before?.paid_until?.toISOString()} and no renewal was recorded; Stripe reports subscription "${subscriptionId}" "${subscription.status}". The sweep applied it: a subscription event was likely never delivered, check the webhook endpoint in Stripe.`,
      orderId,
      fields: {
        subscription_id: subscriptionId,
        subscription_status: subscription.status,
      },
    });
    if (applied.cancel) {
      await carryOutSubscriptionCancel(deps, applied.cancel, ACTOR);
    }
    if (applied.provision) {
      // Taken by the next sweep's provisioning job.
      await deps.sql.begin((tx) =>
        changeOrder(tx, orderId, {
          onlyFrom: ["paid"],
          set: { next_attempt_at: now },
          actor: ACTOR,
        })
      );
    }
    // A changed panel target is due: this sweep's panel_actions job converges it.
  }
}
