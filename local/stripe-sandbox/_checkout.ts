/**
 * Checkout sessions: creation with Stripe's validation, expiry, and completion by
 * the (simulated) customer with each payment outcome.
 *
 * @module
 */
import { startSubscription } from "./_billing.ts";
import { invalidRequest, missingParam, noSuch } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import { attemptPayment } from "./_payments.ts";
import type {
  CheckoutSession,
  Customer,
  LineItem,
  StripeEvent,
} from "./_objects.ts";
import { emptyAddress, makeCustomer, newId, now } from "./_objects.ts";
import {
  onlyKnown,
  optArray,
  optInteger,
  optMetadata,
  optObject,
  optString,
} from "./_params.ts";
import type { EventRequest, SessionRecord, State } from "./_state.ts";
import { NO_REQUEST, recordEvent } from "./_state.ts";

const SESSION_PARAMS = [
  "adaptive_pricing",
  "after_expiration",
  "allow_promotion_codes",
  "automatic_tax",
  "billing_address_collection",
  "cancel_url",
  "client_reference_id",
  "consent_collection",
  "currency",
  "custom_fields",
  "custom_text",
  "customer",
  "customer_creation",
  "customer_email",
  "customer_update",
  "discounts",
  "expand",
  "expires_at",
  "invoice_creation",
  "line_items",
  "locale",
  "metadata",
  "mode",
  "payment_method_collection",
  "payment_method_configuration",
  "payment_method_options",
  "payment_method_types",
  "phone_number_collection",
  "redirect_on_completion",
  "return_url",
  "saved_payment_method_options",
  "shipping_address_collection",
  "submit_type",
  "subscription_data",
  "success_url",
  "tax_id_collection",
  "ui_mode",
] as const; // deno-fmt-ignore

const SUBSCRIPTION_DATA_PARAMS = [
  "application_fee_percent", "billing_cycle_anchor", "default_tax_rates",
  "description", "invoice_settings", "metadata", "on_behalf_of",
  "proration_behavior", "transfer_data", "trial_end", "trial_period_days",
  "trial_settings",
] as const; // deno-fmt-ignore

/** What a completion simulates. */
export type Outcome =
  | "paid"
  | "async_pending"
  | "async_succeeded"
  | "async_failed"
  | "expired";

/** The session record an id names, or Stripe's 404. */
export function getSession(state: State, id: string): SessionRecord {
  const record = state.store.sessions.get(id);
  if (record === undefined) throw noSuch("checkout.session", id);
  return record;
}

