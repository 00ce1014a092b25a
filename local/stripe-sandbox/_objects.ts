/**
 * Stripe object shapes (API 2025-03-31.basil and later) and their factories.
 *
 * @module
 */

/** Metadata as Stripe stores it. */
export type Metadata = Record<string, string>;

/** A list envelope. */
export type List<T> = {
  object: "list";
  data: T[];
  has_more: boolean;
  total_count?: number;
  url: string;
};

/** A customer. */
export type Customer = {
  id: string;
  object: "customer";
  created: number;
  livemode: false;
  email: string | null;
  name: string | null;
  description: string | null;
  phone: string | null;
  metadata: Metadata;
  address: null;
  balance: number;
  currency: string | null;
  default_source: null;
  delinquent: boolean;
  invoice_prefix: string;
  invoice_settings: { default_payment_method: null; footer: null };
  preferred_locales: string[];
  shipping: null;
  tax_exempt: "none";
  test_clock: null;
};

/** A product. */
export type Product = {
  id: string;
  object: "product";
  active: boolean;
  created: number;
  updated: number;
  livemode: false;
  name: string;
  description: string | null;
  default_price: string | null;
  images: string[];
  metadata: Metadata;
  type: "service";
  url: null;
};

/** A recurring interval. */
export type Interval = "day" | "week" | "month" | "year";

/** A price. */
export type Price = {
  id: string;
  object: "price";
  active: boolean;
  billing_scheme: "per_unit";
  created: number;
  currency: string;
  livemode: false;
  lookup_key: string | null;
  metadata: Metadata;
  nickname: string | null;
  product: string;
  recurring: {
    interval: Interval;
    interval_count: number;
    meter: null;
    trial_period_days: null;
    usage_type: "licensed";
  } | null;
  tax_behavior: "unspecified";
  type: "recurring" | "one_time";
  unit_amount: number;
  unit_amount_decimal: string;
};

/** A checkout session line item. */
export type LineItem = {
  id: string;
  object: "item";
  amount_subtotal: number;
  amount_total: number;
  currency: string;
  description: string;
  price: Price;
  quantity: number;
};

/** A checkout session. */
export type CheckoutSession = {
  id: string;
  object: "checkout.session";
  amount_subtotal: number;
  amount_total: number;
  cancel_url: string | null;
  client_reference_id: string | null;
  created: number;
  currency: string;
  customer: string | null;
  customer_details: { email: string | null; name: string | null } | null;
  customer_email: string | null;
  expires_at: number;
  invoice: string | null;
  livemode: false;
  metadata: Metadata;
  mode: "payment" | "setup" | "subscription";
  payment_intent: null;
  payment_method_types: string[];
  payment_status: "paid" | "unpaid" | "no_payment_required";
  status: "open" | "complete" | "expired";
  subscription: string | null;
  success_url: string;
  ui_mode: "hosted";
  url: string | null;
};

/** A subscription item (the billing period lives here since basil). */
export type SubscriptionItem = {
  id: string;
  object: "subscription_item";
  created: number;
  current_period_start: number;
  current_period_end: number;
  metadata: Metadata;
  price: Price;
  quantity: number;
  subscription: string;
};

/** A subscription status. */
export type SubscriptionStatus =
  | "incomplete"
  | "incomplete_expired"
  | "active"
  | "past_due"
  | "canceled"
  | "unpaid";

/** A subscription. */
export type Subscription = {
  id: string;
  object: "subscription";
  billing_cycle_anchor: number;
  cancel_at: number | null;
  cancel_at_period_end: boolean;
  canceled_at: number | null;
  collection_method: "charge_automatically";
  created: number;
  currency: string;
  customer: string;
  ended_at: number | null;
  items: List<SubscriptionItem>;
  latest_invoice: string | null;
  livemode: false;
  metadata: Metadata;
  start_date: number;
  status: SubscriptionStatus;
  trial_end: null;
  trial_start: null;
};

/** An invoice line. */
export type InvoiceLine = {
  id: string;
  object: "line_item";
  amount: number;
  currency: string;
  description: string;
  invoice: string;
  livemode: false;
  metadata: Metadata;
  parent: {
    type: "subscription_item_details";
    subscription_item_details: {
      subscription: string;
      subscription_item: string;
      proration: false;
    };
  };
  period: { start: number; end: number };
  pricing: {
    type: "price_details";
    price_details: { price: string; product: string };
    unit_amount_decimal: string;
  };
  quantity: number;
};

