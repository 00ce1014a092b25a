/**
 * Subscriptions and invoices: the ones a completed checkout creates, and the
 * subscription API (retrieve, update, cancel).
 *
 * @module
 */
import { invalidRequest, noSuch } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type { Customer, Invoice, Subscription } from "./_objects.ts";
import { newId, now, periodEnd } from "./_objects.ts";
import {
  mergeMetadata,
  onlyKnown,
  optBoolean,
  optMetadata,
} from "./_params.ts";
import type { EventRequest, SessionRecord, State } from "./_state.ts";
import { recordEvent } from "./_state.ts";

/**
 * The subscription and first invoice of a completed checkout: `active` and `paid`
 * when the payment went through, `incomplete` and `open` while it is pending.
 */
export function startSubscription(
  state: State,
  record: SessionRecord,
  customer: Customer,
  paid: boolean,
): { subscription: Subscription; invoice: Invoice } {
  const start = now();
  const subId = newId("sub");
  const items = record.lineItems.flatMap((line) => {
    const recurring = line.price.recurring;
    if (recurring === null) return [];
    return [{
      id: newId("si", 14),
      object: "subscription_item" as const,
      created: start,
      current_period_start: start,
      current_period_end: periodEnd(
        start,
        recurring.interval,
        recurring.interval_count,
      ),
      metadata: {},
      price: structuredClone(line.price),
      quantity: line.quantity,
      subscription: subId,
    }];
  });
  const subscription: Subscription = {
    id: subId,
    object: "subscription",
    billing_cycle_anchor: start,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    collection_method: "charge_automatically",
    created: start,
    currency: record.session.currency,
    customer: customer.id,
    ended_at: null,
    items: {
      object: "list",
      data: items,
      has_more: false,
      total_count: items.length,
      url: `/v1/subscription_items?subscription=${subId}`,
    },
    latest_invoice: null,
    livemode: false,
    metadata: { ...record.subscriptionMetadata },
    start_date: start,
    status: paid ? "active" : "incomplete",
    trial_end: null,
    trial_start: null,
  };
  const sequence = 1 + [...state.store.invoices.values()]
    .filter((i) => i.customer === customer.id).length;
  const invoice = firstInvoice(record, subscription, customer, sequence);
  if (paid) payInvoice(invoice);
  subscription.latest_invoice = invoice.id;
  state.store.subscriptions.set(subscription.id, subscription);
  state.store.invoices.set(invoice.id, invoice);
  return { subscription, invoice };
}

function firstInvoice(
  record: SessionRecord,
  subscription: Subscription,
  customer: Customer,
  sequence: number,
): Invoice {
  const id = newId("in");
  const created = subscription.created;
  const firstItem = subscription.items.data[0];
  const lines = record.lineItems.map((line) => {
    const item = subscription.items.data.find((i) =>
      i.price.id === line.price.id
    );
    return {
      id: newId("il"),
      object: "line_item" as const,
      amount: line.amount_total,
      currency: line.currency,
      description: `${line.quantity} × ${line.description}`,
      invoice: id,
      livemode: false as const,
      metadata: {},
      parent: {
        type: "subscription_item_details" as const,
        subscription_item_details: {
          subscription: subscription.id,
          subscription_item: item?.id ?? "",
          proration: false as const,
        },
      },
      period: {
        start: item?.current_period_start ?? created,
        end: item?.current_period_end ?? created,
      },
      pricing: {
        type: "price_details" as const,
        price_details: { price: line.price.id, product: line.price.product },
        unit_amount_decimal: line.price.unit_amount_decimal,
      },
      quantity: line.quantity,
    };
  });
  const total = record.session.amount_total;
  return {
    id,
    object: "invoice",
    amount_due: total,
    amount_paid: 0,
    amount_remaining: total,
    attempt_count: 1,
    attempted: true,
    billing_reason: "subscription_create",
    collection_method: "charge_automatically",
    created,
    currency: record.session.currency,
    customer: customer.id,
    customer_email: customer.email,
    lines: {
      object: "list",
      data: lines,
      has_more: false,
      total_count: lines.length,
      url: `/v1/invoices/${id}/lines`,
    },
    livemode: false,
    metadata: {},
    number: `${customer.invoice_prefix}-${String(sequence).padStart(4, "0")}`,
    parent: {
      type: "subscription_details",
      quote_details: null,
      subscription_details: {
        metadata: { ...subscription.metadata },
        subscription: subscription.id,
      },
    },
    period_start: firstItem?.current_period_start ?? created,
    period_end: firstItem?.current_period_start ?? created,
    status: "open",
    status_transitions: {
      finalized_at: created,
      paid_at: null,
      voided_at: null,
    },
    subtotal: total,
    total,
  };
}