/** `POST /v1/checkout/sessions`, validated the way Stripe validates it. */
export function createSession(
  state: State,
  params: FormObject,
): CheckoutSession {
  onlyKnown(params, SESSION_PARAMS);
  const mode = optString(params, "mode");
  if (mode === undefined) throw missingParam("mode");
  if (mode !== "payment" && mode !== "setup" && mode !== "subscription") {
    throw invalidRequest(
      "Invalid mode: must be one of payment, setup, or subscription",
      { param: "mode" },
    );
  }
  if (mode !== "subscription") {
    throw invalidRequest(
      `The Stripe sandbox only supports \`subscription\` mode, not \`${mode}\``,
      { param: "mode" },
    );
  }
  const uiMode = optString(params, "ui_mode") ?? "hosted_page";
  if (!["elements", "embedded_page", "form", "hosted_page"].includes(uiMode)) {
    throw invalidRequest(
      "Invalid ui_mode: must be one of elements, embedded_page, form, or hosted_page",
      { param: "ui_mode" },
    );
  }
  if (uiMode !== "hosted_page") {
    throw invalidRequest(
      `The Stripe sandbox only supports \`hosted_page\` ui_mode, not \`${uiMode}\``,
      { param: "ui_mode" },
    );
  }
  const successUrl = url(params, "success_url");
  if (successUrl === undefined) throw missingParam("success_url");
  const cancelUrl = url(params, "cancel_url");
  const customerId = optString(params, "customer");
  const email = optString(params, "customer_email");
  if (customerId !== undefined && email !== undefined) {
    throw invalidRequest(
      "You may only specify one of these parameters: customer, customer_email.",
      { param: "customer_email" },
    );
  }
  if (email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw invalidRequest(`Invalid email address: ${email}`, {
      code: "email_invalid",
      param: "customer_email",
    });
  }
  const clientReferenceId = optString(params, "client_reference_id");
  if (clientReferenceId !== undefined && clientReferenceId.length > 200) {
    throw invalidRequest(
      `Invalid client_reference_id: must be at most 200 characters, got ${clientReferenceId.length}`,
      { param: "client_reference_id" },
    );
  }
  const metadata = optMetadata(params, "metadata") ?? {};
  const subscriptionData = optObject(params, "subscription_data") ?? {};
  for (const key of Object.keys(subscriptionData)) {
    if (!(SUBSCRIPTION_DATA_PARAMS as readonly string[]).includes(key)) {
      throw invalidRequest(
        `Received unknown parameter: subscription_data[${key}]`,
        { code: "parameter_unknown", param: `subscription_data[${key}]` },
      );
    }
  }
  const subscriptionMetadata = optMetadata(
    subscriptionData,
    "metadata",
    "subscription_data[metadata]",
  ) ?? {};
  const lineItems = readLineItems(state, params);
  let customer: Customer | undefined;
  if (customerId !== undefined) {
    customer = state.store.customers.get(customerId);
    if (customer === undefined) {
      throw noSuch("customer", customerId, "customer", 400);
    }
  }
  const created = now();
  const expiresAt = optInteger(params, "expires_at") ?? created + 86_400;
  if (expiresAt < created + 1_800 || expiresAt > created + 86_400) {
    throw invalidRequest(
      "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
      { param: "expires_at" },
    );
  }
  const id = newId("cs_test", 58);
  const total = lineItems.reduce((sum, line) => sum + line.amount_total, 0);
  const session: CheckoutSession = {
    id,
    object: "checkout.session",
    adaptive_pricing: null,
    after_expiration: null,
    allow_promotion_codes: null,
    allowed_payment_method_types: null,
    amount_subtotal: total,
    amount_total: total,
    automatic_tax: {
      enabled: false,
      liability: null,
      provider: null,
      status: null,
    },
    billing_address_collection: null,
    cancel_url: cancelUrl ?? null,
    client_reference_id: clientReferenceId ?? null,
    client_secret: null,
    collected_information: null,
    consent: null,
    consent_collection: null,
    created,
    currency: lineItems[0].currency,
    currency_conversion: null,
    custom_fields: [],
    custom_text: {
      after_submit: null,
      shipping_address: null,
      submit: null,
      terms_of_service_acceptance: null,
    },
    customer: customer?.id ?? null,
    customer_account: null,
    customer_creation: null,
    customer_details: null,
    customer_email: email ?? null,
    discounts: [],
    expires_at: expiresAt,
    integration_identifier: null,
    invoice: null,
    invoice_creation: null,
    livemode: false,
    locale: null,
    managed_payments: null,
    metadata,
    mode,
    optional_items: null,
    origin_context: null,
    payment_intent: null,
    payment_link: null,
    payment_method_collection: "always",
    payment_method_configuration_details: null,
    payment_method_options: null,
    payment_method_types: ["card"],
    payment_status: "unpaid",
    permissions: null,
    recovered_from: null,
    saved_payment_method_options: null,
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: "open",
    submit_type: null,
    subscription: null,
    success_url: successUrl,
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: "hosted_page",
    url: `${state.baseUrl}/_sandbox/pay/${id}`,
    wallet_options: null,
  };
  state.store.sessions.set(id, { session, lineItems, subscriptionMetadata });
  return session;
}

function url(params: FormObject, key: string): string | undefined {
  const value = optString(params, key);
  if (value === undefined) return undefined;
  if (!URL.canParse(value) || !/^https?:/.test(value)) {
    throw invalidRequest("Not a valid URL", {
      code: "url_invalid",
      param: key,
    });
  }
  return value;
}

function readLineItems(state: State, params: FormObject): LineItem[] {
  const raw = optArray(params, "line_items");
  if (raw === undefined || raw.length === 0) throw missingParam("line_items");
  const items = raw.map((entry, i): LineItem => {
    const param = `line_items[${i}]`;
    if (typeof entry !== "object" || Array.isArray(entry)) {
      throw invalidRequest(`Invalid object`, { param });
    }
    onlyKnown(entry, ["price", "quantity", "adjustable_quantity", "tax_rates"]);
    const priceId = optString(entry, "price", `${param}[price]`);
    if (priceId === undefined) throw missingParam(`${param}[price]`);
    const quantity = optInteger(entry, "quantity", `${param}[quantity]`);
    if (quantity === undefined) throw missingParam(`${param}[quantity]`);
    const price = state.store.prices.get(priceId);
    if (price === undefined) {
      throw noSuch("price", priceId, `${param}[price]`, 400);
    }
    if (!price.active) {
      throw invalidRequest(
        "The price specified is inactive. This field only accepts active prices.",
        { param: `${param}[price]` },
      );
    }
    if (quantity < 1) {
      throw invalidRequest("Quantity must be greater than 0.", {
        param: `${param}[quantity]`,
      });
    }
    const amount = price.unit_amount * quantity;
    return {
      id: newId("li"),
      object: "item",
      adjustable_quantity: null,
      amount_discount: 0,
      amount_subtotal: amount,
      amount_tax: 0,
      amount_total: amount,
      currency: price.currency,
      description: state.store.products.get(price.product)?.name ?? price.id,
      metadata: {},
      price: structuredClone(price),
      quantity,
    };
  });
  if (items.some((item) => item.currency !== items[0].currency)) {
    throw invalidRequest(
      "All prices on a Checkout Session must have the same currency.",
      { param: "line_items" },
    );
  }
  if (!items.some((item) => item.price.type === "recurring")) {
    throw invalidRequest(
      "You must provide at least one recurring price in `subscription` mode when using prices.",
      { param: "line_items" },
    );
  }
  return items;
}

