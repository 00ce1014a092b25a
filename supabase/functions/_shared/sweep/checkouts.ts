/**
 * Sweep job: abandoned checkouts settled with Stripe (outside any transaction), their
 * holds released at the checkout's end, paid ones whose webhook was lost applied.
 *
 * @module
 */
import type { Alert } from "../platform/alerts.ts";
import type { Tx } from "../platform/db.ts";
import {
  changeOrder,
  lockStaleCheckout,
  type Order,
  recordOrderEvent,
  staleCheckouts,
  type StaleCheckoutWindow,
} from "../orders/orders.ts";
import { reconcileSession, sessionFacts } from "../orders/reconcile.ts";
import {
  closeCheckoutSession,
  type ClosedSession,
} from "../stripe/checkout_session.ts";
import { Stripe } from "../stripe/client.ts";
import { ACTOR, clock, type Count, type SweepDeps } from "./job.ts";

/**
 * How long after an order was created without a session being recorded the sweep
 * closes it: the request making the session has long given up by then. An order whose
 * session exists is settled at its end, `checkout_expires_at`, without waiting.
 */
export const CHECKOUT_SETTLE_MS = 5 * 60_000;
/** Abandoned checkouts settled per run (one or two Stripe calls each). */
const CHECKOUT_LIMIT = 50;
/** The sweep's Stripe calls: short and retried once, so an outage costs seconds. */
const STRIPE_CALL = { timeout: 10_000, maxNetworkRetries: 1 };
/** A checkout whose payment is still processing is asked about again after this. */
const PROCESSING_RECHECK_MS = 60 * 60_000;
/** A paid checkout held for an operator is asked about (and alerted) again after this. */
const HELD_RECHECK_MS = 24 * 3600_000;

/** What settling one abandoned checkout did. */
type CheckoutOutcome =
  | "expired"
  | "closed"
  | "unopened"
  | "paid"
  | "processing"
  | "mismatch"
  | "unknown"
  | "failed";

/**
 * Pending orders whose checkout ended without a webhook saying how, or whose session was
 * never created: Stripe says what became of the session (an open one is expired there
 * first), and the order follows, its hold on the node released at the checkout's end.
 */
export async function settleCheckouts(
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
): Promise<void> {
  const now = clock(deps);
  const window: StaleCheckoutWindow = {
    now,
    endedBefore: now,
    createdBefore: new Date(now.getTime() - CHECKOUT_SETTLE_MS),
  };
  const due = await staleCheckouts(deps.sql, {
    ...window,
    limit: CHECKOUT_LIMIT,
  });
  for (const { id: orderId, sessionId } of due) {
    if (!more()) return;
    let settled: { outcome: CheckoutOutcome; alert?: Alert } | null;
    try {
      // Stripe first, outside any transaction; then the order under its lock.
      const closed = sessionId === null
        ? null
        : await closeCheckoutSession(deps.stripe, sessionId, STRIPE_CALL);
      settled = await settleCheckout(deps, orderId, sessionId, closed, window);
    } catch (error) {
      if (!(error instanceof Stripe.errors.StripeError)) throw error;
      // The order is untouched; the next sweep asks again.
      deps.log.warn("Asking Stripe about an abandoned checkout failed", {
        order_id: orderId,
        error: error.message,
        status: error.statusCode ?? null,
      });
      count("checkout.failed");
      // A refusal of this one request leaves the others worth asking; anything else
      // (Stripe down, throttling, the key refused) would fail for them too.
      if (error instanceof Stripe.errors.StripeInvalidRequestError) continue;
      return;
    }
    if (!settled) continue;
    count(`checkout.${settled.outcome}`);
    // After the commit, so an alert never announces a change that rolled back.
    if (settled.alert) await deps.alert(settled.alert);
  }
}

/**
 * Applies what Stripe said about one abandoned checkout, under the order's row lock
 * and only while it still is that abandoned checkout; null when it no longer is one.
 */
