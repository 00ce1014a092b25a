/**
 * Stripe object shapes as API `2026-10-28.endive` returns them (every required field,
 * nullable fields present as `null`) and their factories.
 *
 * @module
 */

/** Metadata as Stripe stores it. */
export type Metadata = Record<string, string>;

/** Fields a shape always carries as `null` in the sandbox. */
type Nulls<K extends string> = { [P in K]: null };

/** A list envelope. */
export type List<T> = {
  object: "list";
  data: T[];
  has_more: boolean;
  url: string;
};

/** An address with every line unknown. */
export type Address = Nulls<
  "city" | "country" | "line1" | "line2" | "postal_code" | "state"
>;

/** A new address with every line unknown. */
export function emptyAddress(): Address {
  return {
    city: null,
    country: null,
    line1: null,
    line2: null,
    postal_code: null,
    state: null,
  };
}

/** A customer. */
export type Customer =
  & {
    id: string;
    object: "customer";
    balance: number;
    created: number;
    delinquent: boolean;
    email: string | null;
    invoice_prefix: string;
    invoice_settings: Nulls<
      | "custom_fields"
      | "default_payment_method"
      | "footer"
      | "rendering_options"
    >;
    livemode: false;
    metadata: Metadata;
    name: string | null;
    next_invoice_sequence: number;
    phone: string | null;
    description: string | null;
    preferred_locales: string[];
    tax_exempt: "none";
  }
  & Nulls<
    | "address"
    | "currency"
    | "customer_account"
    | "default_source"
    | "discount"
    | "shipping"
    | "test_clock"
  >;

/** What Stripe answers for a deleted customer. */
export type DeletedCustomer = { id: string; object: "customer"; deleted: true };

/** A product. */
export type Product =
  & {
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
    marketing_features: never[];
    metadata: Metadata;
    type: "service";
  }
  & Nulls<
    | "package_dimensions"
    | "shippable"
    | "statement_descriptor"
    | "tax_code"
    | "unit_label"
    | "url"
  >;

/** A recurring interval. */
export type Interval = "day" | "week" | "month" | "year";

/** A price. */
export type Price =
  & {
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
  }
  & Nulls<"custom_unit_amount" | "tiers_mode" | "transform_quantity">;

/** A checkout session line item. */
export type LineItem = {
  id: string;
  object: "item";
  adjustable_quantity: null;
  amount_discount: number;
  amount_subtotal: number;
  amount_tax: number;
  amount_total: number;
  currency: string;
  description: string;
  metadata: Metadata;
  price: Price;
  quantity: number;
};

/** The customer a completed checkout collected. */
export type CustomerDetails =
  & {
    email: string | null;
    name: string | null;
    address: Address;
    tax_exempt: "none";
    tax_ids: never[];
  }
  & Nulls<"business_name" | "individual_name" | "phone">;

/** A checkout session (subscription mode, hosted page). */
export type CheckoutSession =
  & {
    id: string;
    object: "checkout.session";
    amount_subtotal: number;
    amount_total: number;
    automatic_tax: Nulls<"liability" | "provider" | "status"> & {
      enabled: false;
    };
    cancel_url: string | null;
    client_reference_id: string | null;
    created: number;
    currency: string;
    custom_fields: never[];
    custom_text: Nulls<
      | "after_submit"
      | "shipping_address"
      | "submit"
      | "terms_of_service_acceptance"
    >;
    customer: string | null;
    customer_details: CustomerDetails | null;
    customer_email: string | null;
    discounts: never[];
    expires_at: number;
    invoice: string | null;
    livemode: false;
    metadata: Metadata;
    mode: "payment" | "setup" | "subscription";
    payment_method_collection: "always";
    payment_method_types: string[];
    payment_status: "paid" | "unpaid" | "no_payment_required";
    shipping_options: never[];
    status: "open" | "complete" | "expired";
    subscription: string | null;
    success_url: string;
    total_details: {
      amount_discount: number;
      amount_shipping: number;
      amount_tax: number;
    };
    ui_mode: "hosted_page";
    url: string | null;
  }
  & Nulls<
    | "adaptive_pricing"
    | "after_expiration"
    | "allow_promotion_codes"
    | "allowed_payment_method_types"
    | "billing_address_collection"
    | "client_secret"
    | "collected_information"
    | "consent"
    | "consent_collection"
    | "currency_conversion"
    | "customer_account"
    | "customer_creation"
    | "integration_identifier"
    | "invoice_creation"
    | "locale"
    | "managed_payments"
    | "optional_items"
    | "origin_context"
    | "payment_intent"
    | "payment_link"
    | "payment_method_configuration_details"
    | "payment_method_options"
    | "permissions"
    | "recovered_from"
    | "saved_payment_method_options"
    | "setup_intent"
    | "shipping_address_collection"
    | "shipping_cost"
    | "submit_type"
    | "wallet_options"
  >;

