/**
 * The events the shop reads, parsed before anything uses them: the envelope, then the
 * `data.object` of each handled type with only the fields the shop reads, typed as the
 * pinned API version (`2026-10-28.endive`) has them. An event that does not parse is
 * recorded as invalid; the code after this reads parsed values only.
 *
 * @module
 */
import { z } from "zod";
import type { SessionEventType } from "../_shared/orders/reconcile.ts";

/** A Unix time Postgres and `Date` both hold (year 1970 to 9999). */
const unixTime = z.number().int().min(0).max(253_402_300_799);
/** An amount in the currency's smallest unit, as Postgres `integer` holds it. */
const amount = z.number().int().min(0).max(2_147_483_647);
/** A currency code (`format: currency`: ISO 4217, lower case from Stripe). */
const currency = z.string().regex(/^[a-z]{3}$/i, "Not a currency code");
/** A Stripe object id (Stripe's ids are at most 255 characters). */
const id = z.string().min(1).max(255);
/** An id, or the object it names when expanded. */
const ref = z.union([id, z.object({ id })]).transform((value) =>
  typeof value === "string" ? value : value.id
);
const metadata = z.record(z.string(), z.string());

/** The envelope every usable event has. */
export const EventEnvelope = z.object({
  id: z.string().min(1).max(255),
  object: z.literal("event"),
  type: z.string().min(1).max(255),
  api_version: z.string().max(255).nullable().optional(),
  created: unixTime,
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

/** `checkout.session`: what reconciling a payment with its order reads. */
const CheckoutSession = z.object({
  id,
  client_reference_id: z.string().nullish(),
  metadata: metadata.nullish(),
  customer: ref.nullish(),
  subscription: ref.nullish(),
  amount_total: amount.nullish(),
  currency: currency.nullish(),
  payment_status: z.enum(["no_payment_required", "paid", "unpaid"]),
});

/** `invoice`: its subscription, money and the period its lines pay for. */
const Invoice = z.object({
  id,
  billing_reason: z.string().nullish(),
  customer: ref.nullish(),
  amount_due: amount,
  amount_paid: amount,
  currency,
  parent: z.object({
    subscription_details: z.object({
      subscription: ref,
      metadata: metadata.nullish(),
    }).nullish(),
  }).nullish(),
  lines: z.object({
    data: z.array(z.object({ period: z.object({ end: unixTime }) })),
  }),
});

/** `subscription`: the shop reads it back from Stripe; the event names it. */
const Subscription = z.object({ id, metadata });

/** `dispute`: the payment it is about. */
const Dispute = z.object({ id, payment_intent: ref.nullish() });

/** `charge` (refunded): the payment and how much of it went back. */
const Charge = z.object({
  id,
  payment_intent: ref.nullish(),
  amount,
  amount_refunded: amount,
  refunded: z.boolean(),
  currency,
});

/** A parsed checkout session. */
export type SessionObject = z.output<typeof CheckoutSession>;
/** A parsed invoice. */
export type InvoiceObject = z.output<typeof Invoice>;
/** A parsed subscription. */
export type SubscriptionObject = z.output<typeof Subscription>;
/** A parsed dispute. */
export type DisputeObject = z.output<typeof Dispute>;
/** A parsed charge. */
export type ChargeObject = z.output<typeof Charge>;

/** Subscription event types the shop follows. */
export type SubscriptionEventType =
  | "customer.subscription.updated"
  | "customer.subscription.deleted"
  | "customer.subscription.paused"
  | "customer.subscription.resumed"
  | "customer.subscription.pending_update_applied"
  | "customer.subscription.pending_update_expired";

/** An event the shop can act on, with its object parsed. */
export type ShopEvent =
  & {
    id: string;
    /** The event type as Stripe named it. */
    name: string;
    created: number;
    apiVersion: string | null;
  }
  & (
    | { type: SessionEventType; session: SessionObject }
    | {
      type: "invoice.paid" | "invoice.payment_failed";
      invoice: InvoiceObject;
    }
    | { type: SubscriptionEventType; subscription: SubscriptionObject }
    | { type: "charge.dispute.created"; dispute: DisputeObject }
    | { type: "charge.refunded"; charge: ChargeObject }
    | { type: "other" }
  );

/** What parsing an event's JSON answers. */
export type ParsedShopEvent =
  | { ok: true; event: ShopEvent }
  | { ok: false; problem: string };

function problemOf(error: z.ZodError, where: string): string {
  return error.issues.map((issue) =>
    `${[where, ...issue.path].join(".")}: ${issue.message}`
  ).join("; ");
}

function parseObject<T extends z.ZodType>(
  schema: T,
  object: unknown,
): { ok: true; value: z.output<T> } | { ok: false; problem: string } {
  const parsed = schema.safeParse(object);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, problem: problemOf(parsed.error, "data.object") };
}

/** Parses an event (already JSON) into what the shop acts on, or says why it cannot. */
export function parseShopEvent(json: unknown): ParsedShopEvent {
  const envelope = EventEnvelope.safeParse(json);
  if (!envelope.success) {
    return {
      ok: false,
      problem: `not a usable event: ${problemOf(envelope.error, "event")}`,
    };
  }
  const { data, type } = envelope.data;
  const base = {
    id: envelope.data.id,
    name: type,
    created: envelope.data.created,
    apiVersion: envelope.data.api_version ?? null,
  };
  const fail = (problem: string): ParsedShopEvent => ({
    ok: false,
    problem: `not a usable ${type} event: ${problem}`,
  });
  switch (type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired": {
      const session = parseObject(CheckoutSession, data.object);
      return session.ok
        ? { ok: true, event: { ...base, type, session: session.value } }
        : fail(session.problem);
    }
    case "invoice.paid":
    case "invoice.payment_failed": {
      const invoice = parseObject(Invoice, data.object);
      return invoice.ok
        ? { ok: true, event: { ...base, type, invoice: invoice.value } }
        : fail(invoice.problem);
    }
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
    case "customer.subscription.pending_update_applied":
    case "customer.subscription.pending_update_expired": {
      const subscription = parseObject(Subscription, data.object);
      return subscription.ok
        ? {
          ok: true,
          event: { ...base, type, subscription: subscription.value },
        }
        : fail(subscription.problem);
    }
    case "charge.dispute.created": {
      const dispute = parseObject(Dispute, data.object);
      return dispute.ok
        ? { ok: true, event: { ...base, type, dispute: dispute.value } }
        : fail(dispute.problem);
    }
    case "charge.refunded": {
      const charge = parseObject(Charge, data.object);
      return charge.ok
        ? { ok: true, event: { ...base, type, charge: charge.value } }
        : fail(charge.problem);
    }
    default:
      return { ok: true, event: { ...base, type: "other" } };
  }
}
