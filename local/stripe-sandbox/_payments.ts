/**
 * Money movement behind invoices: payment intents, charges, the invoice payments
 * that link them to invoices, refunds and disputes, and their read endpoints.
 * A charge has no `invoice` field (since basil): the way back is
 * `GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=…`.
 *
 * @module
 */
import { invalidRequest, StripeApiError } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type {
  CardDetails,
  Charge,
  Dispute,
  Invoice,
  InvoicePayment,
  PaymentIntent,
  Refund,
} from "./_objects.ts";
import { emptyAddress, newId, now } from "./_objects.ts";
import { optObject, optString } from "./_params.ts";
import type { State } from "./_state.ts";

const DAY = 86_400;

/** The card on file of every sandbox customer (Stripe's test Visa). */
function card(): CardDetails {
  return {
    brand: "visa",
    country: "US",
    exp_month: 12,
    exp_year: new Date().getUTCFullYear() + 3,
    fingerprint: "sBxSandboxVisa42",
    funding: "credit",
    last4: "4242",
    network: "visa",
  };
}

/** What one payment attempt on an invoice produced. */
export interface PaymentAttempt {
  paymentIntent: PaymentIntent;
  charge: Charge;
  invoicePayment: InvoicePayment;
}

/**
 * Attempts to collect an invoice's amount due with the customer's card: one
 * payment intent per invoice (made on the first attempt), one charge per attempt.
 * A success marks the invoice paid; a failure leaves it open.
 */
export function attemptPayment(
  state: State,
  invoice: Invoice,
  succeed: boolean,
): PaymentAttempt {
  const at = now();
  let invoicePayment = [...state.store.invoicePayments.values()].find((p) =>
    p.invoice === invoice.id && p.status === "open"
  );
  let paymentIntent = invoicePayment === undefined
    ? undefined
    : state.store.paymentIntents.get(invoicePayment.payment.payment_intent);
  if (invoicePayment === undefined || paymentIntent === undefined) {
    paymentIntent = newPaymentIntent(invoice, at);
    state.store.paymentIntents.set(paymentIntent.id, paymentIntent);
    invoicePayment = {
      id: newId("inpay"),
      object: "invoice_payment",
      amount_paid: null,
      amount_requested: invoice.amount_remaining,
      created: at,
      currency: invoice.currency,
      invoice: invoice.id,
      is_default: true,
      livemode: false,
      payment: { type: "payment_intent", payment_intent: paymentIntent.id },
      status: "open",
      status_transitions: { canceled_at: null, paid_at: null },
    };
    state.store.invoicePayments.set(invoicePayment.id, invoicePayment);
  }
  const charge = newCharge(state, invoice, paymentIntent, succeed, at);
  state.store.charges.set(charge.id, charge);
  paymentIntent.latest_charge = charge.id;
  invoice.attempted = true;
  invoice.attempt_count += 1;
  if (succeed) {
    paymentIntent.status = "succeeded";
    paymentIntent.amount_received = paymentIntent.amount;
    paymentIntent.last_payment_error = null;
    invoicePayment.status = "paid";
    invoicePayment.amount_paid = invoice.amount_remaining;
    invoicePayment.status_transitions.paid_at = at;
    invoice.status = "paid";
    invoice.amount_paid = invoice.amount_due;
    invoice.amount_remaining = 0;
    invoice.ending_balance = 0;
    invoice.next_payment_attempt = null;
    invoice.status_transitions.paid_at = at;
  } else {
    paymentIntent.status = "requires_payment_method";
    paymentIntent.last_payment_error = {
      type: "card_error",
      code: "card_declined",
      decline_code: "insufficient_funds",
      message: "Your card has insufficient funds.",
      charge: charge.id,
    };
    // Smart Retries try again within days; the sandbox's next attempt is a control call
    invoice.next_payment_attempt = at + 3 * DAY;
  }
  return { paymentIntent, charge, invoicePayment };
}