/** The deprecated plan Stripe still puts on subscription items. */
export type Plan = {
  id: string;
  object: "plan";
  active: boolean;
  amount: number;
  amount_decimal: string;
  billing_scheme: "per_unit";
  created: number;
  currency: string;
  interval: Interval;
  interval_count: number;
  livemode: false;
  metadata: Metadata;
  meter: null;
  nickname: string | null;
  product: string;
  tiers_mode: null;
  transform_usage: null;
  trial_period_days: null;
  usage_type: "licensed";
};

/** A subscription item (the billing period lives here since basil). */
export type SubscriptionItem = {
  id: string;
  object: "subscription_item";
  billing_thresholds: null;
  created: number;
  current_period_start: number;
  current_period_end: number;
  current_trial: null;
  discounts: never[];
  metadata: Metadata;
  plan: Plan;
  price: Price;
  quantity: number;
  subscription: string;
  tax_rates: never[];
};

/** A subscription status. */
export type SubscriptionStatus =
  | "incomplete"
  | "incomplete_expired"
  | "trialing"
  | "active"
  | "past_due"
  | "unpaid"
  | "canceled"
  | "paused";

/** What a customer says when canceling (the portal's reasons). */
export type CancellationFeedback =
  | "customer_service"
  | "low_quality"
  | "missing_features"
  | "other"
  | "switched_service"
  | "too_complex"
  | "too_expensive"
  | "unused";

/** A change waiting for its invoice to be paid (`payment_behavior=pending_if_incomplete`). */
export type PendingUpdate = {
  billing_cycle_anchor: number | null;
  discount: null;
  discounts: null;
  metadata: null;
  expires_at: number;
  subscription_items: SubscriptionItem[] | null;
  trial_end: number | null;
  trial_from_plan: boolean | null;
};

/** Why a subscription was (or will be) canceled. */
export type CancellationDetails = {
  comment: string | null;
  feedback: CancellationFeedback | null;
  reason:
    | "cancellation_requested"
    | "payment_disputed"
    | "payment_failed"
    | null;
};

/** A subscription. */
export type Subscription =
  & {
    id: string;
    object: "subscription";
    automatic_tax: Nulls<"disabled_reason" | "liability"> & { enabled: false };
    billing_cycle_anchor: number;
    billing_mode: {
      type: "flexible";
      flexible: { proration_discounts: "included" };
    };
    billing_schedules: never[];
    cancel_at: number | null;
    cancel_at_period_end: boolean;
    canceled_at: number | null;
    cancellation_details: CancellationDetails;
    collection_method: "charge_automatically";
    created: number;
    currency: string;
    customer: string;
    default_tax_rates: never[];
    discounts: never[];
    ended_at: number | null;
    invoice_settings:
      & Nulls<"account_tax_ids" | "custom_fields" | "description" | "footer">
      & { issuer: { type: "self" } };
    items: List<SubscriptionItem>;
    latest_invoice: string | null;
    livemode: false;
    metadata: Metadata;
    pending_update: PendingUpdate | null;
    schedule: string | null;
    payment_settings: {
      payment_method_options: null;
      payment_method_types: null;
      save_default_payment_method: "off";
    };
    start_date: number;
    status: SubscriptionStatus;
    trial_settings: {
      end_behavior: { missing_payment_method: "create_invoice" };
    };
  }
  & Nulls<
    | "application"
    | "application_fee_percent"
    | "billing_cycle_anchor_config"
    | "billing_thresholds"
    | "customer_account"
    | "days_until_due"
    | "default_payment_method"
    | "default_source"
    | "description"
    | "managed_payments"
    | "next_pending_invoice_item_invoice"
    | "on_behalf_of"
    | "pause_collection"
    | "pending_invoice_item_interval"
    | "pending_setup_intent"
    | "test_clock"
    | "transfer_data"
    | "trial_end"
    | "trial_start"
  >;

