/**
 * Applying one parsed Stripe event to its order, inside the transaction that records
 * the event: find and lock the order, ask the pure decisions (`reconcile.ts` for
 * payments, `lifecycle.ts` for subscriptions, with the subscription's current state
 * read from Stripe before the transaction), and write the answer through `orders.ts`.
 * Nothing here calls Stripe: a cancellation is recorded as an intent and carried out
 * after commit.
 *
 * @module
 */
import type { Alert } from "../_shared/platform/alerts.ts";
import type { Tx } from "../_shared/platform/db.ts";
import { settlePlanChange } from "../_shared/orders/plan_changes.ts";
import {
  changeOrder,
  countOtherPayments,
  type Order,
  readOrder,
  readOrderBySubscription,
  recordOrderEvent,
  recordOrderInvoice,
  statusBeforeSuspension,
} from "../_shared/orders/orders.ts";
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
  sessionFacts,
} from "../_shared/orders/reconcile.ts";
import type { StripeFacts } from "./read.ts";
import type { InvoiceObject, SessionObject, ShopEvent } from "./schemas.ts";

/** What applying events needs besides the transaction. */
export interface ApplyDeps {
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
  /** A subscription to cancel in Stripe after commit (its intent is recorded). */
  cancel?: { orderId: string; subscriptionId: string };
  alert?: Alert;
}

/** An order id as it appears in metadata. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function mismatch(
  event: ShopEvent,
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
      fields: { event_type: event.name },
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
  event: ShopEvent,
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
      customerMessage: note,
      detail: { event_id: event.id },
      actor: ACTOR,
    });
  }
  return { outcome: "processed", orderId: order.id, provision };
}

async function onSession(
  tx: Tx,
  event: Extract<ShopEvent, { session: SessionObject }>,
): Promise<Applied> {
  const { session } = event;
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
    reconcileSession(event.type, event.id, sessionFacts(session), order),
  );
}

/**
 * The order a subscription bills, locked; or why the event does not apply (an unknown
 * subscription is ignored, one whose metadata names a different order is a mismatch).
 */
