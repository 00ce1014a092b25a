/**
 * `stripe-webhook`: Stripe's signed events. The signature is checked on the raw body;
 * each event is recorded once in stripe_events_log and applied to its order in the same
 * transaction (so a failure leaves nothing half-written and a 5xx makes Stripe retry);
 * then a paid order is handed to `servers-provision` in the background.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { z } from "zod";
import { type Alert, type Alerter, createAlerter } from "../_shared/alerts.ts";
import {
  alertEnv,
  type Env,
  serviceKey,
  stripeEnv,
  supabaseServiceEnv,
  webhookEnv,
} from "../_shared/config.ts";
import { lifecycleEnv } from "../_shared/lifecycle_config.ts";
import { isTransientDbError, type Sql, type Tx } from "../_shared/db.ts";
import { DomainError, HttpError } from "../_shared/errors.ts";
import {
  type Handler,
  json,
  runInBackground,
  withErrorHandling,
} from "../_shared/http.ts";
import { type Logger } from "../_shared/log.ts";
import {
  changeOrder,
  countOtherPayments,
  type Order,
  readOrder,
  readOrderBySubscription,
  recordOrderEvent,
  recordOrderInvoice,
  statusBeforeSuspension,
} from "../_shared/orders.ts";
import { createStripe, Stripe, stripeCrypto } from "../_shared/stripe.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/wiring.ts";
import {
  decideLifecycle,
  isLiveOrder,
  type LifecycleConfig,
  type LifecycleEvent,
  type SubscriptionFacts,
} from "./lifecycle.ts";
import {
  reconcileFirstInvoice,
  reconcileSession,
  type Reconciliation,
  type SessionEventType,
} from "./reconcile.ts";

/** What the handler needs. */
export interface WebhookDeps {
  sql: Sql;
  stripe: Stripe;
  webhookSecret: string;
  /** A service-role client: provisioning is invoked through it. */
  service: SupabaseClient;
  alert: Alerter;
  log: Logger;
  /** Payment grace and retention after cancellation. */
  lifecycle: LifecycleConfig;
  /** The clock deadlines are counted from (tests pin it). */
  now?: () => Date;
}

type Outcome = "processed" | "ignored" | "mismatch";

