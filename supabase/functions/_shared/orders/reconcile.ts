/**
 * Does a payment event agree with its order, and what follows for the order? Plain
 * functions of the event's facts and the order row; the handler applies the answer.
 *
 * @module
 */
import type { Order, OrderStatus } from "./orders.ts";

/** What a Checkout Session event tells about the payment. */
export interface SessionFacts {
  id: string;
  metadata: Record<string, string> | null;
  customer: string | null;
  subscription: string | null;
  amount_total: number | null;
  currency: string | null;
  payment_status: string;
}

/** An id, whether Stripe sent it as a string or expanded it into its object. */
type Expandable = string | { id: string } | null | undefined;

function idOf(value: Expandable): string | null {
  return typeof value === "string" ? value : value?.id ?? null;
}

/**
 * What a Checkout Session says about its order's payment: the one reading of a
 * session, for the webhook (its parsed event), the sweep (Stripe's answer) and the
 * doctor alike.
 */
export function sessionFacts(session: {
  id: string;
  metadata?: Record<string, string> | null;
  customer?: Expandable;
  subscription?: Expandable;
  amount_total?: number | null;
  currency?: string | null;
  payment_status: string;
}): SessionFacts {
  return {
    id: session.id,
    metadata: session.metadata ?? null,
    customer: idOf(session.customer),
    subscription: idOf(session.subscription),
    amount_total: session.amount_total ?? null,
    currency: session.currency ?? null,
    payment_status: session.payment_status,
  };
}

/** What a first invoice of a subscription tells about the payment. */
export interface InvoiceFacts {
  metadata: Record<string, string> | null;
  customer: string | null;
  subscription: string | null;
  amount_paid: number;
  currency: string;
}

/** What to do with the order. */
export type Reconciliation =
  | { outcome: "mismatch"; problems: string[] }
  | {
    outcome: "processed";
    /** Status to move a `pending` order to, and why. */
    transition?: { to: OrderStatus; reason: string };
    /** Stripe ids to remember on the order (kept when already set). */
    link?: { customer: string | null; subscription: string | null };
    /** A timeline note when nothing else changes. */
    note?: string;
  };

/** The session event types reconciled here. */
export type SessionEventType =
  | "checkout.session.completed"
  | "checkout.session.async_payment_succeeded"
  | "checkout.session.async_payment_failed"
  | "checkout.session.expired";

type OrderFacts = Pick<
  Order,
  | "id"
  | "user_id"
  | "plan_id"
  | "term"
  | "region"
  | "server_name"
  | "status"
  | "amount_cents"
  | "currency"
  | "stripe_checkout_session_id"
  | "stripe_customer_id"
  | "stripe_subscription_id"
>;

/** Where the metadata, customer or subscription of a payment differ from the order. */
export function disagreements(
  order: OrderFacts,
  payment: {
    metadata: Record<string, string> | null;
    customer: string | null;
    subscription: string | null;
  },
): string[] {
  const problems: string[] = [];
  const expected: Record<string, string> = {
    order_id: order.id,
    user_id: order.user_id,
    plan_id: order.plan_id,
    term: order.term,
    region: order.region,
    server_name: order.server_name,
  };
  for (const [key, value] of Object.entries(expected)) {
    const actual = payment.metadata?.[key];
    if (actual !== value) {
      problems.push(
        `${key} is "${actual ?? "(missing)"}", the order has "${value}"`,
      );
    }
  }
  if (
    payment.customer && order.stripe_customer_id &&
    payment.customer !== order.stripe_customer_id
  ) {
    problems.push(
      `customer is "${payment.customer}", the order has "${order.stripe_customer_id}"`,
    );
  }
  if (
    payment.subscription && order.stripe_subscription_id &&
    payment.subscription !== order.stripe_subscription_id
  ) {
    problems.push(
      `subscription is "${payment.subscription}", the order has "${order.stripe_subscription_id}"`,
    );
  }
  return problems;
}

function moneyProblems(
  order: OrderFacts,
  amount: number | null,
  currency: string | null,
  what: string,
): string[] {
  const problems: string[] = [];
  if (amount === null) {
    problems.push(`${what} is missing, the order has ${order.amount_cents}`);
  } else if (amount !== order.amount_cents) {
    problems.push(`${what} is ${amount}, the order has ${order.amount_cents}`);
  }
  if (currency?.toLowerCase() !== order.currency.toLowerCase()) {
    problems.push(
      `currency is "${
        currency ?? "(missing)"
      }", the order has "${order.currency}"`,
    );
  }
  return problems;
}

/** A payment confirmed for the order: `pending` becomes `paid`, later ones stay. */
function paid(
  order: OrderFacts,
  link: { customer: string | null; subscription: string | null },
  reason: string,
): Reconciliation {
  if (order.status === "expired" || order.status === "canceled") {
    return {
      outcome: "mismatch",
      problems: [
        `payment received for an order that is "${order.status}"; refund or restore it by hand`,
      ],
    };
  }
  return {
    outcome: "processed",
    link,
    ...(order.status === "pending"
      ? { transition: { to: "paid" as const, reason } }
      : {}),
  };
}

/** Reconciles a Checkout Session event with its order. */
export function reconcileSession(
  type: SessionEventType,
  eventId: string,
  session: SessionFacts,
  order: OrderFacts,
): Reconciliation {
  const problems = disagreements(order, session);
  if (
    order.stripe_checkout_session_id &&
    order.stripe_checkout_session_id !== session.id
  ) {
    problems.push(
      `session is "${session.id}", the order has "${order.stripe_checkout_session_id}"`,
    );
  }
  problems.push(
    ...moneyProblems(order, session.amount_total, session.currency, "amount"),
  );
  if (problems.length > 0) return { outcome: "mismatch", problems };

  const link = {
    customer: session.customer,
    subscription: session.subscription,
  };
  switch (type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
      if (session.payment_status === "unpaid") {
        return {
          outcome: "processed",
          note: "Checkout completed; the payment is still processing",
        };
      }
      return paid(order, link, `Payment confirmed by ${type} (${eventId})`);
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired": {
      // The checkout ends without payment; an order further along is left alone.
      if (order.status !== "pending") return { outcome: "processed" };
      const reason = type === "checkout.session.expired"
        ? "Checkout expired without payment"
        : "The payment failed";
      return {
        outcome: "processed",
        transition: { to: "expired", reason: `${reason} (${eventId})` },
      };
    }
  }
}

/** Reconciles the first invoice of an order's subscription (`invoice.paid`). */
export function reconcileFirstInvoice(
  eventId: string,
  invoice: InvoiceFacts,
  order: OrderFacts,
): Reconciliation {
  const problems = [
    ...disagreements(order, invoice),
    ...moneyProblems(
      order,
      invoice.amount_paid,
      invoice.currency,
      "amount paid",
    ),
  ];
  if (problems.length > 0) return { outcome: "mismatch", problems };
  return paid(
    order,
    { customer: invoice.customer, subscription: invoice.subscription },
    `Payment confirmed by invoice.paid (${eventId})`,
  );
}
