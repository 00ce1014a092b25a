/**
 * `POST /v1/subscriptions/{id}`: metadata, cancellation (`cancel_at_period_end`,
 * `cancel_at`; refused while a schedule manages the subscription), and price
 * changes with `proration_behavior`, `proration_date` and `payment_behavior`
 * (`pending_if_incomplete` keeps the change in `pending_update` until its invoice
 * is paid). Also `POST /v1/invoices/{id}/pay` and the end of a pending update.
 *
 * @module
 */
import {
  finalizeInvoice,
  getSubscription,
  isEnded,
  makeInvoice,
} from "./_billing.ts";
import { invalidRequest, StripeApiError, unsupported } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type {
  CancellationFeedback,
  Invoice,
  StripeEvent,
  Subscription,
} from "./_objects.ts";
import { now } from "./_objects.ts";
import {
  mergeMetadata,
  onlyKnown,
  optArray,
  optBoolean,
  optInteger,
  optMetadata,
  optString,
} from "./_params.ts";
import { attemptPayment } from "./_payments.ts";
import {
  applyChanges,
  itemsAfter,
  parseItems,
  prorationBehavior,
  prorationLines,
} from "./_prorations.ts";
import type { EventRequest, State } from "./_state.ts";
import { NO_REQUEST, recordEvent } from "./_state.ts";

const PAYMENT_BEHAVIORS = [
  "allow_incomplete",
  "default_incomplete",
  "error_if_incomplete",
  "pending_if_incomplete",
] as const;

type PaymentBehavior = typeof PAYMENT_BEHAVIORS[number];

/** The parameters Stripe accepts beside `payment_behavior=pending_if_incomplete`. */
const PENDING_ALLOWED = [
  "items",
  "payment_behavior",
  "proration_behavior",
  "proration_date",
  "billing_cycle_anchor",
  "trial_end",
  "add_invoice_items",
  "expand",
];

/** How long a pending update waits for its invoice (Stripe: at most 23 hours). */
const PENDING_LIFETIME = 23 * 3600;

/** Whether the customer's next charge succeeds (`/_sandbox/customers/{id}/payment_method`). */
export function paymentSucceeds(state: State, customerId: string): boolean {
  return state.store.paymentMethods.get(customerId)?.outcome !== "declines";
}

/** The error Stripe answers when the card on file is declined. */
export function cardDeclined(): StripeApiError {
  return new StripeApiError(
    402,
    "card_error",
    "Your card has insufficient funds.",
    { code: "card_declined", decline_code: "insufficient_funds" },
  );
}

/** The message of a cancellation change on a subscription a schedule manages. */
export function managedBySchedule(scheduleId: string): StripeApiError {
  return invalidRequest(
    `The subscription is managed by the subscription schedule \`${scheduleId}\`, and updating any cancelation behavior directly is not allowed. Please update the schedule instead.`,
  );
}