/** An invoice line. */
export type InvoiceLine = {
  id: string;
  object: "line_item";
  amount: number;
  currency: string;
  description: string;
  discount_amounts: never[];
  discountable: boolean;
  discounts: never[];
  invoice: string | null;
  livemode: false;
  metadata: Metadata;
  parent: {
    type: "subscription_item_details";
    invoice_item_details: null;
    subscription_item_details: {
      invoice_item: string | null;
      proration: boolean;
      proration_details: {
        credited_items:
          | { invoice: string; invoice_line_items: string[] }
          | null;
      };
      subscription: string;
      subscription_item: string;
    };
  };
  period: { start: number; end: number };
  pretax_credit_amounts: never[];
  pricing: {
    type: "price_details";
    price_details: { price: string; product: string };
    unit_amount_decimal: string;
  };
  quantity: number;
  quantity_decimal: string;
  subscription: string;
  subtotal: number;
  taxes: never[];
};

/** Why an invoice was made. */
export type BillingReason =
  | "subscription_create"
  | "subscription_cycle"
  | "subscription_update"
  | "upcoming";

/** An invoice status. */
export type InvoiceStatus =
  | "draft"
  | "open"
  | "paid"
  | "void"
  | "uncollectible";

/** An invoice (the basil shape: its subscription is under `parent`). */
export type Invoice =
  & {
    id: string;
    object: "invoice";
    account_country: string;
    account_name: string;
    amount_due: number;
    amount_overpaid: number;
    amount_paid: number;
    amount_paid_off_stripe: number;
    amount_remaining: number;
    amount_shipping: number;
    attempt_count: number;
    attempted: boolean;
    auto_advance: boolean;
    automatically_finalizes_at: number | null;
    automatic_tax:
      & Nulls<"disabled_reason" | "liability" | "provider" | "status">
      & {
        enabled: false;
      };
    billing_reason: BillingReason;
    collection_method: "charge_automatically";
    created: number;
    currency: string;
    customer: string;
    customer_email: string | null;
    customer_name: string | null;
    customer_tax_exempt: "none";
    customer_tax_ids: never[];
    default_tax_rates: never[];
    discounts: never[];
    effective_at: number | null;
    ending_balance: number | null;
    hosted_invoice_url: string | null;
    invoice_pdf: string | null;
    issuer: { type: "self" };
    lines: List<InvoiceLine>;
    livemode: false;
    metadata: Metadata;
    next_payment_attempt: number | null;
    number: string | null;
    parent: {
      type: "subscription_details";
      quote_details: null;
      subscription_details: { metadata: Metadata; subscription: string };
    };
    payment_settings: Nulls<
      "default_mandate" | "payment_method_options" | "payment_method_types"
    >;
    period_start: number;
    period_end: number;
    post_payment_credit_notes_amount: number;
    pre_payment_credit_notes_amount: number;
    starting_balance: number;
    status: InvoiceStatus;
    status_transitions: {
      finalized_at: number | null;
      marked_uncollectible_at: number | null;
      paid_at: number | null;
      voided_at: number | null;
    };
    subtotal: number;
    subtotal_excluding_tax: number;
    total: number;
    total_discount_amounts: never[];
    total_excluding_tax: number;
    total_pretax_credit_amounts: never[];
    total_taxes: never[];
    webhooks_delivered_at: number | null;
  }
  & Nulls<
    | "account_tax_ids"
    | "application"
    | "confirmation_secret"
    | "custom_fields"
    | "customer_account"
    | "customer_address"
    | "customer_phone"
    | "customer_shipping"
    | "default_payment_method"
    | "default_source"
    | "description"
    | "due_date"
    | "footer"
    | "from_invoice"
    | "last_finalization_error"
    | "latest_revision"
    | "on_behalf_of"
    | "receipt_number"
    | "rendering"
    | "shipping_cost"
    | "shipping_details"
    | "statement_descriptor"
    | "test_clock"
  >;

