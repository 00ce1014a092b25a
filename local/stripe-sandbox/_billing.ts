/**
 * Subscriptions and invoices: the ones a completed checkout creates, renewal
 * invoices, and the subscription API (retrieve, update, cancel).
 *
 * @module
 */
import { noSuch } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type {
  BillingReason,
  Customer,
  Invoice,
  InvoiceLine,
  Price,
  StripeEvent,
  Subscription,
  SubscriptionItem,
} from "./_objects.ts";
import { newId, now, periodEnd } from "./_objects.ts";
import { onlyKnown } from "./_params.ts";
import { attemptPayment } from "./_payments.ts";
import type { EventRequest, SessionRecord, State } from "./_state.ts";
import { recordEvent } from "./_state.ts";

/** A subscription that has ended for good. */
export function isEnded(sub: Subscription): boolean {
  return sub.status === "canceled" || sub.status === "incomplete_expired";
}

/**
 * The subscription and first invoice of a completed checkout: `active` and `paid`
 * (by a card charge) when the payment went through, `incomplete` and `open` while
 * it is pending.
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
    return [makeItem(subId, line.price, line.quantity, start, {
      start,
      end: periodEnd(start, recurring.interval, recurring.interval_count),
    })];
  });
  const subscription: Subscription = {
    id: subId,
    object: "subscription",
    application: null,
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: start,
    billing_cycle_anchor_config: null,
    billing_mode: {
      type: "flexible",
      flexible: { proration_discounts: "included" },
    },
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, reason: null },
    collection_method: "charge_automatically",
    created: start,
    currency: record.session.currency,
    customer: customer.id,
    customer_account: null,
    days_until_due: null,
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    ended_at: null,
    invoice_settings: {
      account_tax_ids: null,
      custom_fields: null,
      description: null,
      footer: null,
      issuer: { type: "self" },
    },
    items: {
      object: "list",
      data: items,
      has_more: false,
      url: `/v1/subscription_items?subscription=${subId}`,
    },
    latest_invoice: null,
    livemode: false,
    managed_payments: null,
    metadata: { ...record.subscriptionMetadata },
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: {
      payment_method_options: null,
      payment_method_types: null,
      save_default_payment_method: "off",
    },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: start,
    status: paid ? "active" : "incomplete",
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: {
      end_behavior: { missing_payment_method: "create_invoice" },
    },
    trial_start: null,
  };
  const invoice = makeInvoice(
    state,
    subscription,
    customer,
    "subscription_create",
    record.lineItems.map((line) => ({
      price: line.price,
      quantity: line.quantity,
      amount: line.amount_total,
      description: `${line.quantity} × ${line.description}`,
    })),
    { start, end: start },
  );
  finalizeInvoice(state, invoice);
  if (paid) attemptPayment(state, invoice, true);
  subscription.latest_invoice = invoice.id;
  state.store.subscriptions.set(subscription.id, subscription);
  return { subscription, invoice };
}

function makeItem(
  subId: string,
  price: Price,
  quantity: number,
  created: number,
  period: { start: number; end: number },
): SubscriptionItem {
  return {
    id: newId("si", 14),
    object: "subscription_item",
    billing_thresholds: null,
    created,
    current_period_start: period.start,
    current_period_end: period.end,
    current_trial: null,
    discounts: [],
    metadata: {},
    plan: planOf(price),
    price: structuredClone(price),
    quantity,
    subscription: subId,
    tax_rates: [],
  };
}

/** A new item of a subscription for `price`, in the subscription's current period. */
export function addItem(
  sub: Subscription,
  price: Price,
  quantity: number,
): SubscriptionItem {
  const first = sub.items.data[0];
  return makeItem(sub.id, price, quantity, now(), {
    start: first?.current_period_start ?? now(),
    end: first?.current_period_end ?? now(),
  });
}

/** Moves an item to another price (its id and period stay), as an update does. */
export function changePrice(
  item: SubscriptionItem,
  price: Price,
  quantity: number,
): void {
  item.price = structuredClone(price);
  item.plan = planOf(price);
  item.quantity = quantity;
}

