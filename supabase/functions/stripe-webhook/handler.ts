/**
 * `stripe-webhook`: Stripe's signed events. The signature is checked on the raw body;
 * each event is recorded once in stripe_events_log and applied to its order in the same
 * transaction (so a failure leaves nothing half-written and a 5xx makes Stripe retry);
 * then a paid order is handed to `servers-provision` in the background.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { type Alert, type Alerter, createAlerter } from "../_shared/alerts.ts";
import {
  alertEnv,
  type Env,
  serviceKey,
  stripeEnv,
  supabaseServiceEnv,
  webhookEnv,
} from "../_shared/config.ts";
import {
  isTransientDbError,
  setActor,
  type Sql,
  type Tx,
} from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import {
  type Handler,
  json,
  runInBackground,
  withErrorHandling,
} from "../_shared/http.ts";
import { type Logger } from "../_shared/log.ts";
import { createStripe, Stripe, stripeCrypto } from "../_shared/stripe.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/wiring.ts";

/** What the handler needs. */
export interface WebhookDeps {
  sql: Sql;
  stripe: Stripe;
  webhookSecret: string;
  /** A service-role client: provisioning is invoked through it. */
  service: SupabaseClient;
  alert: Alerter;
  log: Logger;
}

type Outcome = "processed" | "ignored" | "mismatch";

interface Applied {
  outcome: Outcome;
  orderId?: string;
  error?: string;
  /** Order to hand to servers-provision after commit. */
  provision?: string;
  alert?: Alert;
}

interface OrderRow {
  id: string;
  user_id: string;
  plan_id: string;
  term: string;
  region: string;
  server_name: string;
  status: string;
  amount_cents: number;
  stripe_checkout_session_id: string | null;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function idOf(
  value: string | { id: string } | null | undefined,
): string | null {
  return typeof value === "string" ? value : value?.id ?? null;
}

async function lockOrder(
  tx: Tx,
  orderId: string,
): Promise<OrderRow | undefined> {
  const [order] = await tx<OrderRow[]>`
    select id, user_id, plan_id, term::text, region, server_name, status::text, amount_cents,
      stripe_checkout_session_id, stripe_customer_id, stripe_subscription_id
    from public.orders where id = ${orderId} for update`;
  return order;
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

/** Compares what the payment says with what the order says. */
function disagreements(
  order: OrderRow,
  metadata: Record<string, string> | null | undefined,
  customer: string | null,
  subscription: string | null,
): string[] {
  const problems: string[] = [];
  const expected: Record<string, string> = {
    order_id: order.id,
    user_id: order.user_id,
    plan_id: order.plan_id,
    term: order.term,
    region: order.region,
    server_name: order.server_name,
  };
  for (const [key, value] of Object.entries(expected)) {
    if (metadata?.[key] !== value) {
      problems.push(
        `${key} is "${
          metadata?.[key] ?? "(missing)"
        }", the order has "${value}"`,
      );
    }
  }
  if (
    customer && order.stripe_customer_id &&
    customer !== order.stripe_customer_id
  ) {
    problems.push(
      `customer is "${customer}", the order has "${order.stripe_customer_id}"`,
    );
  }
  if (
    subscription && order.stripe_subscription_id &&
    subscription !== order.stripe_subscription_id
  ) {
    problems.push(
      `subscription is "${subscription}", the order has "${order.stripe_subscription_id}"`,
    );
  }
  return problems;
}

/** Marks a pending order paid; anything further along is left as it is. */
async function markPaid(
  tx: Tx,
  event: Stripe.Event,
  order: OrderRow,
  customer: string | null,
  subscription: string | null,
): Promise<Applied> {
  if (order.status === "expired" || order.status === "canceled") {
    return mismatch(event, order.id, [
      `payment received for an order that is "${order.status}"; refund or restore it by hand`,
    ]);
  }
  await setActor(
    tx,
    "stripe-webhook",
    `Payment confirmed by ${event.type} (${event.id})`,
  );
  await tx`
    update public.orders set
      stripe_customer_id = coalesce(stripe_customer_id, ${customer}),
      stripe_subscription_id = coalesce(stripe_subscription_id, ${subscription})
    where id = ${order.id}`;
  if (order.status !== "pending") {
    return { outcome: "processed", orderId: order.id };
  }
  await tx`update public.orders set status = 'paid', paid_at = now() where id = ${order.id}`;
  return { outcome: "processed", orderId: order.id, provision: order.id };
}

async function onSession(
  tx: Tx,
  event: Stripe.Event,
  session: Stripe.Checkout.Session,
) {
  const orderId = session.client_reference_id ?? session.metadata?.order_id;
  if (!orderId || !UUID.test(orderId)) {
    return mismatch(event, undefined, ["the session carries no order id"]);
  }
  const order = await lockOrder(tx, orderId);
  if (!order) {
    return mismatch(event, undefined, [`no order "${orderId}" exists`]);
  }
  const customer = idOf(session.customer);
  const subscription = idOf(session.subscription);
  const problems = disagreements(
    order,
    session.metadata,
    customer,
    subscription,
  );
  if (
    order.stripe_checkout_session_id &&
    order.stripe_checkout_session_id !== session.id
  ) {
    problems.push(
      `session is "${session.id}", the order has "${order.stripe_checkout_session_id}"`,
    );
  }
  if (
    session.amount_total !== null && session.amount_total !== order.amount_cents
  ) {
    problems.push(
      `amount is ${session.amount_total}, the order has ${order.amount_cents}`,
    );
  }
  if (problems.length > 0) return mismatch(event, order.id, problems);

  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded": {
      if (session.payment_status === "unpaid") {
        await tx`
          insert into public.order_events (order_id, user_id, kind, message, detail, actor)
          values (${order.id}, ${order.user_id}, 'payment',
            'Checkout completed; the payment is still processing',
            ${tx.json({ event_id: event.id })}, 'stripe-webhook')`;
        return { outcome: "processed" as const, orderId: order.id };
      }
      return await markPaid(tx, event, order, customer, subscription);
    }
    default: {
      // async_payment_failed or expired: the checkout ends without payment.
      if (order.status !== "pending") {
        return { outcome: "processed" as const, orderId: order.id };
      }
      const reason = event.type === "checkout.session.expired"
        ? "Checkout expired without payment"
        : "The payment failed";
      await setActor(tx, "stripe-webhook", `${reason} (${event.id})`);
      await tx`update public.orders set status = 'expired', error_message = ${reason}
        where id = ${order.id}`;
      return { outcome: "processed" as const, orderId: order.id };
    }
  }
}

