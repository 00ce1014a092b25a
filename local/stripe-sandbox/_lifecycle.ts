/**
 * A subscription's life after checkout, driven by control calls under
 * `/_sandbox/subscriptions/{id}/…` (the sandbox's stand-in for time passing and for
 * what customers and banks do): renewals paid or failed, recovery of a failed
 * payment, the end of dunning, disputes, refunds, and the end of a period. Each
 * records the events Stripe sends for it, in Stripe's order, and delivers them.
 *
 * @module
 */
import { z } from "zod";
import type { ControlRequest, ControlRoutes } from "../sandbox-kit/mod.ts";
import {
  endSubscription,
  finalizeInvoice,
  getSubscription,
  isEnded,
  renewalInvoice,
} from "./_billing.ts";
import { controlBody, invalidRequest, json, parseControl } from "./_errors.ts";
import type {
  Charge,
  Invoice,
  StripeEvent,
  Subscription,
  SubscriptionStatus,
} from "./_objects.ts";
import {
  attemptPayment,
  disputeCharge,
  paidChargeOf,
  refundCharge,
} from "./_payments.ts";
import type { State } from "./_state.ts";
import { advanceSchedule } from "./_schedules.ts";
import {
  applyPendingUpdate,
  expirePendingUpdate,
  paymentSucceeds,
  periodEndOf,
} from "./_subscription_update.ts";
import type { DeliveryMode } from "./_webhooks.ts";
import { NO_REQUEST, recordEvent } from "./_state.ts";

const Delivery = z.enum(["normal", "duplicate", "reverse"]).default("normal");

const Renew = z.object({
  // default: as the customer's payment method says (`/_sandbox/customers/{id}/payment_method`)
  outcome: z.enum(["paid", "failed"]).optional(),
  delivery: Delivery,
}).strict();

const Plain = z.object({ delivery: Delivery }).strict();

const DunningExhausted = z.object({
  result: z.enum(["canceled", "unpaid", "paused"]),
  delivery: Delivery,
}).strict();

/** What a lifecycle control call did. */
interface Outcome {
  subscription: Subscription;
  invoice?: Invoice;
  charge?: Charge;
  events: StripeEvent[];
  extra?: Record<string, unknown>;
}

type Action = (
  sub: Subscription,
  body: unknown,
) => { outcome: Outcome; delivery: DeliveryMode };

/** The `POST /_sandbox/subscriptions/:id/…` control routes. */
export function lifecycleRoutes(state: State): ControlRoutes {
  const actions: Record<string, Action> = {
    renew(sub, body) {
      const input = parseControl(Renew, body);
      requireStatus(sub, ["active", "past_due", "trialing"], "renew");
      return {
        outcome: renew(state, sub, paid(state, sub, input.outcome)),
        delivery: input.delivery,
      };
    },
    advance(sub, body) {
      const input = parseControl(Renew, body);
      requireStatus(sub, ["active", "past_due", "trialing"], "advance");
      const outcome = sub.cancel_at_period_end
        ? {
          subscription: sub,
          events: [
            endSubscription(state, sub, "cancellation_requested", NO_REQUEST),
          ],
        }
        : sub.cancel_at !== null && sub.cancel_at <= periodEndOf(sub)
        ? {
          subscription: sub,
          events: [
            endSubscription(state, sub, "cancellation_requested", NO_REQUEST),
          ],
        }
        : renew(state, sub, paid(state, sub, input.outcome));
      return { outcome, delivery: input.delivery };
    },
    recover(sub, body) {
      const { delivery } = parseControl(Plain, body);
      // An active subscription's unpaid invoice is the one its pending update waits for
      requireStatus(
        sub,
        sub.pending_update === null
          ? ["past_due", "unpaid"]
          : ["active", "past_due", "unpaid"],
        "recover",
      );
      return { outcome: recover(state, sub), delivery };
    },
    dunning_exhausted(sub, body) {
      const input = parseControl(DunningExhausted, body);
      requireStatus(sub, ["past_due"], "end dunning for");
      return {
        outcome: exhaustDunning(state, sub, input.result),
        delivery: input.delivery,
      };
    },
    expire_pending_update(sub, body) {
      const { delivery } = parseControl(Plain, body);
      return {
        outcome: { subscription: sub, events: expirePendingUpdate(state, sub) },
        delivery,
      };
    },
    dispute(sub, body) {
      const { delivery } = parseControl(Plain, body);
      return { outcome: dispute(state, sub), delivery };
    },
    refund(sub, body) {
      const { delivery } = parseControl(Plain, body);
      return { outcome: refund(state, sub), delivery };
    },
  };
  return Object.fromEntries(
    Object.entries(actions).map(([name, action]) => [
      `POST /_sandbox/subscriptions/:id/${name}`,
      async (call: ControlRequest) => {
        const sub = getSubscription(state, call.params.id);
        const { outcome, delivery } = action(
          sub,
          await controlBody(call.request),
        );
        await state.webhooks.deliver(outcome.events, delivery);
        return json(200, {
          subscription: outcome.subscription,
          ...(outcome.invoice === undefined
            ? {}
            : { invoice: outcome.invoice }),
          ...(outcome.charge === undefined ? {} : { charge: outcome.charge }),
          ...outcome.extra,
          event_ids: outcome.events.map((e) => e.id),
        });
      },
    ]),
  );
}

