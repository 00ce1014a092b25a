/**
 * What a subscription event means for its order: a plain function of the order, the
 * subscription as Stripe has it NOW (read back, never the event's snapshot), the
 * event's own facts, the time and the configured deadlines. It changes only the
 * desired state (status, panel target, suspension reason, grace and retention
 * deadlines, paid-until); the sweep and `sync-server-status` make the panel follow.
 *
 * @module
 */
import { resumedStatus } from "../_shared/orders/lifecycle.ts";
import type {
  Order,
  OrderFields,
  OrderStatus,
  PanelTarget,
  SuspendReason,
} from "../_shared/orders/orders.ts";

/** Deadlines after a failed payment and after a cancellation. */
export interface LifecycleConfig {
  /** How long a server keeps running after a failed payment. */
  paymentGraceSeconds: number;
  /** How long a canceled order's suspended server is kept before deletion. */
  retentionSeconds: number;
}

/** A subscription's statuses (Stripe API `2026-10-28.endive`). */
export type SubscriptionStatus =
  | "incomplete"
  | "incomplete_expired"
  | "trialing"
  | "active"
  | "past_due"
  | "unpaid"
  | "canceled"
  | "paused";

/** The subscription as Stripe reports it now. */
export interface SubscriptionFacts {
  id: string;
  /** A status this code does not know (a newer API's) is stored and otherwise left alone. */
  status: SubscriptionStatus | (string & Record<never, never>);
  /** A cancellation is coming (`cancel_at_period_end`, or the portal's `cancel_at`). */
  cancelAtPeriodEnd: boolean;
  /** When the coming cancellation takes effect (null: none). */
  cancelAt: Date | null;
  /** The latest `items.data[].current_period_end`. */
  currentPeriodEnd: Date | null;
  /** The price the subscription bills now (its first item's). */
  priceId: string | null;
  /** A plan change waits for its invoice to be paid (`pending_update`). */
  pendingUpdate: boolean;
}

/** An amount in the currency's smallest unit, as Stripe gives it. */
export interface Money {
  amount: number;
  currency: string;
}

/** Currencies Stripe counts in whole units, and those with three decimals. */
const ZERO_DECIMAL = new Set([
  "bif",
  "clp",
  "djf",
  "gnf",
  "jpy",
  "kmf",
  "krw",
  "mga",
  "pyg",
  "rwf",
  "ugx",
  "vnd",
  "vuv",
  "xaf",
  "xof",
  "xpf",
]);
const THREE_DECIMAL = new Set(["bhd", "jod", "kwd", "omr", "tnd"]);

/** Money as a customer reads it: `12.00 EUR`. */
export function formatMoney(money: Money): string {
  const code = money.currency.toLowerCase();
  const decimals = ZERO_DECIMAL.has(code) ? 0 : THREE_DECIMAL.has(code) ? 3 : 2;
  return `${
    (money.amount / 10 ** decimals).toFixed(decimals)
  } ${code.toUpperCase()}`;
}

/** What the event itself adds to the subscription's current state. */
export type LifecycleEvent =
  | {
    type: "invoice_paid";
    invoiceId: string;
    /** What the invoice paid. */
    paid: Money;
    /** False when this invoice was applied before (a redelivery or a sibling event). */
    firstTime: boolean;
    /** The end of the period the invoice pays for (its lines' `period.end`). */
    periodEnd: Date | null;
  }
  | { type: "payment_failed"; invoiceId: string; due: Money }
  | { type: "subscription_changed" }
  | { type: "dispute"; disputeId: string }
  | {
    type: "refund";
    chargeId: string;
    /** What was refunded of the charge so far. */
    refunded: Money;
    /** The whole charge was refunded. */
    full: boolean;
    /** The refunded invoice is the order's only payment. */
    onlyPayment: boolean;
  };

/** The order's columns the decision reads. */
export type LifecycleOrder =
  & Pick<
    Order,
    | "status"
    | "paid_until"
    | "subscription_status"
    | "cancel_at_period_end"
    | "cancel_at"
    | "panel_target"
    | "suspend_reason"
    | "suspend_at"
    | "delete_at"
    | "pterodactyl_server_id"
  >
  & {
    /** The status the order had when it was suspended (from its timeline). */
    statusBeforeSuspension: OrderStatus | null;
  };

/** A timeline row: `payment` rows are shown to the customer, in customer words. */
export type LifecycleNote =
  | {
    kind: "payment";
    message: string;
    /** What the order's owner reads (default: `message`). */
    customerMessage?: string;
    detail?: Record<string, unknown>;
  }
  | { kind: "note"; message: string; detail?: Record<string, unknown> };