interface Applied {
  outcome: Outcome;
  orderId?: string;
  error?: string;
  /** Order to hand to servers-provision after commit. */
  provision?: string;
  /** Order whose panel target changed: handed to sync-server-status after commit. */
  sync?: string;
  alert?: Alert;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ACTOR = "stripe-webhook";

function idOf(
  value: string | { id: string } | null | undefined,
): string | null {
  return typeof value === "string" ? value : value?.id ?? null;
}

function mismatch(
  event: Stripe.Event,
  orderId: string | undefined,
  problems: string[],
): Applied {
  const error = `Event disagrees with the order: ${problems.join("; ")}`;
  return {
    outcome: "mismatch",
    orderId,
    error,
    alert: {
      title: "Payment event does not match its order",
      message:
        `${error}. Nothing was provisioned; check the payment in Stripe.`,
      orderId,
      eventId: event.id,
      fields: { event_type: event.type },
    },
  };
}

/** Finds and locks the order an event names, or answers why it cannot. */
async function orderFor(
  tx: Tx,
  orderId: string | null | undefined,
  what: string,
): Promise<Order | string> {
  if (!orderId || !UUID.test(orderId)) return `the ${what} carries no order id`;
  return await readOrder(tx, orderId, { lock: true }) ??
    `no order "${orderId}" exists`;
}

/** Applies a reconciliation to the order, inside the event's transaction. */
async function apply(
  tx: Tx,
  event: Stripe.Event,
  order: Order,
  decision: Reconciliation,
): Promise<Applied> {
  if (decision.outcome === "mismatch") {
    return mismatch(event, order.id, decision.problems);
  }
  const { transition, link, note } = decision;
  let provision: string | undefined;
  if (transition || link) {
    const changed = await changeOrder(tx, order.id, {
      to: transition?.to,
      set: {
        stripe_customer_id: order.stripe_customer_id ?? link?.customer,
        stripe_subscription_id: order.stripe_subscription_id ??
          link?.subscription,
        ...(transition?.to === "paid" ? { paid_at: new Date() } : {}),
        ...(transition?.to === "expired"
          ? { error_message: transition.reason }
          : {}),
      },
      actor: ACTOR,
      reason: transition?.reason,
    });
    if (transition?.to === "paid" && changed?.status === "paid") {
      provision = order.id;
    }
  }
  if (note) {
    await recordOrderEvent(tx, order.id, {
      kind: "payment",
      message: note,
      detail: { event_id: event.id },
      actor: ACTOR,
    });
  }
  return { outcome: "processed", orderId: order.id, provision };
}

async function onSession(
  tx: Tx,
  event: Stripe.Event & { type: SessionEventType },
  session: Stripe.Checkout.Session,
): Promise<Applied> {
  const order = await orderFor(
    tx,
    session.client_reference_id ?? session.metadata?.order_id,
    "session",
  );
  if (typeof order === "string") return mismatch(event, undefined, [order]);
  return await apply(
    tx,
    event,
    order,
    reconcileSession(event.type, event.id, {
      id: session.id,
      metadata: session.metadata,
      customer: idOf(session.customer),
      subscription: idOf(session.subscription),
      amount_total: session.amount_total,
      currency: session.currency,
      payment_status: session.payment_status,
    }, order),
  );
}

/** A Stripe call that failed: worth a retry of the whole event (5xx). */
function stripeUnavailable(what: string, error: unknown): DomainError {
  const message = error instanceof Error ? error.message : String(error);
  return new DomainError(
    "unavailable",
    "stripe_unavailable",
    `${what} failed: ${message}`,
    { cause: error },
  );
}

function isNotFound(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeError && error.statusCode === 404;
}

/** The subscription as Stripe has it now; a subscription Stripe no longer knows has ended. */
async function currentSubscription(
  stripe: Stripe,
  subscriptionId: string,
): Promise<SubscriptionFacts> {
  let subscription: Stripe.Subscription;
  try {
    subscription = await stripe.subscriptions.retrieve(subscriptionId);
  } catch (error) {
    if (isNotFound(error)) {
      return {
        id: subscriptionId,
        status: "canceled",
        cancelAtPeriodEnd: false,
        currentPeriodEnd: null,
      };
    }
    throw stripeUnavailable(`Reading subscription "${subscriptionId}"`, error);
  }
  const ends = subscription.items.data.map((item) => item.current_period_end);
  return {
    id: subscription.id,
    status: subscription.status,
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
    currentPeriodEnd: ends.length > 0
      ? new Date(Math.max(...ends) * 1000)
      : null,
  };
}

/**
 * The order a subscription bills, locked; or why the event does not apply (an unknown
 * subscription is ignored, one whose metadata names a different order is a mismatch).
 */
async function subscriptionOrder(
  tx: Tx,
  event: Stripe.Event,
  subscriptionId: string,
  metadata: Record<string, string> | null | undefined,
): Promise<Order | Applied> {
  const named = metadata?.order_id;
  const order = await readOrderBySubscription(tx, subscriptionId, {
    lock: true,
  });
  if (order) {
    if (named && named !== order.id) {
      return mismatch(event, order.id, [
        `the subscription's metadata names order "${named}", the subscription belongs to order "${order.id}"`,
      ]);
    }
    return order;
  }
  const other = named && UUID.test(named)
    ? await readOrder(tx, named, { lock: true })
    : null;
  if (
    other?.stripe_subscription_id &&
    other.stripe_subscription_id !== subscriptionId
  ) {
    return mismatch(event, other.id, [
      `subscription is "${subscriptionId}", the order has "${other.stripe_subscription_id}"`,
    ]);
  }
  return {
    outcome: "ignored",
    orderId: other?.id,
    error: other
      ? `the order is not linked to subscription "${subscriptionId}" yet`
      : `no order has subscription "${subscriptionId}"`,
  };
}

/**
 * Applies a subscription event to its (locked) order: reads the subscription's
 * current state from Stripe, asks `decideLifecycle`, writes the answer.
 */
async function applyLifecycle(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
  order: Order,
  subscriptionId: string,
  facts: (order: Order) => Promise<LifecycleEvent>,
): Promise<Applied> {
  if (!isLiveOrder(order.status)) {
    return {
      outcome: "ignored",
      orderId: order.id,
      error: `the order is "${order.status}"`,
    };
  }
  const now = deps.now?.() ?? new Date();
  const subscription = await currentSubscription(deps.stripe, subscriptionId);
  const lifecycleEvent = await facts(order);
  const decision = decideLifecycle(
    {
      ...order,
      statusBeforeSuspension: order.status === "suspended"
        ? await statusBeforeSuspension(tx, order.id)
        : null,
    },
    subscription,
    lifecycleEvent,
    { now, config: deps.lifecycle },
  );
  if (decision.cancelSubscription) {
    try {
      await deps.stripe.subscriptions.cancel(subscriptionId);
    } catch (error) {
      if (!isNotFound(error)) {
        throw stripeUnavailable(
          `Canceling subscription "${subscriptionId}"`,
          error,
        );
      }
    }
  }
  await changeOrder(tx, order.id, {
    to: decision.to,
    set: decision.set,
    actor: ACTOR,
    reason: decision.reason,
  });
  for (const note of decision.notes) {
    await recordOrderEvent(tx, order.id, {
      kind: note.kind,
      message: note.message,
      detail: { ...note.detail, event_id: event.id },
      actor: ACTOR,
    });
  }
  return {
    outcome: "processed",
    orderId: order.id,
    sync: decision.sync ? order.id : undefined,
    provision: decision.provision ? order.id : undefined,
  };
}

/** The latest period an invoice's lines pay for. */
function invoicePeriodEnd(invoice: Stripe.Invoice): Date | null {
  const ends = invoice.lines.data.map((line) => line.period.end);
  return ends.length > 0 ? new Date(Math.max(...ends) * 1000) : null;
}

/** Records a paid invoice once and answers what it adds. */
async function paidInvoiceFacts(
  tx: Tx,
  order: Order,
  invoice: Stripe.Invoice,
): Promise<LifecycleEvent> {
  const periodEnd = invoicePeriodEnd(invoice);
  const firstTime = await recordOrderInvoice(tx, order.id, {
    invoice_id: invoice.id,
    billing_reason: invoice.billing_reason,
    amount_paid: invoice.amount_paid,
    currency: invoice.currency,
    period_end: periodEnd,
  });
  return {
    type: "invoice_paid",
    invoiceId: invoice.id,
    firstTime,
    periodEnd,
  };
}

/** `invoice.paid`: the first invoice confirms the purchase, every one extends paid-until. */
async function onInvoicePaid(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
): Promise<Applied> {
  const details = invoice.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!details || !subscriptionId) return { outcome: "ignored" };
  if (invoice.billing_reason !== "subscription_create") {
    const order = await subscriptionOrder(
      tx,
      event,
      subscriptionId,
      details.metadata,
    );
    if (!("id" in order)) return order;
    return await applyLifecycle(
      tx,
      deps,
      event,
      order,
      subscriptionId,
      (o) => paidInvoiceFacts(tx, o, invoice),
    );
  }
  const order = await orderFor(tx, details.metadata?.order_id, "subscription");
  if (typeof order === "string") return mismatch(event, undefined, [order]);
  const confirmed = await apply(
    tx,
    event,
    order,
    reconcileFirstInvoice(event.id, {
      metadata: details.metadata,
      customer: idOf(invoice.customer),
      subscription: subscriptionId,
      amount_paid: invoice.amount_paid,
      currency: invoice.currency,
    }, order),
  );
  const paidOrder = confirmed.outcome === "processed"
    ? await readOrder(tx, order.id, { lock: true })
    : null;
  if (!paidOrder || paidOrder.stripe_subscription_id !== subscriptionId) {
    return confirmed;
  }
  const lifecycle = await applyLifecycle(
    tx,
    deps,
    event,
    paidOrder,
    subscriptionId,
    (o) => paidInvoiceFacts(tx, o, invoice),
  );
  return { ...confirmed, sync: lifecycle.sync };
}