/** The deprecated plan object Stripe still derives from a recurring price. */
function planOf(price: Price): SubscriptionItem["plan"] {
  const recurring = price.recurring ?? {
    interval: "month" as const,
    interval_count: 1,
  };
  return {
    id: price.id,
    object: "plan",
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: "per_unit",
    created: price.created,
    currency: price.currency,
    interval: recurring.interval,
    interval_count: recurring.interval_count,
    livemode: false,
    metadata: { ...price.metadata },
    meter: null,
    nickname: price.nickname,
    product: price.product,
    tiers_mode: null,
    transform_usage: null,
    trial_period_days: null,
    usage_type: "licensed",
  };
}

/** One line of a new invoice. */
interface NewLine {
  price: Price;
  quantity: number;
  amount: number;
  description: string;
}

/**
 * A new draft invoice of a subscription, stored; `period` is the invoice's own
 * period (for a renewal, the one that just ended), its lines carry the items' periods.
 */
export function makeInvoice(
  state: State,
  subscription: Subscription,
  customer: Customer | undefined,
  reason: BillingReason,
  newLines: NewLine[],
  period: { start: number; end: number },
  prorations: InvoiceLine[] = [],
): Invoice {
  const id = newId("in");
  const created = now();
  const lines = newLines.map((line): InvoiceLine => {
    const item = subscription.items.data.find((i) =>
      i.price.id === line.price.id
    );
    return {
      id: newId("il"),
      object: "line_item",
      amount: line.amount,
      currency: line.price.currency,
      description: line.description,
      discount_amounts: [],
      discountable: true,
      discounts: [],
      invoice: id,
      livemode: false,
      metadata: {},
      parent: {
        type: "subscription_item_details",
        invoice_item_details: null,
        subscription_item_details: {
          invoice_item: null,
          proration: false,
          proration_details: { credited_items: null },
          subscription: subscription.id,
          subscription_item: item?.id ?? "",
        },
      },
      period: {
        start: item?.current_period_start ?? created,
        end: item?.current_period_end ?? created,
      },
      pretax_credit_amounts: [],
      pricing: {
        type: "price_details",
        price_details: { price: line.price.id, product: line.price.product },
        unit_amount_decimal: line.price.unit_amount_decimal,
      },
      quantity: line.quantity,
      quantity_decimal: String(line.quantity),
      subscription: subscription.id,
      subtotal: line.amount,
      taxes: [],
    };
  });
  lines.unshift(...prorations.map((line) => ({ ...line, invoice: id })));
  const total = lines.reduce((sum, line) => sum + line.amount, 0);
  // A credit beyond the total goes to the customer's balance, not back to the card.
  const due = Math.max(total, 0);
  const invoice: Invoice = {
    id,
    object: "invoice",
    account_country: "US",
    account_name: "Game Server Shop (sandbox)",
    account_tax_ids: null,
    amount_due: due,
    amount_overpaid: 0,
    amount_paid: 0,
    amount_paid_off_stripe: 0,
    amount_remaining: due,
    amount_shipping: 0,
    application: null,
    attempt_count: 0,
    attempted: false,
    auto_advance: true,
    automatic_tax: {
      disabled_reason: null,
      enabled: false,
      liability: null,
      provider: null,
      status: null,
    },
    automatically_finalizes_at: reason === "subscription_cycle"
      ? created + 3600
      : null,
    billing_reason: reason,
    collection_method: "charge_automatically",
    confirmation_secret: null,
    created,
    currency: subscription.currency,
    custom_fields: null,
    customer: subscription.customer,
    customer_account: null,
    customer_address: null,
    customer_email: customer?.email ?? null,
    customer_name: customer?.name ?? null,
    customer_phone: null,
    customer_shipping: null,
    customer_tax_exempt: "none",
    customer_tax_ids: [],
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    due_date: null,
    effective_at: null,
    ending_balance: null,
    footer: null,
    from_invoice: null,
    hosted_invoice_url: null,
    invoice_pdf: null,
    issuer: { type: "self" },
    last_finalization_error: null,
    latest_revision: null,
    lines: {
      object: "list",
      data: lines,
      has_more: false,
      url: `/v1/invoices/${id}/lines`,
    },
    livemode: false,
    metadata: {},
    next_payment_attempt: null,
    number: null,
    on_behalf_of: null,
    parent: {
      type: "subscription_details",
      quote_details: null,
      subscription_details: {
        metadata: { ...subscription.metadata },
        subscription: subscription.id,
      },
    },
    payment_settings: {
      default_mandate: null,
      payment_method_options: null,
      payment_method_types: null,
    },
    period_start: period.start,
    period_end: period.end,
    post_payment_credit_notes_amount: 0,
    pre_payment_credit_notes_amount: 0,
    receipt_number: null,
    rendering: null,
    shipping_cost: null,
    shipping_details: null,
    starting_balance: 0,
    statement_descriptor: null,
    status: "draft",
    status_transitions: {
      finalized_at: null,
      marked_uncollectible_at: null,
      paid_at: null,
      voided_at: null,
    },
    subtotal: total,
    subtotal_excluding_tax: total,
    test_clock: null,
    total,
    total_discount_amounts: [],
    total_excluding_tax: total,
    total_pretax_credit_amounts: [],
    total_taxes: [],
    webhooks_delivered_at: created,
  };
  state.store.invoices.set(id, invoice);
  return invoice;
}