/** What to do with the order. */
export interface LifecycleChange {
  /** Nothing applies to an order in this state (not paid yet, or expired). */
  ignored?: string;
  /** New status, and why (the status row's message). */
  to?: OrderStatus;
  reason?: string;
  /** Columns that change (only those). */
  set: OrderFields;
  notes: LifecycleNote[];
  /** Cancel the subscription in Stripe so billing stops (a full refund). */
  cancelSubscription: boolean;
  /** The panel target changed: hand the order to sync-server-status. */
  sync: boolean;
  /** The order went back to `paid`: hand it to servers-provision. */
  provision: boolean;
}

/** Whether subscription events apply to an order in this status (it was paid). */
export function isLiveOrder(status: OrderStatus): boolean {
  return status !== "pending" && status !== "expired";
}

const GOOD_STANDING: readonly string[] = [
  "active",
  "trialing",
] satisfies SubscriptionStatus[];
const ENDED: readonly string[] = [
  "canceled",
  "incomplete_expired",
] satisfies SubscriptionStatus[];
const SUSPENDING: readonly string[] = [
  "unpaid",
  "paused",
] satisfies SubscriptionStatus[];

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function later(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.getTime() >= b.getTime() ? a : b;
}

function sameTime(a: Date | null, b: Date | null): boolean {
  return (a?.getTime() ?? null) === (b?.getTime() ?? null);
}

