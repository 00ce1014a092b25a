/**
 * Applying one Stripe event to its order, inside the transaction that records the
 * event: find and lock the order, ask the pure decisions (`reconcile.ts` for payments,
 * `lifecycle.ts` for subscriptions, after reading the subscription's current state from
 * Stripe), and write the answer through `orders.ts`.
 *
 * @module
 */
import type { Alert } from "../_shared/alerts.ts";
import type { Tx } from "../_shared/db.ts";
import { DomainError } from "../_shared/errors.ts";
import {
  changeOrder,
  countOtherPayments,
  type Order,
  readOrder,
  readOrderBySubscription,
  recordOrderEvent,
  recordOrderInvoice,
  statusBeforeSuspension,
} from "../_shared/orders.ts";
import { Stripe } from "../_shared/stripe.ts";
import {
  decideLifecycle,
  isLiveOrder,
  type LifecycleConfig,
  type LifecycleEvent,
  type SubscriptionFacts,
} from "./lifecycle.ts";
import {
  reconcileFirstInvoice,
  reconcileSession,
  type Reconciliation,
  type SessionEventType,
} from "../_shared/reconcile.ts";

/** What applying events needs besides the transaction. */
export interface ApplyDeps {
  stripe: Stripe;
  /** Payment grace and retention after cancellation. */
  lifecycle: LifecycleConfig;
  /** The clock deadlines are counted from (tests pin it). */
  now?: () => Date;
}

/** Who writes on the order's timeline. */
export const ACTOR = "stripe-webhook";

type Outcome = "processed" | "ignored" | "mismatch";

/** What applying an event did, and what to do after commit. */
export interface Applied {
  outcome: Outcome;
  orderId?: string;
  error?: string;
  /** Order to hand to servers-provision after commit. */
  provision?: string;
  /** Order whose panel target changed: handed to sync-server-status after commit. */
  sync?: string;
  alert?: Alert;
}

/** An order id as it appears in metadata. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function idOf(
  value: string | { id: string } | null | undefined,
): string | null {
  return typeof value === "string" ? value : value?.id ?? null;
}

function mismatch(
  event: Stripe.Event,
  orderId: string | undefined,
  problems: string[],
): Applied {
  const error = `Event disagrees with the order: ${problems.join("; ")}`;
  return {
    outcome: "mismatch",
    orderId,
    error,
    alert: {
      title: "Payment event does not match its order",
      message:
        `${error}. Nothing was provisioned; check the payment in Stripe.`,
      orderId,
      eventId: event.id,
      fields: { event_type: event.type },
    },
  };
}

/** Finds and locks the order an event names, or answers why it cannot. */
async function orderFor(
  tx: Tx,
  orderId: string | null | undefined,
  what: string,
): Promise<Order | string> {
  if (!orderId || !UUID.test(orderId)) return `the ${what} carries no order id`;
  return await readOrder(tx, orderId, { lock: true }) ??
    `no order "${orderId}" exists`;
}

/** Applies a reconciliation to the order, inside the event's transaction. */
async function apply(
  tx: Tx,
  event: Stripe.Event,
  order: Order,
  decision: Reconciliation,
): Promise<Applied> {
  if (decision.outcome === "mismatch") {
    return mismatch(event, order.id, decision.problems);
  }
  const { transition, link, note } = decision;
  let provision: string | undefined;
  if (transition || link) {
    const changed = await changeOrder(tx, order.id, {
      to: transition?.to,
      set: {
        stripe_customer_id: order.stripe_customer_id ?? link?.customer,
        stripe_subscription_id: order.stripe_subscription_id ??
          link?.subscription,
        ...(transition?.to === "paid" ? { paid_at: new Date() } : {}),
        ...(transition?.to === "expired"
          ? { error_message: transition.reason }
          : {}),
      },
      actor: ACTOR,
      reason: transition?.reason,
    });
    if (transition?.to === "paid" && changed?.status === "paid") {
      provision = order.id;
    }
  }
  if (note) {
    await recordOrderEvent(tx, order.id, {
      kind: "payment",
      message: note,
      detail: { event_id: event.id },
      actor: ACTOR,
    });
  }
  return { outcome: "processed", orderId: order.id, provision };
}