/** `invoice.payment_failed`: a customer message and the grace deadline. */
async function onPaymentFailed(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
): Promise<Applied> {
  const details = invoice.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!details || !subscriptionId) return { outcome: "ignored" };
  const order = await subscriptionOrder(
    tx,
    event,
    subscriptionId,
    details.metadata,
  );
  if (!("id" in order)) return order;
  return await applyLifecycle(
    tx,
    deps,
    event,
    order,
    subscriptionId,
    () => Promise.resolve({ type: "payment_failed", invoiceId: invoice.id }),
  );
}

/** `customer.subscription.*`: follow the subscription's current status. */
async function onSubscriptionChanged(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
  subscription: Stripe.Subscription,
): Promise<Applied> {
  const order = await subscriptionOrder(
    tx,
    event,
    subscription.id,
    subscription.metadata,
  );
  if (!("id" in order)) return order;
  return await applyLifecycle(
    tx,
    deps,
    event,
    order,
    subscription.id,
    () => Promise.resolve({ type: "subscription_changed" }),
  );
}

/** The invoice a payment intent paid (a charge has no `invoice` field since basil). */
async function invoiceOfPayment(
  stripe: Stripe,
  paymentIntent: string,
): Promise<Stripe.Invoice | null> {
  try {
    const payments = await stripe.invoicePayments.list({
      payment: { type: "payment_intent", payment_intent: paymentIntent },
      limit: 1,
    });
    const link = payments.data[0]?.invoice;
    if (link === undefined) return null;
    const invoice = typeof link === "string"
      ? await stripe.invoices.retrieve(link)
      : link;
    return "deleted" in invoice && invoice.deleted ? null : invoice;
  } catch (error) {
    throw stripeUnavailable(
      `Finding the invoice of payment "${paymentIntent}"`,
      error,
    );
  }
}