/** `POST /v1/subscriptions/{id}`. */
export function updateSubscription(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): Subscription {
  onlyKnown(params, [
    "metadata",
    "cancel_at_period_end",
    "cancel_at",
    "cancellation_details",
    ...PENDING_ALLOWED,
  ]);
  const sub = getSubscription(state, id);
  const behavior = paymentBehavior(params);
  if (behavior === "pending_if_incomplete") {
    const extra = Object.keys(params).find((k) => !PENDING_ALLOWED.includes(k));
    if (extra !== undefined) {
      throw invalidRequest(
        `The following parameters cannot be used with \`payment_behavior=pending_if_incomplete\`: ${extra}. Only the following parameters are allowed: ${
          PENDING_ALLOWED.filter((k) => k !== "payment_behavior").join(", ")
        }.`,
        { param: extra },
      );
    }
  }
  for (const key of ["trial_end", "add_invoice_items"]) {
    if (params[key] !== undefined) throw unsupported(key, `${key} on updates`);
  }
  const anchor = optString(params, "billing_cycle_anchor");
  if (anchor !== undefined && anchor !== "unchanged") {
    throw unsupported(
      "billing_cycle_anchor",
      "billing_cycle_anchor other than unchanged",
    );
  }
  const metadata = optMetadata(params, "metadata");
  const cancelAtPeriodEnd = optBoolean(params, "cancel_at_period_end");
  const cancelAt = cancelAtParam(params);
  const rawItems = optArray(params, "items");
  const proration = prorationBehavior(params);
  const at = optInteger(params, "proration_date") ?? now();
  const ending = cancelAtPeriodEnd !== undefined || cancelAt !== undefined;
  if (isEnded(sub) && (ending || rawItems !== undefined)) {
    throw invalidRequest(
      "A canceled subscription can only update its cancellation_details and metadata.",
    );
  }
  if (ending && sub.schedule !== null) throw managedBySchedule(sub.schedule);
  const changes = rawItems === undefined
    ? []
    : parseItems(state, sub, rawItems, "items");
  const lines = proration === "none"
    ? []
    : prorationLines(state, sub, changes, at);
  const charge = lines.reduce((sum, l) => sum + l.amount, 0);
  const invoiceNow = proration === "always_invoice" && lines.length > 0;
  const succeeds = paymentSucceeds(state, sub.customer);
  if (
    behavior === "error_if_incomplete" && invoiceNow && charge > 0 &&
    !succeeds
  ) {
    throw cardDeclined();
  }

  const previous: Record<string, unknown> = {};
  const events: StripeEvent[] = [];
  if (behavior === "pending_if_incomplete" && invoiceNow && charge > 0) {
    events.push(
      ...pendingChange(
        state,
        sub,
        lines,
        succeeds,
        request,
        () => applyChanges(sub, changes),
        itemsAfter(sub, changes),
      ),
    );
    state.webhooks.deliver(events, "normal");
    return sub;
  }
  const nextMetadata = mergeMetadata(
    sub.metadata,
    metadata,
    params.metadata === "",
  );
  if (JSON.stringify(nextMetadata) !== JSON.stringify(sub.metadata)) {
    previous.metadata = sub.metadata;
    sub.metadata = nextMetadata;
  }
  if (ending) {
    const next = cancelAtPeriodEnd === true
      ? { atPeriodEnd: true, at: periodEndOf(sub) }
      : cancelAtPeriodEnd === false && cancelAt === undefined
      ? { atPeriodEnd: false, at: null }
      : { atPeriodEnd: false, at: cancelAt ?? null };
    setCancellation(sub, next, previous, feedbackOf(params));
  } else if (feedbackOf(params) !== undefined) {
    previous.cancellation_details = structuredClone(sub.cancellation_details);
    sub.cancellation_details = {
      ...sub.cancellation_details,
      ...feedbackOf(params),
    };
  }
  if (changes.length > 0) {
    previous.items = structuredClone(sub.items);
    applyChanges(sub, changes);
  }
  let invoice: Invoice | undefined;
  if (invoiceNow) {
    invoice = makeInvoice(
      state,
      sub,
      state.store.customers.get(sub.customer),
      "subscription_update",
      [],
      { start: at, end: at },
      lines,
    );
    previous.latest_invoice = sub.latest_invoice;
    sub.latest_invoice = invoice.id;
  } else {
    for (const line of lines) {
      state.store.pendingItems.set(
        line.parent.subscription_item_details.invoice_item ?? line.id,
        { subscription: sub.id, line },
      );
    }
  }
  if (Object.keys(previous).length > 0) {
    events.push(
      recordEvent(
        state,
        "customer.subscription.updated",
        sub,
        request,
        previous,
      ),
    );
  }
  if (invoice !== undefined) {
    events.push(...collect(state, sub, invoice, behavior, succeeds, request));
  }
  state.webhooks.deliver(events, "normal");
  return sub;
}

function paymentBehavior(params: FormObject): PaymentBehavior {
  const value = optString(params, "payment_behavior");
  if (value === undefined) return "allow_incomplete";
  if (!(PAYMENT_BEHAVIORS as readonly string[]).includes(value)) {
    throw invalidRequest(
      `Invalid payment_behavior: must be one of ${
        PAYMENT_BEHAVIORS.join(", ")
      }`,
      { param: "payment_behavior" },
    );
  }
  return value as PaymentBehavior;
}

function cancelAtParam(params: FormObject): number | null | undefined {
  if (params.cancel_at === "") return null;
  return optInteger(params, "cancel_at");
}

function feedbackOf(params: FormObject) {
  const details = params.cancellation_details;
  if (
    typeof details !== "object" || details === null || Array.isArray(details)
  ) {
    return undefined;
  }
  return {
    feedback:
      (optString(details, "feedback", "cancellation_details[feedback]") ||
        null) as CancellationFeedback | null,
    comment: optString(details, "comment", "cancellation_details[comment]") ||
      null,
  };
}