async function onSession(
  tx: Tx,
  event: Stripe.Event & { type: SessionEventType },
  session: Stripe.Checkout.Session,
): Promise<Applied> {
  const order = await orderFor(
    tx,
    session.client_reference_id ?? session.metadata?.order_id,
    "session",
  );
  if (typeof order === "string") return mismatch(event, undefined, [order]);
  return await apply(
    tx,
    event,
    order,
    reconcileSession(event.type, event.id, {
      id: session.id,
      metadata: session.metadata,
      customer: idOf(session.customer),
      subscription: idOf(session.subscription),
      amount_total: session.amount_total,
      currency: session.currency,
      payment_status: session.payment_status,
    }, order),
  );
}

/** A Stripe call that failed: worth a retry of the whole event (5xx). */
function stripeUnavailable(what: string, error: unknown): DomainError {
  const message = error instanceof Error ? error.message : String(error);
  return new DomainError(
    "unavailable",
    "stripe_unavailable",
    `${what} failed: ${message}`,
    { cause: error },
  );
}

function isNotFound(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeError && error.statusCode === 404;
}

/** The subscription as Stripe has it now; a subscription Stripe no longer knows has ended. */
async function currentSubscription(
  stripe: Stripe,
  subscriptionId: string,
): Promise<SubscriptionFacts> {
  let subscription: Stripe.Subscription;
  try {
    subscription = await stripe.subscriptions.retrieve(subscriptionId);
  } catch (error) {
    if (isNotFound(error)) {
      return {
        id: subscriptionId,
        status: "canceled",
        cancelAtPeriodEnd: false,
        currentPeriodEnd: null,
      };
    }
    throw stripeUnavailable(`Reading subscription "${subscriptionId}"`, error);
  }
  const ends = subscription.items.data.map((item) => item.current_period_end);
  return {
    id: subscription.id,
    status: subscription.status,
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
    currentPeriodEnd: ends.length > 0
      ? new Date(Math.max(...ends) * 1000)
      : null,
  };
}

/**
 * The order a subscription bills, locked; or why the event does not apply (an unknown
 * subscription is ignored, one whose metadata names a different order is a mismatch).
 */
async function subscriptionOrder(
  tx: Tx,
  event: Stripe.Event,
  subscriptionId: string,
  metadata: Record<string, string> | null | undefined,
): Promise<Order | Applied> {
  const named = metadata?.order_id;
  const order = await readOrderBySubscription(tx, subscriptionId, {
    lock: true,
  });
  if (order) {
    if (named && named !== order.id) {
      return mismatch(event, order.id, [
        `the subscription's metadata names order "${named}", the subscription belongs to order "${order.id}"`,
      ]);
    }
    return order;
  }
  const other = named && UUID.test(named)
    ? await readOrder(tx, named, { lock: true })
    : null;
  if (
    other?.stripe_subscription_id &&
    other.stripe_subscription_id !== subscriptionId
  ) {
    return mismatch(event, other.id, [
      `subscription is "${subscriptionId}", the order has "${other.stripe_subscription_id}"`,
    ]);
  }
  return {
    outcome: "ignored",
    orderId: other?.id,
    error: other
      ? `the order is not linked to subscription "${subscriptionId}" yet`
      : `no order has subscription "${subscriptionId}"`,
  };
}

/**
 * Applies a subscription event to its (locked) order: reads the subscription's
 * current state from Stripe, asks `decideLifecycle`, writes the answer.
 */