/**
 * A new period: `invoice.created` (draft), `invoice.finalized`,
 * `customer.subscription.updated` (period moved on), then the payment:
 * `invoice.paid` + `invoice.payment_succeeded`, or `invoice.payment_failed`
 * and the subscription `past_due`.
 */
function renew(state: State, sub: Subscription, paid: boolean): Outcome {
  const previousItems = structuredClone(sub.items);
  // A schedule's next phase takes over before the new period is billed.
  const phase = advanceSchedule(state, sub);
  const events: StripeEvent[] = [...phase.events];
  if (phase.ended) return { subscription: sub, events };
  const previousLatest = sub.latest_invoice;
  const { invoice } = renewalInvoice(state, sub);
  events.push(recordEvent(state, "invoice.created", invoice, NO_REQUEST));
  finalizeInvoice(state, invoice);
  events.push(recordEvent(state, "invoice.finalized", invoice, NO_REQUEST));
  sub.latest_invoice = invoice.id;
  events.push(
    recordEvent(state, "customer.subscription.updated", sub, NO_REQUEST, {
      items: previousItems,
      latest_invoice: previousLatest,
    }),
  );
  const { charge } = attemptPayment(state, invoice, paid);
  events.push(...paymentEvents(state, sub, invoice, paid));
  return { subscription: sub, invoice, charge, events };
}

/** Pays the subscription's open invoice: `invoice.paid`, back to `active`. */
function recover(state: State, sub: Subscription): Outcome {
  const invoice = [...state.store.invoices.values()].reverse().find((i) =>
    i.parent.subscription_details.subscription === sub.id &&
    i.status === "open"
  );
  if (invoice === undefined) {
    throw invalidRequest(
      `Subscription '${sub.id}' has no open invoice to pay`,
    );
  }
  const { charge } = attemptPayment(state, invoice, true);
  return {
    subscription: sub,
    invoice,
    charge,
    events: [
      ...paymentEvents(state, sub, invoice, true),
      ...applyPendingUpdate(state, invoice, NO_REQUEST),
    ],
  };
}