async function onInvoicePaid(
  tx: Tx,
  event: Stripe.Event,
  invoice: Stripe.Invoice,
) {
  const details = invoice.parent?.subscription_details;
  if (invoice.billing_reason !== "subscription_create" || !details) {
    return { outcome: "ignored" as const };
  }
  const orderId = details.metadata?.order_id;
  if (!orderId || !UUID.test(orderId)) {
    return mismatch(event, undefined, ["the subscription carries no order id"]);
  }
  const order = await lockOrder(tx, orderId);
  if (!order) {
    return mismatch(event, undefined, [`no order "${orderId}" exists`]);
  }
  const customer = idOf(invoice.customer);
  const subscription = idOf(details.subscription);
  const problems = disagreements(
    order,
    details.metadata,
    customer,
    subscription,
  );
  if (invoice.amount_paid !== order.amount_cents) {
    problems.push(
      `amount paid is ${invoice.amount_paid}, the order has ${order.amount_cents}`,
    );
  }
  if (problems.length > 0) return mismatch(event, order.id, problems);
  return await markPaid(tx, event, order, customer, subscription);
}

/** Applies one event inside the recording transaction. */
async function applyEvent(tx: Tx, event: Stripe.Event): Promise<Applied> {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired":
      return await onSession(tx, event, event.data.object);
    case "invoice.paid":
      return await onInvoicePaid(tx, event, event.data.object);
    default:
      return { outcome: "ignored" };
  }
}

/** Hands a paid order to servers-provision; a failed hand-off is kept for the sweep. */
async function handOff(
  deps: WebhookDeps,
  orderId: string,
  log: Logger,
): Promise<void> {
  let problem: string;
  try {
    const { data, error } = await deps.service.functions.invoke(
      "servers-provision",
      {
        body: { order_id: orderId },
      },
    );
    if (!error) {
      log.info("Provisioning handed off", { result: data });
      return;
    }
    const context = (error as { context?: unknown }).context;
    problem = context instanceof Response
      ? `servers-provision answered ${context.status}: ${await context.text()}`
      : error.message;
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  const message = `Handing the order to servers-provision failed: ${problem}`;
  log.error(message);
  await deps.sql.begin(async (tx) => {
    await tx`
      update public.orders set error_message = ${message}, next_attempt_at = now()
      where id = ${orderId} and status = 'paid'`;
    await tx`
      insert into public.order_events (order_id, user_id, kind, message, actor)
      select id, user_id, 'note', ${message}, 'stripe-webhook' from public.orders
      where id = ${orderId}`;
  });
  await deps.alert({ title: "Provisioning hand-off failed", message, orderId });
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
    let event: Stripe.Event;
    try {
      event = await deps.stripe.webhooks.constructEventAsync(
        body,
        signature,
        deps.webhookSecret,
        undefined,
        stripeCrypto,
      );
    } catch (error) {
      deps.log.warn("Rejected a webhook with a bad signature", { error });
      throw new HttpError(400, "invalid_signature", "Invalid Stripe signature");
    }
    const log = deps.log.child({ event_id: event.id, event_type: event.type });

    let applied: Applied | "duplicate";
    try {
      applied = await deps.sql.begin(async (tx) => {
        const recorded = await tx`
          insert into public.stripe_events_log (event_id, type, api_version, stripe_created_at,
            payload)
          values (${event.id}, ${event.type}, ${event.api_version}, to_timestamp(${event.created}),
            ${tx.json(JSON.parse(body))})
          on conflict (event_id) do nothing
          returning event_id`;
        if (recorded.length === 0) return "duplicate" as const;
        const result = await applyEvent(tx, event);
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
    return json({
      received: true,
      outcome: applied.outcome,
      order_id: applied.orderId ?? null,
    });
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function webhookFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "stripe-webhook",
    supabaseServiceEnv.and(stripeEnv).and(webhookEnv).and(alertEnv),
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
      }),
  );
}