async function applyLifecycle(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  order: Order,
  subscriptionId: string,
  facts: (order: Order) => Promise<LifecycleEvent>,
): Promise<Applied> {
  if (!isLiveOrder(order.status)) {
    return {
      outcome: "ignored",
      orderId: order.id,
      error: `the order is "${order.status}"`,
    };
  }
  const now = deps.now?.() ?? new Date();
  const subscription = await currentSubscription(deps.stripe, subscriptionId);
  const lifecycleEvent = await facts(order);
  const decision = decideLifecycle(
    {
      ...order,
      statusBeforeSuspension: order.status === "suspended"
        ? await statusBeforeSuspension(tx, order.id)
        : null,
    },
    subscription,
    lifecycleEvent,
    { now, config: deps.lifecycle },
  );
  if (decision.cancelSubscription) {
    try {
      await deps.stripe.subscriptions.cancel(subscriptionId);
    } catch (error) {
      if (!isNotFound(error)) {
        throw stripeUnavailable(
          `Canceling subscription "${subscriptionId}"`,
          error,
        );
      }
    }
  }
  const changed = await changeOrder(tx, order.id, {
    to: decision.to,
    set: decision.set,
    actor: ACTOR,
    reason: decision.reason,
  });
  // A panel action still due (this event's, or an earlier one whose hand-off found
  // the order locked by this transaction) is handed to sync-server-status after commit.
  const due = changed?.panel_action_due_at;
  const sync = decision.sync || (due != null && due.getTime() <= now.getTime());
  for (const note of decision.notes) {
    await recordOrderEvent(tx, order.id, {
      kind: note.kind,
      message: note.message,
      detail: { ...note.detail, event_id: event.id },
      actor: ACTOR,
    });
  }
  return {
    outcome: "processed",
    orderId: order.id,
    sync: sync ? order.id : undefined,
    provision: decision.provision ? order.id : undefined,
  };
}

/** A subscription event: the order its subscription bills, then the lifecycle step. */
async function onSubscriptionEvent(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  subscription: {
    id: string;
    metadata: Record<string, string> | null | undefined;
  },
  facts: (order: Order) => Promise<LifecycleEvent>,
): Promise<Applied> {
  const order = await subscriptionOrder(
    tx,
    event,
    subscription.id,
    subscription.metadata,
  );
  if (!("id" in order)) return order;
  return await applyLifecycle(tx, deps, event, order, subscription.id, facts);
}

/** The latest period an invoice's lines pay for. */
function invoicePeriodEnd(invoice: Stripe.Invoice): Date | null {
  const ends = invoice.lines.data.map((line) => line.period.end);
  return ends.length > 0 ? new Date(Math.max(...ends) * 1000) : null;
}

/** Records a paid invoice once and answers what it adds. */
async function paidInvoiceFacts(
  tx: Tx,
  order: Order,
  invoice: Stripe.Invoice,
): Promise<LifecycleEvent> {
  const periodEnd = invoicePeriodEnd(invoice);
  const firstTime = await recordOrderInvoice(tx, order.id, {
    invoice_id: invoice.id,
    billing_reason: invoice.billing_reason,
    amount_paid: invoice.amount_paid,
    currency: invoice.currency,
    period_end: periodEnd,
  });
  return {
    type: "invoice_paid",
    invoiceId: invoice.id,
    firstTime,
    periodEnd,
  };
}

/** `invoice.paid`: the first invoice confirms the purchase, every one extends paid-until. */
async function onInvoicePaid(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
): Promise<Applied> {
  const details = invoice.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!details || !subscriptionId) return { outcome: "ignored" };
  if (invoice.billing_reason !== "subscription_create") {
    return await onSubscriptionEvent(
      tx,
      deps,
      event,
      { id: subscriptionId, metadata: details.metadata },
      (o) => paidInvoiceFacts(tx, o, invoice),
    );
  }
  const order = await orderFor(tx, details.metadata?.order_id, "subscription");
  if (typeof order === "string") return mismatch(event, undefined, [order]);
  const confirmed = await apply(
    tx,
    event,
    order,
    reconcileFirstInvoice(event.id, {
      metadata: details.metadata,
      customer: idOf(invoice.customer),
      subscription: subscriptionId,
      amount_paid: invoice.amount_paid,
      currency: invoice.currency,
    }, order),
  );
  const paidOrder = confirmed.outcome === "processed"
    ? await readOrder(tx, order.id, { lock: true })
    : null;
  if (!paidOrder || paidOrder.stripe_subscription_id !== subscriptionId) {
    return confirmed;
  }
  const lifecycle = await applyLifecycle(
    tx,
    deps,
    event,
    paidOrder,
    subscriptionId,
    (o) => paidInvoiceFacts(tx, o, invoice),
  );
  return { ...confirmed, sync: lifecycle.sync };
}