/** `charge.dispute.created` and `charge.refunded`: the order behind the charge's invoice. */
async function onCharge(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
  paymentIntent: string | null,
  facts: (order: Order, invoice: Stripe.Invoice) => Promise<LifecycleEvent>,
): Promise<Applied> {
  if (!paymentIntent) {
    return { outcome: "ignored", error: "the charge has no payment intent" };
  }
  const invoice = await invoiceOfPayment(deps.stripe, paymentIntent);
  const details = invoice?.parent?.subscription_details;
  const subscriptionId = idOf(details?.subscription);
  if (!invoice || !subscriptionId) {
    return {
      outcome: "ignored",
      error: `payment "${paymentIntent}" paid no subscription invoice`,
    };
  }
  const order = await subscriptionOrder(
    tx,
    event,
    subscriptionId,
    details?.metadata,
  );
  if (!("id" in order)) return order;
  return await applyLifecycle(
    tx,
    deps,
    event,
    order,
    subscriptionId,
    (o) => facts(o, invoice),
  );
}

/** Applies one event inside the recording transaction. */
async function applyEvent(
  tx: Tx,
  deps: WebhookDeps,
  event: Stripe.Event,
): Promise<Applied> {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired":
      return await onSession(tx, event, event.data.object);
    case "invoice.paid":
      return await onInvoicePaid(tx, deps, event, event.data.object);
    case "invoice.payment_failed":
      return await onPaymentFailed(tx, deps, event, event.data.object);
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
    case "customer.subscription.paused":
    case "customer.subscription.resumed":
      return await onSubscriptionChanged(tx, deps, event, event.data.object);
    case "charge.dispute.created": {
      const dispute = event.data.object;
      return await onCharge(
        tx,
        deps,
        event,
        idOf(dispute.payment_intent),
        () => Promise.resolve({ type: "dispute", disputeId: dispute.id }),
      );
    }
    case "charge.refunded": {
      const charge = event.data.object;
      return await onCharge(
        tx,
        deps,
        event,
        idOf(charge.payment_intent),
        async (order, invoice) => ({
          type: "refund",
          chargeId: charge.id,
          full: charge.refunded || charge.amount_refunded >= charge.amount,
          onlyPayment: await countOtherPayments(tx, order.id, invoice.id) === 0,
        }),
      );
    }
    default:
      return { outcome: "ignored" };
  }
}