/** The invoice and subscription events of one payment attempt. */
function paymentEvents(
  state: State,
  sub: Subscription,
  invoice: Invoice,
  paid: boolean,
): StripeEvent[] {
  const events = paid
    ? [
      recordEvent(state, "invoice.paid", invoice, NO_REQUEST),
      recordEvent(state, "invoice.payment_succeeded", invoice, NO_REQUEST),
    ]
    : [recordEvent(state, "invoice.payment_failed", invoice, NO_REQUEST)];
  // The status follows the latest invoice: paying it clears past_due/unpaid.
  const latest = sub.latest_invoice === invoice.id;
  const next: SubscriptionStatus | undefined = paid
    ? (latest && (sub.status === "past_due" || sub.status === "unpaid")
      ? "active"
      : undefined)
    : (sub.status === "active" || sub.status === "trialing"
      ? "past_due"
      : undefined);
  if (next !== undefined) events.push(setStatus(state, sub, next));
  return events;
}

/** A renewal's outcome: the control's, else what the customer's card does. */
function paid(
  state: State,
  sub: Subscription,
  outcome: "paid" | "failed" | undefined,
): boolean {
  return outcome === undefined
    ? paymentSucceeds(state, sub.customer)
    : outcome === "paid";
}

function setStatus(
  state: State,
  sub: Subscription,
  status: SubscriptionStatus,
): StripeEvent {
  const previous = sub.status;
  sub.status = status;
  return recordEvent(state, "customer.subscription.updated", sub, NO_REQUEST, {
    status: previous,
  });
}

/** Smart Retries gave up: the subscription ends, turns `unpaid`, or pauses. */
function exhaustDunning(
  state: State,
  sub: Subscription,
  result: "canceled" | "unpaid" | "paused",
): Outcome {
  const invoice = state.store.invoices.get(sub.latest_invoice ?? "");
  if (invoice?.status === "open") invoice.next_payment_attempt = null;
  const events = result === "canceled"
    ? [endSubscription(state, sub, "payment_failed", NO_REQUEST)]
    : [setStatus(state, sub, result)];
  if (result === "paused") {
    events.push(
      recordEvent(state, "customer.subscription.paused", sub, NO_REQUEST),
    );
  }
  return { subscription: sub, invoice, events };
}

/** A chargeback on the latest paid invoice's charge: `charge.dispute.created`. */
function dispute(state: State, sub: Subscription): Outcome {
  const { invoice, charge } = latestPaidCharge(state, sub);
  const created = disputeCharge(state, charge);
  return {
    subscription: sub,
    invoice,
    charge,
    extra: { dispute: created },
    events: [
      recordEvent(state, "charge.dispute.created", created, NO_REQUEST),
    ],
  };
}

/** A full refund of the latest paid invoice's charge: `charge.refunded`. */
function refund(state: State, sub: Subscription): Outcome {
  const { invoice, charge } = latestPaidCharge(state, sub);
  const previous = {
    amount_refunded: charge.amount_refunded,
    refunded: charge.refunded,
  };
  const created = refundCharge(state, charge);
  return {
    subscription: sub,
    invoice,
    charge,
    extra: { refund: created },
    events: [
      recordEvent(state, "charge.refunded", charge, NO_REQUEST, previous),
      recordEvent(state, "refund.created", created, NO_REQUEST),
    ],
  };
}

function latestPaidCharge(
  state: State,
  sub: Subscription,
): { invoice: Invoice; charge: Charge } {
  const paid = [...state.store.invoices.values()].reverse().filter((i) =>
    i.parent.subscription_details.subscription === sub.id &&
    i.status === "paid"
  );
  for (const invoice of paid) {
    const charge = paidChargeOf(state, invoice);
    if (charge !== undefined) return { invoice, charge };
  }
  throw invalidRequest(`Subscription '${sub.id}' has no paid invoice`);
}

function requireStatus(
  sub: Subscription,
  allowed: SubscriptionStatus[],
  action: string,
): void {
  if (allowed.includes(sub.status)) return;
  throw invalidRequest(
    `Cannot ${action} subscription '${sub.id}': its status is '${sub.status}'${
      isEnded(sub) ? "" : `, expected one of ${allowed.join(", ")}`
    }`,
    { param: "status" },
  );
}