/** Decides what a subscription event changes on its order. */
export function decideLifecycle(
  order: LifecycleOrder,
  subscription: SubscriptionFacts,
  event: LifecycleEvent,
  options: { now: Date; config: LifecycleConfig },
): LifecycleChange {
  const { now, config } = options;
  const change: LifecycleChange = {
    set: {},
    notes: [],
    cancelSubscription: false,
    sync: false,
    provision: false,
  };
  if (!isLiveOrder(order.status)) {
    change.ignored = `the order is "${order.status}", not a paid order`;
    return change;
  }

  let status = order.status;
  let reason: string | undefined;
  let target: PanelTarget = order.panel_target;
  let suspendReason: SuspendReason | null = order.suspend_reason;
  let suspendAt = order.suspend_at;
  let deleteAt = order.delete_at;
  let paidUntil = order.paid_until;
  const notes: LifecycleNote[] = [];
  const canceled = order.status === "canceled";

  // What the customer sees on "My servers": status and a scheduled cancellation.
  if (subscription.cancelAtPeriodEnd !== order.cancel_at_period_end) {
    const end = subscription.cancelAt ?? subscription.currentPeriodEnd ??
      order.paid_until;
    notes.push({
      kind: "payment",
      message: subscription.cancelAtPeriodEnd
        ? `Your subscription ends${
          end ? ` on ${day(end)}` : " at the end of the period"
        }; the server keeps running until then`
        : "Cancellation withdrawn: your subscription renews as usual",
    });
  }

  let endNow = ENDED.includes(subscription.status);
  switch (event.type) {
    case "invoice_paid":
      if (event.firstTime) {
        paidUntil = later(
          paidUntil,
          event.periodEnd ?? subscription.currentPeriodEnd,
        );
        const received = `Payment of ${formatMoney(event.paid)} received`;
        notes.push({
          kind: "payment",
          message: paidUntil
            ? `Payment received: paid until ${day(paidUntil)}`
            : "Payment received",
          customerMessage: paidUntil
            ? `${received}; paid until ${day(paidUntil)}`
            : received,
          detail: { invoice_id: event.invoiceId, ...event.paid },
        });
      }
      break;
    case "payment_failed":
      if (GOOD_STANDING.includes(subscription.status)) {
        // A late failure of an invoice that has since been paid changes nothing.
        notes.push({
          kind: "note",
          message:
            `A payment attempt failed (invoice ${event.invoiceId}), but the subscription is "${subscription.status}" now`,
        });
      }
      break;
    case "dispute":
      if (!canceled && target !== "deleted") {
        target = "suspended";
        suspendReason = "dispute";
        suspendAt = null;
        if (status !== "suspended") {
          status = "suspended";
          reason = `Payment disputed (${event.disputeId})`;
        }
      }
      notes.push({
        kind: "payment",
        message: canceled
          ? "A payment on this order is disputed"
          : "A payment on this order is disputed: the server is suspended until the dispute is settled",
        detail: { dispute_id: event.disputeId },
      });
      break;
    case "refund":
      if (event.full && event.onlyPayment) {
        endNow = true;
        change.cancelSubscription = !ENDED.includes(subscription.status);
      }
      notes.push({
        kind: "payment",
        message: event.full && event.onlyPayment
          ? "Your payment was refunded in full: the subscription is canceled"
          : "A refund was issued on this order",
        customerMessage: `Refund of ${formatMoney(event.refunded)} issued${
          event.full && event.onlyPayment
            ? "; the subscription is canceled"
            : ""
        }`,
        detail: { charge_id: event.chargeId, ...event.refunded },
      });
      break;
    case "subscription_changed":
      break;
  }

  if (endNow) {
    if (!canceled) {
      status = "canceled";
      reason = event.type === "refund"
        ? `Payment refunded (${event.chargeId})`
        : `Subscription ${subscription.id} is "${subscription.status}"`;
    }
    if (target !== "deleted") {
      target = "suspended";
      suspendReason = "canceled";
    }
    suspendAt = null;
    if (deleteAt === null && order.panel_target !== "deleted") {
      deleteAt = new Date(now.getTime() + config.retentionSeconds * 1000);
      notes.push({
        kind: "payment",
        message:
          `Subscription ended: the server is suspended and will be deleted on ${
            day(deleteAt)
          }`,
        detail: { delete_at: deleteAt.toISOString() },
      });
    }
  } else if (!canceled && target !== "deleted") {
    if (SUSPENDING.includes(subscription.status)) {
      // Dunning is over: suspend now, unless a stronger reason already holds it.
      if (target === "running") {
        target = "suspended";
        suspendReason = "billing";
        suspendAt = null;
        if (status !== "suspended") {
          status = "suspended";
          reason =
            `Subscription ${subscription.id} is "${subscription.status}"`;
        }
        notes.push({
          kind: "payment",
          message:
            "Payment overdue: the server is suspended until the invoice is paid",
        });
      }
    } else if (subscription.status === "past_due") {
      if (target === "running" && suspendAt === null) {
        suspendAt = new Date(now.getTime() + config.paymentGraceSeconds * 1000);
      }
      if (event.type === "payment_failed" && target === "running") {
        const failed = `Payment of ${
          formatMoney(event.due)
        } failed; we will retry`;
        notes.push({
          kind: "payment",
          message: suspendAt
            ? `Your payment failed: please update your payment method before ${suspendAt.toISOString()}, when the server will be suspended`
            : "Your payment failed: please update your payment method",
          customerMessage: suspendAt
            ? `${failed}. Please update your payment method before ${suspendAt.toISOString()}, when the server will be suspended`
            : `${failed}. Please update your payment method`,
          detail: {
            invoice_id: event.invoiceId,
            suspend_at: suspendAt?.toISOString() ?? null,
            ...event.due,
          },
        });
      }
    } else if (GOOD_STANDING.includes(subscription.status)) {
      suspendAt = null;
      if (target === "suspended" && suspendReason === "billing") {
        target = "running";
        suspendReason = null;
        // With a server, the status follows what the panel confirms (converge's
        // unsuspend moves it); without one, it goes back to where it was.
        if (status === "suspended" && order.pterodactyl_server_id === null) {
          status = resumedStatus(order);
          reason =
            `Payment received: subscription ${subscription.id} is "${subscription.status}"`;
          change.provision = status === "paid";
        }
        notes.push({
          kind: "payment",
          message: "Payment received: the server is unsuspended",
        });
      } else if (order.suspend_at !== null && target === "running") {
        notes.push({
          kind: "payment",
          message: "Payment received: the server will not be suspended",
        });
      }
    }
  }

  const set: OrderFields = {};
  if (subscription.status !== order.subscription_status) {
    set.subscription_status = subscription.status;
  }
  if (subscription.cancelAtPeriodEnd !== order.cancel_at_period_end) {
    set.cancel_at_period_end = subscription.cancelAtPeriodEnd;
  }
  if (!sameTime(subscription.cancelAt, order.cancel_at)) {
    set.cancel_at = subscription.cancelAt;
  }
  if (!sameTime(paidUntil, order.paid_until)) set.paid_until = paidUntil;
  if (!sameTime(suspendAt, order.suspend_at)) set.suspend_at = suspendAt;
  if (!sameTime(deleteAt, order.delete_at)) set.delete_at = deleteAt;
  if (suspendReason !== order.suspend_reason) {
    set.suspend_reason = suspendReason;
  }
  if (target !== order.panel_target) {
    set.panel_target = target;
    // The sweep (and the immediate hand-off) act on the panel from now on.
    set.panel_action_due_at = now;
    set.panel_action_attempts = 0;
    change.sync = true;
  }
  change.set = set;
  change.notes = notes;
  if (status !== order.status) {
    change.to = status;
    change.reason = reason;
  }
  return change;
}