/** The card every sandbox payment is made with. */
export type CardDetails = {
  brand: "visa";
  country: "US";
  exp_month: number;
  exp_year: number;
  fingerprint: string;
  funding: "credit";
  last4: string;
  network: "visa";
};

/** Why a payment failed, as a payment intent reports it. */
export type PaymentError = {
  type: "card_error";
  code: "card_declined";
  decline_code: "insufficient_funds";
  message: string;
  charge: string;
};

/** A payment intent (one per invoice that was charged). */
export type PaymentIntent =
  & {
    id: string;
    object: "payment_intent";
    amount: number;
    amount_capturable: number;
    amount_received: number;
    capture_method: "automatic";
    confirmation_method: "automatic";
    created: number;
    currency: string;
    customer: string;
    description: string;
    excluded_payment_method_types: null;
    last_payment_error: PaymentError | null;
    latest_charge: string | null;
    livemode: false;
    metadata: Metadata;
    payment_method: string;
    payment_method_options: { card: { request_three_d_secure: "automatic" } };
    payment_method_types: string[];
    status: "requires_payment_method" | "succeeded";
  }
  & Nulls<
    | "allowed_payment_method_types"
    | "application"
    | "application_fee_amount"
    | "automatic_payment_methods"
    | "canceled_at"
    | "cancellation_reason"
    | "client_secret"
    | "customer_account"
    | "managed_payments"
    | "next_action"
    | "on_behalf_of"
    | "payment_method_configuration_details"
    | "payment_record"
    | "processing"
    | "receipt_email"
    | "review"
    | "setup_future_usage"
    | "shipping"
    | "source"
    | "statement_descriptor"
    | "statement_descriptor_suffix"
    | "transfer_data"
    | "transfer_group"
  >;

/** A charge: one attempt to take an invoice's money. */
export type Charge =
  & {
    id: string;
    object: "charge";
    amount: number;
    amount_captured: number;
    amount_refunded: number;
    billing_details: Nulls<"name" | "phone" | "tax_id"> & {
      address: Address;
      email: string | null;
    };
    calculated_statement_descriptor: string;
    captured: boolean;
    created: number;
    currency: string;
    customer: string;
    description: string;
    disputed: boolean;
    failure_code: string | null;
    failure_message: string | null;
    fraud_details: Record<string, never>;
    livemode: false;
    metadata: Metadata;
    outcome: {
      network_status: "approved_by_network" | "declined_by_network";
      reason: string | null;
      risk_level: "normal";
      risk_score: number;
      seller_message: string;
      type: "authorized" | "issuer_declined";
    };
    paid: boolean;
    payment_intent: string;
    payment_method: string;
    payment_method_details: { type: "card"; card: CardDetails };
    receipt_url: string;
    refunded: boolean;
    status: "succeeded" | "failed";
  }
  & Nulls<
    | "application"
    | "application_fee"
    | "application_fee_amount"
    | "balance_transaction"
    | "failure_balance_transaction"
    | "on_behalf_of"
    | "receipt_email"
    | "receipt_number"
    | "review"
    | "shipping"
    | "source"
    | "source_transfer"
    | "statement_descriptor"
    | "statement_descriptor_suffix"
    | "transfer_data"
    | "transfer_group"
  >;