/** Finalizes a draft: it gets its number and URLs and becomes `open`. */
export function finalizeInvoice(state: State, invoice: Invoice): void {
  const customer = state.store.customers.get(invoice.customer);
  const prefix = customer?.invoice_prefix ??
    invoice.customer.slice(4, 12).toUpperCase();
  const sequence = customer?.next_invoice_sequence ??
    1 +
      [...state.store.invoices.values()].filter((i) =>
        i.customer === invoice.customer && i.number !== null
      ).length;
  if (customer !== undefined) customer.next_invoice_sequence = sequence + 1;
  const at = now();
  invoice.number = `${prefix}-${String(sequence).padStart(4, "0")}`;
  invoice.status = "open";
  invoice.effective_at = at;
  invoice.automatically_finalizes_at = null;
  invoice.status_transitions.finalized_at = at;
  invoice.hosted_invoice_url =
    `${state.baseUrl}/_sandbox/invoices/${invoice.id}`;
  invoice.invoice_pdf = `${state.baseUrl}/_sandbox/invoices/${invoice.id}/pdf`;
}

/** The next period's invoice of a subscription, with the period moved on. */
export function renewalInvoice(
  state: State,
  sub: Subscription,
): { invoice: Invoice; previousItems: Subscription["items"] } {
  const previousItems = structuredClone(sub.items);
  const ended = {
    start: Math.min(...sub.items.data.map((i) => i.current_period_start)),
    end: Math.max(...sub.items.data.map((i) => i.current_period_end)),
  };
  for (const item of sub.items.data) {
    const recurring = item.price.recurring;
    if (recurring === null) continue;
    item.current_period_start = item.current_period_end;
    item.current_period_end = periodEnd(
      item.current_period_start,
      recurring.interval,
      recurring.interval_count,
    );
  }
  const products = state.store.products;
  const invoice = makeInvoice(
    state,
    sub,
    state.store.customers.get(sub.customer),
    "subscription_cycle",
    sub.items.data.map((item) => ({
      price: item.price,
      quantity: item.quantity,
      amount: item.price.unit_amount * item.quantity,
      description: `${item.quantity} × ${
        products.get(item.price.product)?.name ?? item.price.id
      } (at ${(item.price.unit_amount / 100).toFixed(2)} / ${
        item.price.recurring?.interval ?? "period"
      })`,
    })),
    ended,
    takePendingItems(state, sub.id),
  );
  return { invoice, previousItems };
}

/** The proration lines waiting for a subscription's next invoice, now taken. */
function takePendingItems(state: State, subId: string): InvoiceLine[] {
  const taken: InvoiceLine[] = [];
  for (const [id, pending] of state.store.pendingItems) {
    if (pending.subscription !== subId) continue;
    taken.push(pending.line);
    state.store.pendingItems.delete(id);
  }
  return taken;
}

/** The subscription an id names, or Stripe's 404. */
export function getSubscription(state: State, id: string): Subscription {
  const sub = state.store.subscriptions.get(id);
  if (sub === undefined) throw noSuch("subscription", id);
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
  if (isEnded(sub)) throw noSuch("subscription", id, "id", 404);
  const event = endSubscription(state, sub, "cancellation_requested", request);
  state.webhooks.deliver([event], "normal");
  return sub;
}

/** Ends a subscription now and records `customer.subscription.deleted`. */
export function endSubscription(
  state: State,
  sub: Subscription,
  reason: "cancellation_requested" | "payment_failed",
  request: EventRequest,
): StripeEvent {
  const at = now();
  sub.status = "canceled";
  sub.canceled_at ??= at;
  sub.ended_at = at;
  sub.cancellation_details.reason ??= reason;
  return recordEvent(state, "customer.subscription.deleted", sub, request);
}