function newPaymentIntent(invoice: Invoice, at: number): PaymentIntent {
  return {
    id: newId("pi"),
    object: "payment_intent",
    allowed_payment_method_types: null,
    amount: invoice.amount_remaining,
    amount_capturable: 0,
    amount_received: 0,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: null,
    canceled_at: null,
    cancellation_reason: null,
    capture_method: "automatic",
    client_secret: null,
    confirmation_method: "automatic",
    created: at,
    currency: invoice.currency,
    customer: invoice.customer,
    customer_account: null,
    description: invoice.billing_reason === "subscription_create"
      ? "Subscription creation"
      : "Subscription update",
    excluded_payment_method_types: null,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    managed_payments: null,
    metadata: {},
    next_action: null,
    on_behalf_of: null,
    payment_method: newId("pm"),
    payment_method_configuration_details: null,
    payment_method_options: { card: { request_three_d_secure: "automatic" } },
    payment_method_types: ["card"],
    payment_record: null,
    processing: null,
    receipt_email: null,
    review: null,
    setup_future_usage: null,
    shipping: null,
    source: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: "requires_payment_method",
    transfer_data: null,
    transfer_group: null,
  };
}

function newCharge(
  state: State,
  invoice: Invoice,
  paymentIntent: PaymentIntent,
  succeed: boolean,
  at: number,
): Charge {
  const id = newId("ch");
  return {
    id,
    object: "charge",
    amount: paymentIntent.amount,
    amount_captured: succeed ? paymentIntent.amount : 0,
    amount_refunded: 0,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: null,
    billing_details: {
      address: emptyAddress(),
      email: invoice.customer_email,
      name: null,
      phone: null,
      tax_id: null,
    },
    calculated_statement_descriptor: "GAME SERVER SHOP",
    captured: succeed,
    created: at,
    currency: paymentIntent.currency,
    customer: invoice.customer,
    description: paymentIntent.description,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: succeed ? null : "card_declined",
    failure_message: succeed ? null : "Your card has insufficient funds.",
    fraud_details: {},
    livemode: false,
    metadata: {},
    on_behalf_of: null,
    outcome: succeed
      ? {
        network_status: "approved_by_network",
        reason: null,
        risk_level: "normal",
        risk_score: 20,
        seller_message: "Payment complete.",
        type: "authorized",
      }
      : {
        network_status: "declined_by_network",
        reason: "insufficient_funds",
        risk_level: "normal",
        risk_score: 20,
        seller_message:
          "The bank returned the decline code `insufficient_funds`.",
        type: "issuer_declined",
      },
    paid: succeed,
    payment_intent: paymentIntent.id,
    payment_method: paymentIntent.payment_method,
    payment_method_details: { type: "card", card: card() },
    receipt_email: null,
    receipt_number: null,
    receipt_url: `${state.baseUrl}/_sandbox/receipts/${id}`,
    refunded: false,
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: succeed ? "succeeded" : "failed",
    transfer_data: null,
    transfer_group: null,
  };
}

/** The charge that paid an invoice, if it was paid by card. */
export function paidChargeOf(
  state: State,
  invoice: Invoice,
): Charge | undefined {
  const payment = [...state.store.invoicePayments.values()].find((p) =>
    p.invoice === invoice.id && p.status === "paid"
  );
  if (payment === undefined) return undefined;
  const intent = state.store.paymentIntents.get(
    payment.payment.payment_intent,
  );
  return state.store.charges.get(intent?.latest_charge ?? "");
}