/** The link between an invoice and the payment intent that paid (or tries to pay) it. */
export type InvoicePayment = {
  id: string;
  object: "invoice_payment";
  amount_paid: number | null;
  amount_requested: number;
  created: number;
  currency: string;
  invoice: string;
  is_default: boolean;
  livemode: false;
  payment: { type: "payment_intent"; payment_intent: string };
  status: "open" | "paid" | "canceled";
  status_transitions: { canceled_at: number | null; paid_at: number | null };
};

/** Evidence fields of a dispute, none submitted yet. */
type Evidence =
  & Nulls<
    | "access_activity_log"
    | "billing_address"
    | "cancellation_policy"
    | "cancellation_policy_disclosure"
    | "cancellation_rebuttal"
    | "customer_communication"
    | "customer_email_address"
    | "customer_name"
    | "customer_purchase_ip"
    | "customer_signature"
    | "duplicate_charge_documentation"
    | "duplicate_charge_explanation"
    | "duplicate_charge_id"
    | "product_description"
    | "receipt"
    | "refund_policy"
    | "refund_policy_disclosure"
    | "refund_refusal_explanation"
    | "service_date"
    | "service_documentation"
    | "shipping_address"
    | "shipping_carrier"
    | "shipping_date"
    | "shipping_documentation"
    | "shipping_tracking_number"
    | "uncategorized_file"
    | "uncategorized_text"
  >
  & { enhanced_evidence: Record<string, never> };

/** A dispute (chargeback) on a charge. */
export type Dispute = {
  id: string;
  object: "dispute";
  amount: number;
  balance_transactions: never[];
  charge: string;
  created: number;
  currency: string;
  enhanced_eligibility_types: never[];
  evidence: Evidence;
  evidence_details: {
    due_by: number;
    enhanced_eligibility: Record<string, never>;
    has_evidence: false;
    past_due: false;
    submission_count: number;
    submission_method: null;
  };
  intended_submission_method: null;
  is_charge_refundable: boolean;
  livemode: false;
  metadata: Metadata;
  payment_intent: string;
  payment_method_details: {
    type: "card";
    card: {
      brand: "visa";
      case_type: "chargeback";
      network_reason_code: string;
    };
  };
  reason: "fraudulent";
  status: "needs_response";
};

/** A refund of a charge. */
export type Refund =
  & {
    id: string;
    object: "refund";
    amount: number;
    charge: string;
    created: number;
    currency: string;
    customer: string;
    metadata: Metadata;
    payment_intent: string;
    payment_method: string;
    reason: "requested_by_customer";
    status: "succeeded";
  }
  & Nulls<
    | "balance_transaction"
    | "customer_account"
    | "receipt_number"
    | "source_transfer_reversal"
    | "transfer_reversal"
  >;

/** A phase of a subscription schedule. */
export type SchedulePhase =
  & {
    add_invoice_items: never[];
    automatic_tax: Nulls<"disabled_reason" | "liability"> & { enabled: false };
    currency: string;
    default_tax_rates: never[];
    discounts: never[];
    end_date: number;
    items: {
      billing_thresholds: null;
      discounts: never[];
      metadata: Metadata;
      price: string;
      quantity: number;
      tax_rates: never[];
    }[];
    metadata: Metadata;
    proration_behavior: "always_invoice" | "create_prorations" | "none";
    start_date: number;
  }
  & Nulls<
    | "application_fee_percent"
    | "billing_cycle_anchor"
    | "billing_thresholds"
    | "collection_method"
    | "default_payment_method"
    | "description"
    | "invoice_settings"
    | "on_behalf_of"
    | "transfer_data"
    | "trial_end"
  >;

