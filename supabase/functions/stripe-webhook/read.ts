/**
 * What an event needs from Stripe, read BEFORE its transaction opens (reads are
 * idempotent; no network call runs while a row is locked): the subscription's current
 * state, and for a dispute or refund the subscription invoice its payment paid.
 * Stripe's answers are parsed like events. A temporary failure is a 503 (Stripe
 * retries the event); a final refusal is a {@linkcode StripeRefusal}.
 *
 * @module
 */
import { z } from "zod";
import { DomainError } from "../_shared/platform/errors.ts";
import { isTemporaryStripeError, Stripe } from "../_shared/stripe/client.ts";
import type { SubscriptionFacts } from "./lifecycle.ts";
import type { ShopEvent } from "./schemas.ts";

/** Stripe refused a read for good (a 4xx): retrying the event cannot help. */
export class StripeRefusal extends Error {
  override name = "StripeRefusal";
}

/** The subscription invoice a payment paid. */
export interface PaidInvoice {
  id: string;
  subscriptionId: string;
  metadata: Record<string, string> | null;
}

/** What was read from Stripe for one event. */
export interface StripeFacts {
  /** The subscription the event is about, as Stripe has it now. */
  subscription?: SubscriptionFacts;
  /** For a dispute or refund: the invoice its payment paid (null: none). */
  invoice?: PaidInvoice | null;
}

const SubscriptionState = z.object({
  id: z.string().min(1),
  status: z.string().min(1),
  cancel_at_period_end: z.boolean(),
  cancel_at: z.number().int().min(0).max(253_402_300_799).nullish(),
  pending_update: z.object({}).loose().nullish(),
  items: z.object({
    data: z.array(
      z.object({
        current_period_end: z.number().int().min(0).max(253_402_300_799),
        price: z.object({ id: z.string().min(1) }).loose(),
      }),
    ),
  }),
});

const InvoiceParent = z.object({
  id: z.string().min(1),
  parent: z.object({
    subscription_details: z.object({
      subscription: z.union([z.string(), z.object({ id: z.string() })]),
      metadata: z.record(z.string(), z.string()).nullish(),
    }).nullish(),
  }).nullish(),
});

/** Turns a failed call into a 503 (temporary) or a refusal (final). */
function failure(what: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (isTemporaryStripeError(error)) {
    return new DomainError(
      "unavailable",
      "stripe_unavailable",
      `${what} failed: ${message}`,
      { cause: error },
    );
  }
  if (error instanceof Stripe.errors.StripeError) {
    return new StripeRefusal(
      `${what}: Stripe refused (${error.statusCode ?? "?"}): ${message}`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(message);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeError && error.statusCode === 404;
}

function parsed<T extends z.ZodType>(
  schema: T,
  value: unknown,
  what: string,
): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new StripeRefusal(
    `${what}: Stripe's answer is not usable: ${
      result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`)
        .join("; ")
    }`,
  );
}

/** The subscription as Stripe has it now; a subscription Stripe no longer knows has ended. */
export async function currentSubscription(
  stripe: Stripe,
  subscriptionId: string,
): Promise<SubscriptionFacts> {
  const what = `Reading subscription "${subscriptionId}"`;
  let answer: unknown;
  try {
    answer = await stripe.subscriptions.retrieve(subscriptionId);
  } catch (error) {
    if (isNotFound(error)) {
      return {
        id: subscriptionId,
        status: "canceled",
        cancelAtPeriodEnd: false,
        cancelAt: null,
        currentPeriodEnd: null,
        priceId: null,
        pendingUpdate: false,
      };
    }
    throw failure(what, error);
  }
  const subscription = parsed(SubscriptionState, answer, what);
  const ends = subscription.items.data.map((item) => item.current_period_end);
  const currentPeriodEnd = ends.length > 0
    ? new Date(Math.max(...ends) * 1000)
    : null;
  // A cancel from the customer portal (flexible billing) sets cancel_at, not
  // cancel_at_period_end: either is a coming cancellation.
  const cancelAt = subscription.cancel_at != null
    ? new Date(subscription.cancel_at * 1000)
    : subscription.cancel_at_period_end
    ? currentPeriodEnd
    : null;
  return {
    id: subscription.id,
    status: subscription.status,
    cancelAtPeriodEnd: subscription.cancel_at_period_end ||
      subscription.cancel_at != null,
    cancelAt,
    currentPeriodEnd,
    priceId: subscription.items.data[0]?.price.id ?? null,
    pendingUpdate: subscription.pending_update != null,
  };
}

/** The subscription invoice a payment intent paid (a charge has no `invoice` since basil). */
async function invoiceOfPayment(
  stripe: Stripe,
  paymentIntent: string,
): Promise<PaidInvoice | null> {
  const what = `Finding the invoice of payment "${paymentIntent}"`;
  let answer: unknown;
  try {
    const payments = await stripe.invoicePayments.list({
      payment: { type: "payment_intent", payment_intent: paymentIntent },
      limit: 1,
    });
    const link = payments.data[0]?.invoice;
    if (link === undefined) return null;
    answer = typeof link === "string"
      ? await stripe.invoices.retrieve(link)
      : link;
  } catch (error) {
    throw failure(what, error);
  }
  if ((answer as { deleted?: unknown }).deleted === true) return null;
  const invoice = parsed(InvoiceParent, answer, what);
  const details = invoice.parent?.subscription_details;
  if (!details) return null;
  const subscription = details.subscription;
  return {
    id: invoice.id,
    subscriptionId: typeof subscription === "string"
      ? subscription
      : subscription.id,
    metadata: details.metadata ?? null,
  };
}

/** The subscription an event is about, when the event itself names it. */
function namedSubscription(event: ShopEvent): string | null {
  switch (event.type) {
    case "invoice.paid":
    case "invoice.payment_failed":
      return event.invoice.parent?.subscription_details?.subscription ?? null;
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
    case "customer.subscription.pending_update_applied":
    case "customer.subscription.pending_update_expired":
      return event.subscription.id;
    default:
      return null;
  }
}

/** Reads from Stripe what applying `event` needs; call it outside any transaction. */
export async function readStripeFacts(
  stripe: Stripe,
  event: ShopEvent,
): Promise<StripeFacts> {
  let invoice: PaidInvoice | null | undefined;
  let subscriptionId = namedSubscription(event);
  if (
    event.type === "charge.dispute.created" || event.type === "charge.refunded"
  ) {
    const payment = event.type === "charge.refunded"
      ? event.charge.payment_intent
      : event.dispute.payment_intent;
    invoice = payment ? await invoiceOfPayment(stripe, payment) : null;
    subscriptionId = invoice?.subscriptionId ?? null;
  }
  return {
    invoice,
    subscription: subscriptionId
      ? await currentSubscription(stripe, subscriptionId)
      : undefined,
  };
}