/** `POST /v1/checkout/sessions/{id}/expire`: only an open session expires. */
export function expireSession(
  state: State,
  id: string,
  request: EventRequest,
): { session: CheckoutSession; events: StripeEvent[] } {
  const record = getSession(state, id);
  const { session } = record;
  if (session.status !== "open") {
    throw invalidRequest(
      `Only Checkout Sessions with a status in ["open"] can be expired. This session has status "${session.status}".`,
    );
  }
  session.status = "expired";
  session.url = null;
  const event = recordEvent(
    state,
    "checkout.session.expired",
    session,
    request,
  );
  return { session, events: [event] };
}

/**
 * Completes a session as the customer would in Stripe's hosted page, with the
 * given payment outcome; returns the events in the order Stripe sends them.
 */
export function completeSession(
  state: State,
  id: string,
  outcome: Outcome,
): { session: CheckoutSession; events: StripeEvent[] } {
  const record = getSession(state, id);
  const { session } = record;
  if (outcome === "expired") return expireSession(state, id, NO_REQUEST);
  const events: StripeEvent[] = [];
  if (session.status === "open") {
    const paid = outcome === "paid";
    const customer = sessionCustomer(state, record);
    const { subscription, invoice } = startSubscription(
      state,
      record,
      customer,
      paid,
    );
    session.status = "complete";
    session.payment_status = paid ? "paid" : "unpaid";
    session.customer = customer.id;
    session.customer_details = {
      address: emptyAddress(),
      business_name: null,
      email: customer.email,
      individual_name: null,
      name: customer.name,
      phone: null,
      tax_exempt: "none",
      tax_ids: [],
    };
    session.subscription = subscription.id;
    session.invoice = invoice.id;
    session.url = null;
    if (paid) {
      events.push(
        recordEvent(
          state,
          "customer.subscription.created",
          subscription,
          NO_REQUEST,
        ),
        recordEvent(state, "invoice.paid", invoice, NO_REQUEST),
      );
    }
    events.push(
      recordEvent(state, "checkout.session.completed", session, NO_REQUEST),
    );
    if (outcome === "paid" || outcome === "async_pending") {
      return { session, events };
    }
  } else if (outcome === "paid" || outcome === "async_pending") {
    throw illegal(session, outcome);
  }
  const subscription = state.store.subscriptions.get(
    session.subscription ?? "",
  );
  const invoice = state.store.invoices.get(session.invoice ?? "");
  if (
    session.status !== "complete" || session.payment_status !== "unpaid" ||
    subscription?.status !== "incomplete" || invoice === undefined
  ) {
    throw illegal(session, outcome);
  }
  if (outcome === "async_succeeded") {
    attemptPayment(state, invoice, true);
    subscription.status = "active";
    session.payment_status = "paid";
    events.push(
      recordEvent(state, "invoice.paid", invoice, NO_REQUEST),
      recordEvent(
        state,
        "checkout.session.async_payment_succeeded",
        session,
        NO_REQUEST,
      ),
    );
  } else {
    invoice.status = "void";
    invoice.status_transitions.voided_at = now();
    subscription.status = "incomplete_expired";
    subscription.ended_at = now();
    events.push(
      recordEvent(
        state,
        "checkout.session.async_payment_failed",
        session,
        NO_REQUEST,
      ),
    );
  }
  return { session, events };
}

function sessionCustomer(state: State, record: SessionRecord): Customer {
  const existing = state.store.customers.get(record.session.customer ?? "");
  if (existing !== undefined) return existing;
  const customer = makeCustomer(
    { email: record.session.customer_email ?? "customer@example.com" },
    {},
  );
  state.store.customers.set(customer.id, customer);
  return customer;
}

function illegal(session: CheckoutSession, outcome: Outcome) {
  return invalidRequest(
    `Cannot apply outcome '${outcome}' to checkout session '${session.id}': its status is '${session.status}' and its payment_status '${session.payment_status}'`,
    { param: "outcome" },
  );
}