/** A subscription schedule. */
export type SubscriptionSchedule =
  & {
    id: string;
    object: "subscription_schedule";
    billing_mode: Subscription["billing_mode"];
    canceled_at: number | null;
    completed_at: number | null;
    created: number;
    current_phase: { start_date: number; end_date: number } | null;
    customer: string;
    default_settings: {
      application_fee_percent: null;
      automatic_tax: Nulls<"disabled_reason" | "liability"> & {
        enabled: false;
      };
      billing_cycle_anchor: "automatic";
      billing_thresholds: null;
      collection_method: "charge_automatically";
      default_payment_method: null;
      description: null;
      invoice_settings:
        & Nulls<
          | "account_tax_ids"
          | "custom_fields"
          | "days_until_due"
          | "description"
          | "footer"
        >
        & { issuer: { type: "self" } };
      on_behalf_of: null;
      transfer_data: null;
    };
    end_behavior: "cancel" | "none" | "release" | "renew";
    livemode: false;
    metadata: Metadata;
    phases: SchedulePhase[];
    released_at: number | null;
    released_subscription: string | null;
    status: "active" | "canceled" | "completed" | "not_started" | "released";
    subscription: string | null;
  }
  & Nulls<"application" | "customer_account" | "test_clock">;

/** A portal configuration's features (what the sandbox's portal page honours). */
export type PortalFeatures = {
  customer_update: { allowed_updates: string[]; enabled: boolean };
  invoice_history: { enabled: boolean };
  payment_method_update: {
    enabled: boolean;
    payment_method_configuration: null;
  };
  subscription_cancel: {
    cancellation_reason: { enabled: boolean; options: string[] };
    enabled: boolean;
    mode: "at_period_end" | "immediately";
    proration_behavior: "none";
  };
  subscription_update: {
    billing_cycle_anchor: null;
    default_allowed_updates: string[];
    enabled: boolean;
    products: never[];
    proration_behavior: "none";
    schedule_at_period_end: { conditions: never[] };
    trial_update_behavior: "end_trial";
  };
};

/** A customer portal configuration. */
export type PortalConfiguration = {
  id: string;
  object: "billing_portal.configuration";
  active: boolean;
  application: null;
  business_profile: Record<
    "headline" | "privacy_policy_url" | "terms_of_service_url",
    string | null
  >;
  created: number;
  default_return_url: string | null;
  features: PortalFeatures;
  is_default: boolean;
  livemode: false;
  login_page: { enabled: false; url: null };
  metadata: Metadata;
  name: string | null;
  updated: number;
};

/** A customer portal session. */
export type PortalSession = {
  id: string;
  object: "billing_portal.session";
  configuration: string;
  created: number;
  customer: string;
  customer_account: null;
  flow: Record<string, unknown> | null;
  livemode: false;
  locale: string | null;
  on_behalf_of: string | null;
  return_url: string | null;
  url: string;
};

/** Any object an event can carry. */
export type StripeObject =
  | Customer
  | Product
  | Price
  | CheckoutSession
  | Subscription
  | Invoice
  | PaymentIntent
  | Charge
  | InvoicePayment
  | Dispute
  | Refund
  | SubscriptionSchedule
  | PortalConfiguration
  | PortalSession;

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
    address: null,
    balance: 0,
    created: now(),
    currency: null,
    customer_account: null,
    default_source: null,
    delinquent: false,
    description: fields.description ?? null,
    discount: null,
    email: fields.email ?? null,
    invoice_prefix: id.slice(4, 12).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: null,
      rendering_options: null,
    },
    livemode: false,
    metadata,
    name: fields.name ?? null,
    next_invoice_sequence: 1,
    phone: fields.phone ?? null,
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
    marketing_features: [],
    metadata,
    package_dimensions: null,
    shippable: null,
    statement_descriptor: null,
    tax_code: null,
    type: "service",
    unit_label: null,
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
    custom_unit_amount: null,
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
    tiers_mode: null,
    transform_quantity: null,
    type: fields.recurring === null ? "one_time" : "recurring",
    unit_amount: fields.unit_amount,
    unit_amount_decimal: String(fields.unit_amount),
  };
}