/** The end of the subscription's current period. */
export function periodEndOf(sub: Subscription): number {
  return Math.max(...sub.items.data.map((i) => i.current_period_end));
}

/**
 * Sets when the subscription ends (`at` null: it does not), noting the old values in
 * `previous`, as a cancellation change records them.
 */
export function setCancellation(
  sub: Subscription,
  next: { atPeriodEnd: boolean; at: number | null },
  previous: Record<string, unknown>,
  words?: { feedback: CancellationFeedback | null; comment: string | null },
): void {
  if (
    next.atPeriodEnd === sub.cancel_at_period_end &&
    next.at === sub.cancel_at &&
    words === undefined
  ) return;
  previous.cancel_at_period_end = sub.cancel_at_period_end;
  previous.cancel_at = sub.cancel_at;
  previous.canceled_at = sub.canceled_at;
  previous.cancellation_details = structuredClone(sub.cancellation_details);
  const canceling = next.at !== null;
  sub.cancel_at_period_end = next.atPeriodEnd;
  sub.cancel_at = next.at;
  sub.canceled_at = canceling ? now() : null;
  sub.cancellation_details = {
    comment: canceling ? words?.comment ?? null : null,
    feedback: canceling ? words?.feedback ?? null : null,
    reason: canceling ? "cancellation_requested" : null,
  };
}

/**
 * A change that waits for its invoice: the invoice is made and charged now; paid,
 * the change applies (`pending_update_applied`); declined, it waits in
 * `pending_update` until paid or expired.
 */
function pendingChange(
  state: State,
  sub: Subscription,
  lines: Invoice["lines"]["data"],
  succeeds: boolean,
  request: EventRequest,
  apply: () => void,
  after: Subscription["items"]["data"],
): StripeEvent[] {
  const invoice = makeInvoice(
    state,
    sub,
    state.store.customers.get(sub.customer),
    "subscription_update",
    [],
    { start: now(), end: now() },
    lines,
  );
  const events = [recordEvent(state, "invoice.created", invoice, request)];
  finalizeInvoice(state, invoice);
  events.push(recordEvent(state, "invoice.finalized", invoice, request));
  attemptPayment(state, invoice, succeeds);
  const previousLatest = sub.latest_invoice;
  sub.latest_invoice = invoice.id;
  if (succeeds) {
    const previousItems = structuredClone(sub.items);
    apply();
    events.push(
      recordEvent(state, "invoice.paid", invoice, request),
      recordEvent(state, "invoice.payment_succeeded", invoice, request),
      recordEvent(state, "customer.subscription.updated", sub, request, {
        items: previousItems,
        latest_invoice: previousLatest,
      }),
      recordEvent(
        state,
        "customer.subscription.pending_update_applied",
        sub,
        request,
      ),
    );
    return events;
  }
  sub.pending_update = {
    billing_cycle_anchor: null,
    discount: null,
    discounts: null,
    metadata: null,
    expires_at: now() + PENDING_LIFETIME,
    subscription_items: after,
    trial_end: null,
    trial_from_plan: null,
  };
  events.push(
    recordEvent(state, "invoice.payment_failed", invoice, request),
    recordEvent(state, "customer.subscription.updated", sub, request, {
      latest_invoice: previousLatest,
      pending_update: null,
    }),
  );
  return events;
}

/** Charges an update's invoice as `payment_behavior` says, with its events. */
function collect(
  state: State,
  sub: Subscription,
  invoice: Invoice,
  behavior: PaymentBehavior,
  succeeds: boolean,
  request: EventRequest,
): StripeEvent[] {
  const events = [recordEvent(state, "invoice.created", invoice, request)];
  finalizeInvoice(state, invoice);
  events.push(recordEvent(state, "invoice.finalized", invoice, request));
  if (invoice.amount_due === 0) {
    creditBalance(state, invoice);
    markPaid(invoice);
    events.push(
      recordEvent(state, "invoice.paid", invoice, request),
      recordEvent(state, "invoice.payment_succeeded", invoice, request),
    );
    return events;
  }
  if (behavior === "default_incomplete") {
    events.push(statusChange(state, sub, "past_due", request));
    return events;
  }
  attemptPayment(state, invoice, succeeds);
  if (succeeds) {
    events.push(
      recordEvent(state, "invoice.paid", invoice, request),
      recordEvent(state, "invoice.payment_succeeded", invoice, request),
    );
    return events;
  }
  events.push(
    recordEvent(state, "invoice.payment_failed", invoice, request),
    statusChange(state, sub, "past_due", request),
  );
  return events;
}