async function subscriptionOrder(
  tx: Tx,
  event: ShopEvent,
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

/** Who moves an order along its lifecycle, and what its timeline rows carry. */
interface LifecycleSource {
  actor: string;
  detail: Record<string, unknown>;
}

/** An event as the source of a lifecycle step. */
function fromEvent(event: ShopEvent): LifecycleSource {
  return { actor: ACTOR, detail: { event_id: event.id } };
}

/**
 * Applies a subscription event to its (locked) order: the subscription's state read
 * before the transaction, `decideLifecycle` on the locked row, the answer written. A
 * cancellation in Stripe is recorded as due and carried out after commit.
 */
async function applyLifecycle(
  tx: Tx,
  deps: ApplyDeps,
  source: LifecycleSource,
  order: Order,
  known: StripeFacts,
  facts: (order: Order) => Promise<LifecycleEvent>,
): Promise<Applied> {
  const subscription = known.subscription;
  if (!isLiveOrder(order.status) || !subscription) {
    return {
      outcome: "ignored",
      orderId: order.id,
      error: subscription
        ? `the order is "${order.status}"`
        : "the subscription was not read from Stripe",
    };
  }
  const now = deps.now?.() ?? new Date();
  const decision = decideLifecycle(
    {
      ...order,
      statusBeforeSuspension: order.status === "suspended"
        ? await statusBeforeSuspension(tx, order.id)
        : null,
    },
    subscription,
    await facts(order),
    { now, config: deps.lifecycle },
  );
  const changed = await changeOrder(tx, order.id, {
    to: decision.to,
    set: {
      ...decision.set,
      ...(decision.cancelSubscription && !order.subscription_cancel_due_at
        ? { subscription_cancel_due_at: now }
        : {}),
    },
    actor: source.actor,
    reason: decision.reason,
  });
  // A plan change on its way follows the subscription as Stripe has it now: paid
  // (or renewed at the new price) applies it, a pending update gone expires it.
  const planChange = await settlePlanChange(tx, order.id, subscription, {
    actor: source.actor,
    now,
    detail: source.detail,
  });
  const current = planChange === "applied"
    ? await readOrder(tx, order.id)
    : changed;
  // A panel action still due (this event's, or an earlier one whose hand-off found
  // the order locked by this transaction) is handed to sync-server-status after commit.
  const due = current?.panel_action_due_at;
  const sync = decision.sync || (due != null && due.getTime() <= now.getTime());
  for (const note of decision.notes) {
    await recordOrderEvent(tx, order.id, {
      kind: note.kind,
      message: note.message,
      customerMessage: note.kind === "payment"
        ? note.customerMessage ?? note.message
        : undefined,
      detail: { ...note.detail, ...source.detail },
      actor: source.actor,
    });
  }
  // This event's cancellation, or an earlier one still due (a failed call is retried).
  const cancelDue = changed?.subscription_cancel_due_at;
  const cancel = cancelDue != null && cancelDue.getTime() <= now.getTime() &&
      changed?.stripe_subscription_id
    ? { orderId: order.id, subscriptionId: changed.stripe_subscription_id }
    : undefined;
  return {
    outcome: "processed",
    orderId: order.id,
    sync: sync ? order.id : undefined,
    provision: decision.provision ? order.id : undefined,
    cancel,
  };
}

/** A subscription event: the order its subscription bills, then the lifecycle step. */
async function onSubscriptionEvent(
  tx: Tx,
  deps: ApplyDeps,
  event: ShopEvent,
  known: StripeFacts,
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
  return await applyLifecycle(
    tx,
    deps,
    fromEvent(event),
    order,
    known,
    facts,
  );
}

/**
 * Follows a subscription read back from Stripe with no event to go by (the sweep's
 * second net when an order's paid-until passed without a renewal): the same lifecycle
 * step as a subscription event, on the order locked here, while it is still billed by
 * that subscription.
 */
export async function followSubscription(
  tx: Tx,
  deps: ApplyDeps,
  follow: {
    orderId: string;
    subscription: SubscriptionFacts;
    actor: string;
    detail: Record<string, unknown>;
  },
): Promise<Applied> {
  const order = await readOrder(tx, follow.orderId, { lock: true });
  if (order?.stripe_subscription_id !== follow.subscription.id) {
    return {
      outcome: "ignored",
      orderId: follow.orderId,
      error: "the order is no longer billed by this subscription",
    };
  }
  return await applyLifecycle(
    tx,
    deps,
    { actor: follow.actor, detail: follow.detail },
    order,
    { subscription: follow.subscription },
    () => Promise.resolve({ type: "subscription_changed" }),
  );
}

/** The latest period an invoice's lines pay for. */
function invoicePeriodEnd(invoice: InvoiceObject): Date | null {
  const ends = invoice.lines.data.map((line) => line.period.end);
  return ends.length > 0 ? new Date(Math.max(...ends) * 1000) : null;
}

/** Records a paid invoice once and answers what it adds. */
async function paidInvoiceFacts(
  tx: Tx,
  order: Order,
  invoice: InvoiceObject,
): Promise<LifecycleEvent> {
  const periodEnd = invoicePeriodEnd(invoice);
  const firstTime = await recordOrderInvoice(tx, order.id, {
    invoice_id: invoice.id,
    billing_reason: invoice.billing_reason ?? null,
    amount_paid: invoice.amount_paid,
    currency: invoice.currency,
    period_end: periodEnd,
  });
  return {
    type: "invoice_paid",
    invoiceId: invoice.id,
    paid: { amount: invoice.amount_paid, currency: invoice.currency },
    firstTime,
    periodEnd,
  };
}

/** `invoice.paid`: the first invoice confirms the purchase, every one extends paid-until. */
async function onInvoicePaid(
  tx: Tx,
  deps: ApplyDeps,
  event: Extract<ShopEvent, { invoice: InvoiceObject }>,
  known: StripeFacts,
): Promise<Applied> {
  const { invoice } = event;
  const details = invoice.parent?.subscription_details;
  if (!details) return { outcome: "ignored" };
  const subscriptionId = details.subscription;
  const facts = (o: Order) => paidInvoiceFacts(tx, o, invoice);
  if (invoice.billing_reason !== "subscription_create") {
    return await onSubscriptionEvent(tx, deps, event, known, {
      id: subscriptionId,
      metadata: details.metadata,
    }, facts);
  }
  const order = await orderFor(tx, details.metadata?.order_id, "subscription");
  if (typeof order === "string") return mismatch(event, undefined, [order]);
  const confirmed = await apply(
    tx,
    event,
    order,
    reconcileFirstInvoice(event.id, {
      metadata: details.metadata ?? null,
      customer: invoice.customer ?? null,
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
    fromEvent(event),
    paidOrder,
    known,
    facts,
  );
  return { ...confirmed, sync: lifecycle.sync };
}

/** `invoice.payment_failed`: a customer message and the grace deadline. */
async function onPaymentFailed(
  tx: Tx,
  deps: ApplyDeps,
  event: Extract<ShopEvent, { invoice: InvoiceObject }>,
  known: StripeFacts,
): Promise<Applied> {
  const { invoice } = event;
  const details = invoice.parent?.subscription_details;
  if (!details) return { outcome: "ignored" };
  return await onSubscriptionEvent(tx, deps, event, known, {
    id: details.subscription,
    metadata: details.metadata,
  }, () =>
    Promise.resolve({
      type: "payment_failed",
      invoiceId: invoice.id,
      due: { amount: invoice.amount_due, currency: invoice.currency },
    }));
}

/** `charge.dispute.created` and `charge.refunded`: the order behind the charge's invoice. */
async function onCharge(
  tx: Tx,
  deps: ApplyDeps,
  event: ShopEvent,
  known: StripeFacts,
  facts: (order: Order, invoiceId: string) => Promise<LifecycleEvent>,
): Promise<Applied> {
  const invoice = known.invoice;
  if (!invoice) {
    return {
      outcome: "ignored",
      error: "the payment paid no subscription invoice",
    };
  }
  return await onSubscriptionEvent(tx, deps, event, known, {
    id: invoice.subscriptionId,
    metadata: invoice.metadata,
  }, (o) => facts(o, invoice.id));
}

/** Applies one parsed event inside the recording transaction. */
export async function applyEvent(
  tx: Tx,
  deps: ApplyDeps,
  event: ShopEvent,
  known: StripeFacts,
): Promise<Applied> {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired":
      return await onSession(tx, event);
    case "invoice.paid":
      return await onInvoicePaid(tx, deps, event, known);
    case "invoice.payment_failed":
      return await onPaymentFailed(tx, deps, event, known);
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
    case "customer.subscription.pending_update_applied":
    case "customer.subscription.pending_update_expired":
      return await onSubscriptionEvent(
        tx,
        deps,
        event,
        known,
        event.subscription,
        () => Promise.resolve({ type: "subscription_changed" }),
      );
    case "charge.dispute.created": {
      const dispute = event.dispute;
      if (!dispute.payment_intent) {
        return { outcome: "ignored", error: "the dispute has no payment" };
      }
      return await onCharge(
        tx,
        deps,
        event,
        known,
        () => Promise.resolve({ type: "dispute", disputeId: dispute.id }),
      );
    }
    case "charge.refunded": {
      const charge = event.charge;
      if (!charge.payment_intent) {
        return {
          outcome: "ignored",
          error: "the charge has no payment intent",
        };
      }
      return await onCharge(
        tx,
        deps,
        event,
        known,
        async (order, invoiceId) => ({
          type: "refund",
          chargeId: charge.id,
          refunded: {
            amount: charge.amount_refunded,
            currency: charge.currency,
          },
          full: charge.refunded || charge.amount_refunded >= charge.amount,
          onlyPayment: await countOtherPayments(tx, order.id, invoiceId) === 0,
        }),
      );
    }
    case "other":
      return { outcome: "ignored" };
  }
}