/** `invoice.payment_failed`: a customer message and the grace deadline. */
async function onPaymentFailed(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
): Promise<Applied> {
  const details = invoice.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!details || !subscriptionId) return { outcome: "ignored" };
  return await onSubscriptionEvent(
    tx,
    deps,
    event,
    { id: subscriptionId, metadata: details.metadata },
    () => Promise.resolve({ type: "payment_failed", invoiceId: invoice.id }),
  );
}

/** `customer.subscription.*`: follow the subscription's current status. */
async function onSubscriptionChanged(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  subscription: Stripe.Subscription,
): Promise<Applied> {
  return await onSubscriptionEvent(
    tx,
    deps,
    event,
    subscription,
    () => Promise.resolve({ type: "subscription_changed" }),
  );
}

/** The invoice a payment intent paid (a charge has no `invoice` field since basil). */
async function invoiceOfPayment(
  stripe: Stripe,
  paymentIntent: string,
): Promise<Stripe.Invoice | null> {
  try {
    const payments = await stripe.invoicePayments.list({
      payment: { type: "payment_intent", payment_intent: paymentIntent },
      limit: 1,
    });
    const link = payments.data[0]?.invoice;
    if (link === undefined) return null;
    const invoice = typeof link === "string"
      ? await stripe.invoices.retrieve(link)
      : link;
    return "deleted" in invoice && invoice.deleted ? null : invoice;
  } catch (error) {
    throw stripeUnavailable(
      `Finding the invoice of payment "${paymentIntent}"`,
      error,
    );
  }
}

/** `charge.dispute.created` and `charge.refunded`: the order behind the charge's invoice. */
async function onCharge(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
  paymentIntent: string | null,
  facts: (order: Order, invoice: Stripe.Invoice) => Promise<LifecycleEvent>,
): Promise<Applied> {
  if (!paymentIntent) {
    return { outcome: "ignored", error: "the charge has no payment intent" };
  }
  const invoice = await invoiceOfPayment(deps.stripe, paymentIntent);
  const details = invoice?.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!invoice || !subscriptionId) {
    return {
      outcome: "ignored",
      error: `payment "${paymentIntent}" paid no subscription invoice`,
    };
  }
  return await onSubscriptionEvent(
    tx,
    deps,
    event,
    { id: subscriptionId, metadata: details?.metadata },
    (o) => facts(o, invoice),
  );
}

/** Applies one event inside the recording transaction. */
export async function applyEvent(
  tx: Tx,
  deps: ApplyDeps,
  event: Stripe.Event,
): Promise<Applied> {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired":
      return await onSession(tx, event, event.data.object);
    case "invoice.paid":
      return await onInvoicePaid(tx, deps, event, event.data.object);
    case "invoice.payment_failed":
      return await onPaymentFailed(tx, deps, event, event.data.object);
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
      return await onSubscriptionChanged(tx, deps, event, event.data.object);
    case "charge.dispute.created": {
      const dispute = event.data.object;
      return await onCharge(
        tx,
        deps,
        event,
        idOf(dispute.payment_intent),
        () => Promise.resolve({ type: "dispute", disputeId: dispute.id }),
      );
    }
    case "charge.refunded": {
      const charge = event.data.object;
      return await onCharge(
        tx,
        deps,
        event,
        idOf(charge.payment_intent),
        async (order, invoice) => ({
          type: "refund",
          chargeId: charge.id,
          full: charge.refunded || charge.amount_refunded >= charge.amount,
          onlyPayment: await countOtherPayments(tx, order.id, invoice.id) === 0,
        }),
      );
    }
    default:
      return { outcome: "ignored" };
  }
}