async function settleCheckout(
  deps: SweepDeps,
  orderId: string,
  sessionId: string | null,
  closed: ClosedSession | null,
  window: StaleCheckoutWindow,
): Promise<{ outcome: CheckoutOutcome; alert?: Alert } | null> {
  return await deps.sql.begin(async (tx) => {
    const order = await lockStaleCheckout(tx, orderId, window);
    if (!order || order.stripe_checkout_session_id !== sessionId) return null;
    if (sessionId === null || closed === null) {
      // The URL is handed out only after the session is stored: nobody can pay this.
      await expireCheckout(
        tx,
        order,
        "Checkout never opened: no Stripe session was recorded for the order",
        { session_id: null },
      );
      return { outcome: "unopened" };
    }
    if ("unknown" in closed) {
      // Other keys, or a session deleted with its account: a person decides, since a
      // payment made elsewhere must not lose its order.
      const message =
        `Stripe does not know checkout session "${sessionId}": the order keeps its room until an operator settles it`;
      await holdCheckout(tx, order, message, window.now, HELD_RECHECK_MS, {
        session_id: sessionId,
      });
      return {
        outcome: "unknown",
        alert: {
          title: "Checkout session unknown to Stripe",
          message,
          orderId: order.id,
          fields: { session_id: sessionId },
        },
      };
    }
    const { session } = closed;
    const detail = {
      session_id: session.id,
      session_status: session.status,
      payment_status: session.payment_status,
    };
    switch (session.status) {
      case "expired":
        await expireCheckout(
          tx,
          order,
          closed.closedNow
            ? "Checkout still open at its end: expired in Stripe by the sweep"
            : "Checkout expired without payment (Stripe asked by the sweep; its webhook never arrived)",
          detail,
        );
        return { outcome: closed.closedNow ? "closed" : "expired" };
      case "complete":
        return await completeCheckout(tx, order, session, window.now);
      default:
        // Nothing to act on safely: the order waits, and the next sweep asks again.
        deps.log.warn("Stripe answered an unknown checkout session status", {
          order_id: order.id,
          ...detail,
        });
        return { outcome: "failed" };
    }
  });
}

/** Expires an abandoned checkout's order, releasing its reserved room. */
async function expireCheckout(
  tx: Tx,
  order: Order,
  reason: string,
  detail: Record<string, unknown>,
): Promise<void> {
  await changeOrder(tx, order.id, {
    to: "expired",
    onlyFrom: ["pending"],
    set: { error_message: reason },
    actor: ACTOR,
    reason,
  });
  await recordOrderEvent(tx, order.id, {
    kind: "checkout",
    message: reason,
    detail,
    actor: ACTOR,
  });
}

/** Leaves an order pending and records when the sweep asks Stripe about it again. */
async function holdCheckout(
  tx: Tx,
  order: Order,
  message: string,
  now: Date,
  recheckMs: number,
  detail: Record<string, unknown>,
): Promise<void> {
  await recordOrderEvent(tx, order.id, {
    kind: "checkout",
    message,
    detail: {
      ...detail,
      next_check_at: new Date(now.getTime() + recheckMs).toISOString(),
    },
    actor: ACTOR,
  });
}

/**
 * A completed checkout whose webhook never came: applied as `checkout.session.completed`
 * would be (same checks, same result), so the customer who paid gets the server; an
 * operator is told, since a lost payment event means the webhook needs looking at.
 */
async function completeCheckout(
  tx: Tx,
  order: Order,
  session: Stripe.Checkout.Session,
  now: Date,
): Promise<{ outcome: CheckoutOutcome; alert?: Alert }> {
  const detail = {
    session_id: session.id,
    session_status: session.status,
    payment_status: session.payment_status,
  };
  const decision = reconcileSession(
    "checkout.session.completed",
    ACTOR,
    sessionFacts(session),
    order,
  );
  if (decision.outcome === "mismatch") {
    const message =
      `Checkout session "${session.id}" was completed but disagrees with the order: ${
        decision.problems.join("; ")
      }`;
    await holdCheckout(tx, order, message, now, HELD_RECHECK_MS, detail);
    return {
      outcome: "mismatch",
      alert: {
        title: "Paid checkout does not match its order",
        message:
          `${message}. Nothing was provisioned; check the payment in Stripe.`,
        orderId: order.id,
        fields: { session_id: session.id },
      },
    };
  }
  if (decision.transition?.to !== "paid") {
    // Completed with the payment still processing: its async webhook decides.
    await holdCheckout(
      tx,
      order,
      "Checkout completed; the payment is still processing",
      now,
      PROCESSING_RECHECK_MS,
      detail,
    );
    return { outcome: "processing" };
  }
  const reason =
    `Payment confirmed by the sweep: Stripe reports checkout session "${session.id}" complete and paid, and its webhook never arrived`;
  await changeOrder(tx, order.id, {
    to: "paid",
    onlyFrom: ["pending"],
    set: {
      stripe_customer_id: order.stripe_customer_id ??
        decision.link?.customer ?? null,
      stripe_subscription_id: order.stripe_subscription_id ??
        decision.link?.subscription ?? null,
      paid_at: now,
      // Provisioning takes it in this same sweep.
      next_attempt_at: now,
    },
    actor: ACTOR,
    reason,
  });
  await recordOrderEvent(tx, order.id, {
    kind: "payment",
    message: reason,
    detail,
    actor: ACTOR,
  });
  return {
    outcome: "paid",
    alert: {
      title: "Paid checkout whose webhook never arrived",
      message:
        `Stripe reports checkout session "${session.id}" paid, but no checkout.session.completed reached the shop. The sweep applied it and provisioning follows; check the webhook endpoint's deliveries in Stripe.`,
      orderId: order.id,
      fields: { session_id: session.id },
    },
  };
}