/** Refunds a charge in full, as `refunds.create({ charge })` does. */
export function refundCharge(state: State, charge: Charge): Refund {
  if (charge.disputed) {
    throw invalidRequest(
      `Charge ${charge.id} has been charged back; cannot issue a refund.`,
      { code: "charge_disputed" },
    );
  }
  if (charge.refunded) {
    throw invalidRequest(`Charge ${charge.id} has already been refunded.`, {
      code: "charge_already_refunded",
    });
  }
  const refund: Refund = {
    id: newId("re"),
    object: "refund",
    amount: charge.amount - charge.amount_refunded,
    balance_transaction: null,
    charge: charge.id,
    created: now(),
    currency: charge.currency,
    customer: charge.customer,
    customer_account: null,
    metadata: {},
    payment_intent: charge.payment_intent,
    payment_method: charge.payment_method,
    reason: "requested_by_customer",
    receipt_number: null,
    source_transfer_reversal: null,
    status: "succeeded",
    transfer_reversal: null,
  };
  state.store.refunds.set(refund.id, refund);
  charge.amount_refunded = charge.amount;
  charge.refunded = true;
  return refund;
}

/** Opens a chargeback (reason `fraudulent`) on a charge. */
export function disputeCharge(state: State, charge: Charge): Dispute {
  if (charge.disputed) {
    throw invalidRequest(`Charge ${charge.id} is already disputed`, {
      code: "charge_disputed",
    });
  }
  const created = now();
  const dispute: Dispute = {
    id: newId("dp"),
    object: "dispute",
    amount: charge.amount - charge.amount_refunded,
    balance_transactions: [],
    charge: charge.id,
    created,
    currency: charge.currency,
    enhanced_eligibility_types: [],
    evidence: {
      access_activity_log: null,
      billing_address: null,
      cancellation_policy: null,
      cancellation_policy_disclosure: null,
      cancellation_rebuttal: null,
      customer_communication: null,
      customer_email_address: null,
      customer_name: null,
      customer_purchase_ip: null,
      customer_signature: null,
      duplicate_charge_documentation: null,
      duplicate_charge_explanation: null,
      duplicate_charge_id: null,
      enhanced_evidence: {},
      product_description: null,
      receipt: null,
      refund_policy: null,
      refund_policy_disclosure: null,
      refund_refusal_explanation: null,
      service_date: null,
      service_documentation: null,
      shipping_address: null,
      shipping_carrier: null,
      shipping_date: null,
      shipping_documentation: null,
      shipping_tracking_number: null,
      uncategorized_file: null,
      uncategorized_text: null,
    },
    evidence_details: {
      due_by: created + 7 * DAY,
      enhanced_eligibility: {},
      has_evidence: false,
      past_due: false,
      submission_count: 0,
      submission_method: null,
    },
    intended_submission_method: null,
    is_charge_refundable: false,
    livemode: false,
    metadata: {},
    payment_intent: charge.payment_intent,
    payment_method_details: {
      type: "card",
      card: {
        brand: "visa",
        case_type: "chargeback",
        network_reason_code: "10.4",
      },
    },
    reason: "fraudulent",
    status: "needs_response",
  };
  state.store.disputes.set(dispute.id, dispute);
  charge.disputed = true;
  return dispute;
}

/**
 * `GET /v1/invoice_payments` filters: `invoice`, `status` and
 * `payment[type]` with `payment[payment_intent]`.
 */
export function listInvoicePayments(
  state: State,
  params: FormObject,
): InvoicePayment[] {
  const invoice = optString(params, "invoice");
  const status = optString(params, "status");
  const payment = optObject(params, "payment");
  let intent: string | undefined;
  if (payment !== undefined) {
    const type = optString(payment, "type", "payment[type]");
    if (type !== "payment_intent") {
      throw new StripeApiError(
        400,
        "invalid_request_error",
        type === undefined
          ? "Missing required param: payment[type]."
          : `The Stripe sandbox only supports payment[type]=payment_intent, not '${type}'`,
        { code: "parameter_missing", param: "payment[type]" },
      );
    }
    intent = optString(payment, "payment_intent", "payment[payment_intent]");
  }
  return [...state.store.invoicePayments.values()].filter((p) =>
    (invoice === undefined || p.invoice === invoice) &&
    (status === undefined || p.status === status) &&
    (intent === undefined || p.payment.payment_intent === intent)
  );
}