/** Invokes a function as the service; answers why it failed, or null. */
async function invokeService(
  deps: WebhookDeps,
  name: string,
  orderId: string,
  log: Logger,
): Promise<string | null> {
  try {
    const { data, error } = await deps.service.functions.invoke(name, {
      body: { order_id: orderId },
    });
    if (!error) {
      log.info(`Handed off to ${name}`, { result: data });
      return null;
    }
    const context = (error as { context?: unknown }).context;
    return context instanceof Response
      ? `${name} answered ${context.status}: ${await context.text()}`
      : error.message;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Hands an order whose panel target changed to sync-server-status. */
async function handOffSync(
  deps: WebhookDeps,
  orderId: string,
  log: Logger,
): Promise<void> {
  const problem = await invokeService(deps, "sync-server-status", orderId, log);
  // panel_action_due_at is set: the sweep carries the change out anyway.
  if (problem) {
    log.warn(
      `Handing the order to sync-server-status failed; the sweep will apply it: ${problem}`,
    );
  }
}

/** Hands a paid order to servers-provision; a failed hand-off is kept for the sweep. */
async function handOff(
  deps: WebhookDeps,
  orderId: string,
  log: Logger,
): Promise<void> {
  const problem = await invokeService(deps, "servers-provision", orderId, log);
  if (problem === null) return;
  const message = `Handing the order to servers-provision failed: ${problem}`;
  log.error(message);
  await deps.sql.begin(async (tx) => {
    // The sweep picks up a paid order whose next attempt is due.
    await changeOrder(tx, orderId, {
      onlyFrom: ["paid"],
      set: { error_message: message, next_attempt_at: new Date() },
      actor: ACTOR,
    });
    await recordOrderEvent(tx, orderId, {
      kind: "note",
      message,
      actor: ACTOR,
    });
  });
  await deps.alert({ title: "Provisioning hand-off failed", message, orderId });
}

/** The envelope every usable event has; the rest is read per event type. */
const EventEnvelope = z.object({
  id: z.string().min(1).max(255),
  object: z.literal("event"),
  type: z.string().min(1).max(255),
  api_version: z.string().nullable().optional(),
  created: z.number().int(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

type JSONValue = Parameters<Tx["json"]>[0];

type ParsedEvent =
  | { ok: true; event: Stripe.Event; payload: JSONValue }
  | { ok: false; problem: string; id?: string; type?: string };

/** Whether a parsed JSON value holds a NUL character anywhere (Postgres refuses it). */
function holdsNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\0");
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value && typeof value === "object") {
    return Object.entries(value).some(([key, item]) =>
      key.includes("\0") || holdsNul(item)
    );
  }
  return false;
}

/** Reads a signed body as an event, or says why it is not one we can use. */
function parseEvent(body: string): ParsedEvent {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, problem: "the body is not JSON" };
  }
  const envelope = EventEnvelope.safeParse(json);
  const named = json as { id?: unknown; type?: unknown } | null;
  const id = typeof named?.id === "string" ? named.id : undefined;
  const type = typeof named?.type === "string" ? named.type : undefined;
  if (!envelope.success) {
    const problem = envelope.error.issues.map((issue) =>
      `${issue.path.join(".") || "(event)"}: ${issue.message}`
    ).join("; ");
    return { ok: false, problem: `not a usable event: ${problem}`, id, type };
  }
  if (holdsNul(json)) {
    return { ok: false, problem: "the event holds a NUL character", id, type };
  }
  return { ok: true, event: json as Stripe.Event, payload: json as JSONValue };
}

/** Text safe for Postgres: NUL characters (refused by text and jsonb) made visible. */
function storable(text: string, max = 255): string {
  return text.replaceAll("\0", "\uFFFD").slice(0, max);
}

/**
 * Records a signed event we cannot use as `invalid` (once: a retry of the same body maps
 * to the same id), alerts, and acknowledges it; nothing else is written.
 */
async function recordInvalid(
  deps: WebhookDeps,
  body: string,
  parsed: Extract<ParsedEvent, { ok: false }>,
): Promise<Response> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)),
  );
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  const eventId = storable(parsed.id ?? `invalid_${hex.slice(0, 32)}`);
  const type = storable(parsed.type ?? "(unknown)");
  const log = deps.log.child({ event_id: eventId });
  const recorded = await deps.sql`
    insert into public.stripe_events_log (event_id, type, outcome, error, payload,
      processed_at)
    values (${eventId}, ${type}, 'invalid', ${parsed.problem}, ${
    deps.sql.json({ body: storable(body, 64_000), sha256: hex })
  }, now())
    on conflict (event_id) do nothing
    returning event_id`;
  if (recorded.length === 0) {
    log.info("Duplicate event acknowledged");
    return json({ received: true, duplicate: true });
  }
  log.warn("Signed event recorded as invalid", { problem: parsed.problem });
  runInBackground(deps.alert({
    title: "Unusable Stripe event",
    message:
      `A correctly signed Stripe event could not be used (${parsed.problem}). It was recorded as invalid and acknowledged; check it in the Stripe dashboard.`,
    eventId,
    fields: { event_type: type },
  }));
  return json({ received: true, outcome: "invalid", order_id: null });
}