/** Marks an invoice paid in full. */
export function payInvoice(invoice: Invoice): void {
  invoice.status = "paid";
  invoice.amount_paid = invoice.amount_due;
  invoice.amount_remaining = 0;
  invoice.status_transitions.paid_at = now();
}

/** The subscription an id names, or Stripe's 404. */
export function getSubscription(state: State, id: string): Subscription {
  const sub = state.store.subscriptions.get(id);
  if (sub === undefined) throw noSuch("subscription", id);
  return sub;
}

/** `POST /v1/subscriptions/{id}`: metadata and `cancel_at_period_end`. */
export function updateSubscription(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): Subscription {
  onlyKnown(params, [
    "metadata",
    "cancel_at_period_end",
    "proration_behavior",
    "expand",
  ]);
  const sub = getSubscription(state, id);
  const metadata = optMetadata(params, "metadata");
  const cancelAtPeriodEnd = optBoolean(params, "cancel_at_period_end");
  if (
    (sub.status === "canceled" || sub.status === "incomplete_expired") &&
    cancelAtPeriodEnd !== undefined
  ) {
    throw invalidRequest(
      "A canceled subscription can only update its cancellation_details and metadata.",
    );
  }
  const previous: Record<string, unknown> = {};
  const nextMetadata = mergeMetadata(
    sub.metadata,
    metadata,
    params.metadata === "",
  );
  if (JSON.stringify(nextMetadata) !== JSON.stringify(sub.metadata)) {
    previous.metadata = sub.metadata;
    sub.metadata = nextMetadata;
  }
  if (
    cancelAtPeriodEnd !== undefined &&
    cancelAtPeriodEnd !== sub.cancel_at_period_end
  ) {
    previous.cancel_at_period_end = sub.cancel_at_period_end;
    previous.cancel_at = sub.cancel_at;
    previous.canceled_at = sub.canceled_at;
    sub.cancel_at_period_end = cancelAtPeriodEnd;
    sub.cancel_at = cancelAtPeriodEnd
      ? Math.max(...sub.items.data.map((i) => i.current_period_end))
      : null;
    sub.canceled_at = cancelAtPeriodEnd ? now() : null;
  }
  if (Object.keys(previous).length > 0) {
    const event = recordEvent(
      state,
      "customer.subscription.updated",
      sub,
      request,
      previous,
    );
    state.webhooks.deliver([event], "normal");
  }
  return sub;
}

/** `DELETE /v1/subscriptions/{id}`: ends the subscription now. */
export function cancelSubscription(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): Subscription {
  onlyKnown(params, [
    "cancellation_details",
    "invoice_now",
    "prorate",
    "expand",
  ]);
  const sub = getSubscription(state, id);
  if (sub.status === "canceled" || sub.status === "incomplete_expired") {
    throw noSuch("subscription", id, "id", 404);
  }
  const at = now();
  sub.status = "canceled";
  sub.canceled_at = at;
  sub.ended_at = at;
  const event = recordEvent(
    state,
    "customer.subscription.deleted",
    sub,
    request,
  );
  state.webhooks.deliver([event], "normal");
  return sub;
}