/** An invoice. */
export type Invoice = {
  id: string;
  object: "invoice";
  amount_due: number;
  amount_paid: number;
  amount_remaining: number;
  attempt_count: number;
  attempted: boolean;
  billing_reason: "subscription_create" | "subscription_cycle";
  collection_method: "charge_automatically";
  created: number;
  currency: string;
  customer: string;
  customer_email: string | null;
  lines: List<InvoiceLine>;
  livemode: false;
  metadata: Metadata;
  number: string;
  parent: {
    type: "subscription_details";
    quote_details: null;
    subscription_details: { metadata: Metadata; subscription: string };
  };
  period_start: number;
  period_end: number;
  status: "draft" | "open" | "paid" | "void" | "uncollectible";
  status_transitions: {
    finalized_at: number | null;
    paid_at: number | null;
    voided_at: number | null;
  };
  subtotal: number;
  total: number;
};

/** Any object an event can carry. */
export type StripeObject =
  | Customer
  | Product
  | Price
  | CheckoutSession
  | Subscription
  | Invoice;

/** An event. */
export type StripeEvent = {
  id: string;
  object: "event";
  api_version: string;
  created: number;
  data: { object: StripeObject; previous_attributes?: Record<string, unknown> };
  livemode: false;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  type: string;
};

const ALPHABET =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A new Stripe-looking id, e.g. `cus_Q7f...`. */
export function newId(prefix: string, length = 24): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return `${prefix}_${[...bytes].map((b) => ALPHABET[b % 62]).join("")}`;
}

/** The current Unix time in seconds. */
export function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** The end of a billing period that starts at `start` (Unix seconds, UTC). */
export function periodEnd(
  start: number,
  interval: Interval,
  count: number,
): number {
  const d = new Date(start * 1000);
  if (interval === "day") d.setUTCDate(d.getUTCDate() + count);
  if (interval === "week") d.setUTCDate(d.getUTCDate() + 7 * count);
  if (interval === "month") d.setUTCMonth(d.getUTCMonth() + count);
  if (interval === "year") d.setUTCFullYear(d.getUTCFullYear() + count);
  return Math.floor(d.getTime() / 1000);
}

/** A new customer. */
export function makeCustomer(
  fields: {
    email?: string;
    name?: string;
    description?: string;
    phone?: string;
  },
  metadata: Metadata,
): Customer {
  const id = newId("cus", 14);
  return {
    id,
    object: "customer",
    created: now(),
    livemode: false,
    email: fields.email ?? null,
    name: fields.name ?? null,
    description: fields.description ?? null,
    phone: fields.phone ?? null,
    metadata,
    address: null,
    balance: 0,
    currency: null,
    default_source: null,
    delinquent: false,
    invoice_prefix: id.slice(4, 12).toUpperCase(),
    invoice_settings: { default_payment_method: null, footer: null },
    preferred_locales: [],
    shipping: null,
    tax_exempt: "none",
    test_clock: null,
  };
}

/** A new product. */
export function makeProduct(
  fields: { id?: string; name: string; active: boolean; description?: string },
  metadata: Metadata,
): Product {
  const created = now();
  return {
    id: fields.id ?? newId("prod", 14),
    object: "product",
    active: fields.active,
    created,
    updated: created,
    livemode: false,
    name: fields.name,
    description: fields.description ?? null,
    default_price: null,
    images: [],
    metadata,
    type: "service",
    url: null,
  };
}

/** A new price; `recurring` null makes a one-time price. */
export function makePrice(fields: {
  id?: string;
  product: string;
  currency: string;
  unit_amount: number;
  active: boolean;
  recurring: { interval: Interval; interval_count: number } | null;
  nickname?: string;
  lookup_key?: string;
  metadata: Metadata;
}): Price {
  return {
    id: fields.id ?? newId("price"),
    object: "price",
    active: fields.active,
    billing_scheme: "per_unit",
    created: now(),
    currency: fields.currency,
    livemode: false,
    lookup_key: fields.lookup_key ?? null,
    metadata: fields.metadata,
    nickname: fields.nickname ?? null,
    product: fields.product,
    recurring: fields.recurring === null ? null : {
      ...fields.recurring,
      meter: null,
      trial_period_days: null,
      usage_type: "licensed",
    },
    tax_behavior: "unspecified",
    type: fields.recurring === null ? "one_time" : "recurring",
    unit_amount: fields.unit_amount,
    unit_amount_decimal: String(fields.unit_amount),
  };
}