function statusChange(
  state: State,
  sub: Subscription,
  status: Subscription["status"],
  request: EventRequest,
): StripeEvent {
  const previous = sub.status;
  sub.status = status;
  return recordEvent(state, "customer.subscription.updated", sub, request, {
    status: previous,
  });
}

/** A credit beyond an invoice's total goes to the customer's balance. */
function creditBalance(state: State, invoice: Invoice): void {
  if (invoice.total >= 0) return;
  const customer = state.store.customers.get(invoice.customer);
  if (customer === undefined) return;
  customer.balance += invoice.total;
  invoice.ending_balance = customer.balance;
}

/** An invoice with nothing to pay is paid at finalization. */
function markPaid(invoice: Invoice): void {
  const at = now();
  invoice.status = "paid";
  invoice.amount_paid = 0;
  invoice.amount_remaining = 0;
  invoice.status_transitions.paid_at = at;
}

/**
 * After an invoice is paid: the pending update waiting for it applies
 * (`customer.subscription.updated`, `customer.subscription.pending_update_applied`).
 */
export function applyPendingUpdate(
  state: State,
  invoice: Invoice,
  request: EventRequest,
): StripeEvent[] {
  const sub = state.store.subscriptions.get(
    invoice.parent.subscription_details.subscription,
  );
  const pending = sub?.pending_update;
  if (
    sub === undefined || pending == null ||
    sub.latest_invoice !== invoice.id || pending.expires_at < now()
  ) return [];
  const previousItems = structuredClone(sub.items);
  sub.items.data = pending.subscription_items ?? sub.items.data;
  sub.pending_update = null;
  return [
    recordEvent(state, "customer.subscription.updated", sub, request, {
      items: previousItems,
      pending_update: pending,
    }),
    recordEvent(
      state,
      "customer.subscription.pending_update_applied",
      sub,
      request,
    ),
  ];
}

/** Drops a subscription's pending update now, as Stripe does at `expires_at`. */
export function expirePendingUpdate(
  state: State,
  sub: Subscription,
): StripeEvent[] {
  const pending = sub.pending_update;
  if (pending === null) {
    throw invalidRequest(`Subscription '${sub.id}' has no pending update`);
  }
  sub.pending_update = null;
  return [
    recordEvent(
      state,
      "customer.subscription.pending_update_expired",
      sub,
      NO_REQUEST,
    ),
    recordEvent(state, "customer.subscription.updated", sub, NO_REQUEST, {
      pending_update: pending,
    }),
  ];
}

/**
 * `POST /v1/invoices/{id}/pay`: charges the customer's card; a decline is Stripe's
 * 402 (the invoice stays open, `invoice.payment_failed`), a success pays the
 * invoice and applies the pending update that waited for it.
 */
export function payInvoice(
  state: State,
  invoice: Invoice,
  params: FormObject,
  request: EventRequest,
): Invoice {
  onlyKnown(params, ["expand", "off_session", "payment_method"]);
  if (invoice.status === "paid") {
    throw invalidRequest("Invoice is already paid", {
      code: "invoice_already_paid",
    });
  }
  if (invoice.status !== "open") {
    throw invalidRequest(
      `You can only pay an invoice whose status is \`open\`, but this invoice's status is \`${invoice.status}\`.`,
    );
  }
  const succeeds = paymentSucceeds(state, invoice.customer);
  attemptPayment(state, invoice, succeeds);
  if (!succeeds) {
    state.webhooks.deliver([
      recordEvent(state, "invoice.payment_failed", invoice, request),
    ], "normal");
    throw cardDeclined();
  }
  const events = [
    recordEvent(state, "invoice.paid", invoice, request),
    recordEvent(state, "invoice.payment_succeeded", invoice, request),
  ];
  const sub = state.store.subscriptions.get(
    invoice.parent.subscription_details.subscription,
  );
  if (
    sub !== undefined && sub.latest_invoice === invoice.id &&
    (sub.status === "past_due" || sub.status === "unpaid")
  ) {
    events.push(statusChange(state, sub, "active", request));
  }
  events.push(...applyPendingUpdate(state, invoice, request));
  state.webhooks.deliver(events, "normal");
  return invoice;
}