/** Builds the handler. */
export function createWebhookHandler(deps: WebhookDeps): Handler {
  return withErrorHandling(async (req) => {
    const signature = req.headers.get("Stripe-Signature");
    const body = await req.text();
    if (!signature) {
      throw new HttpError(
        400,
        "invalid_signature",
        "Missing Stripe-Signature header",
      );
    }
    try {
      // Verifies the signature, then parses; only the verification is used here.
      await deps.stripe.webhooks.constructEventAsync(
        body,
        signature,
        deps.webhookSecret,
        undefined,
        stripeCrypto,
      );
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
        deps.log.warn("Rejected a webhook with a bad signature", { error });
        throw new HttpError(
          400,
          "invalid_signature",
          "Invalid Stripe signature",
        );
      }
      // Signed, but not JSON: parseEvent below records it as invalid.
    }
    const parsed = parseEvent(body);
    if (!parsed.ok) return await recordInvalid(deps, body, parsed);
    const event = parsed.event;
    const log = deps.log.child({ event_id: event.id, event_type: event.type });

    let applied: Applied | "duplicate";
    try {
      applied = await deps.sql.begin(async (tx) => {
        const recorded = await tx`
          insert into public.stripe_events_log (event_id, type, api_version, stripe_created_at,
            payload)
          values (${event.id}, ${event.type}, ${event.api_version}, to_timestamp(${event.created}),
            ${tx.json(parsed.payload)})
          on conflict (event_id) do nothing
          returning event_id`;
        if (recorded.length === 0) return "duplicate" as const;
        const result = await applyEvent(tx, deps, event);
        await tx`
          update public.stripe_events_log set outcome = ${result.outcome},
            order_id = ${result.orderId ?? null}, error = ${
          result.error ?? null
        },
            processed_at = now()
          where event_id = ${event.id}`;
        return result;
      });
    } catch (error) {
      if (isTransientDbError(error)) {
        log.error("Database unavailable; Stripe will retry", { error });
        throw new HttpError(503, "temporarily_unavailable", "Try again later", {
          cause: error,
        });
      }
      throw error;
    }

    if (applied === "duplicate") {
      log.info("Duplicate event acknowledged");
      return json({ received: true, duplicate: true });
    }
    const orderLog = log.child({ order_id: applied.orderId });
    orderLog.info(`Event ${applied.outcome}`, { error: applied.error });
    if (applied.alert) runInBackground(deps.alert(applied.alert));
    if (applied.provision) {
      runInBackground(handOff(deps, applied.provision, orderLog));
    }
    if (applied.sync) {
      runInBackground(handOffSync(deps, applied.sync, orderLog));
    }
    return json({
      received: true,
      outcome: applied.outcome,
      order_id: applied.orderId ?? null,
    });
  }, { log: deps.log });
}

/** Payment grace and retention (seconds); defaults and rules are the sweep's too. */
const webhookLifecycleEnv = lifecycleEnv.pick({
  PAYMENT_GRACE_SECONDS: true,
  RETENTION_SECONDS: true,
});

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function webhookFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "stripe-webhook",
    supabaseServiceEnv.and(stripeEnv).and(webhookEnv).and(alertEnv).and(
      webhookLifecycleEnv,
    ),
    env,
    options,
    ({ config, sql, log }) =>
      createWebhookHandler({
        sql,
        stripe: createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE),
        webhookSecret: config.STRIPE_WEBHOOK_SECRET,
        // A secret key goes out as `apikey` only (supabase-js never sends it as a
        // bearer token); the legacy service-role JWT as both.
        service: createClient(config.SUPABASE_URL, serviceKey(config), {
          auth: { persistSession: false, autoRefreshToken: false },
        }),
        alert: createAlerter({
          sql,
          log,
          webhookUrl: config.ALERT_WEBHOOK_URL,
        }),
        log,
        lifecycle: {
          paymentGraceSeconds: config.PAYMENT_GRACE_SECONDS,
          retentionSeconds: config.RETENTION_SECONDS,
        },
      }),
  );
}
