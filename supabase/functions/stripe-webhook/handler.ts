/**
 * `stripe-webhook`: Stripe's signed events. The signature is checked on the raw body;
 * the event is parsed by its type's schema (`schemas.ts`; an unusable one is recorded
 * as invalid and acknowledged); what it needs from Stripe is read before any transaction
 * (`read.ts`); then it is recorded once in stripe_events_log and applied to its order in
 * one transaction (so a failure leaves nothing half-written and a 5xx makes Stripe
 * retry). After commit: a subscription cancellation decided under the lock, a paid
 * order handed to `servers-provision`, an order whose panel target changed handed to
 * `sync-server-status`, in the background. What an event does is in `apply.ts`.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { type Alerter, createAlerter } from "../_shared/platform/alerts.ts";
import { type Env, serviceKey } from "../_shared/platform/config.ts";
import {
  isTransientDbError,
  type Sql,
  type Tx,
} from "../_shared/platform/db.ts";
import { HttpError } from "../_shared/platform/errors.ts";
import {
  type Handler,
  json,
  readBody,
  runInBackground,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { type Logger } from "../_shared/platform/log.ts";
import { changeOrder, recordOrderEvent } from "../_shared/orders/orders.ts";
import {
  createStripe,
  isStripeSignatureHeader,
  Stripe,
  stripeCrypto,
  WEBHOOK_BODY_LIMIT,
} from "../_shared/stripe/client.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";
import { cutText, wellFormedJson } from "../_shared/platform/text.ts";
import { carryOutSubscriptionCancel } from "../_shared/stripe/subscription_cancel.ts";
import { ACTOR, type Applied, type ApplyDeps, applyEvent } from "./apply.ts";
import { readStripeFacts, type StripeFacts, StripeRefusal } from "./read.ts";
import { parseShopEvent, type ShopEvent } from "./schemas.ts";

/** What the handler needs. */
export interface WebhookDeps extends ApplyDeps {
  sql: Sql;
  stripe: Stripe;
  webhookSecret: string;
  /** A service-role client: provisioning is invoked through it. */
  service: SupabaseClient;
  alert: Alerter;
  log: Logger;
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

type JSONValue = Parameters<Tx["json"]>[0];

type ParsedEvent =
  | { ok: true; event: ShopEvent; payload: JSONValue }
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

/**
 * Reads a signed body as an event the shop can act on (every object it reads parsed
 * by its schema, every string well formed), or says why it is not one.
 */
function parseEvent(body: string): ParsedEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return { ok: false, problem: "the body is not JSON" };
  }
  const json = wellFormedJson(raw);
  const named = json as { id?: unknown; type?: unknown } | null;
  const id = typeof named?.id === "string" ? named.id : undefined;
  const type = typeof named?.type === "string" ? named.type : undefined;
  const parsed = parseShopEvent(json);
  if (!parsed.ok) return { ok: false, problem: parsed.problem, id, type };
  if (holdsNul(json)) {
    return { ok: false, problem: "the event holds a NUL character", id, type };
  }
  return { ok: true, event: parsed.event, payload: json as JSONValue };
}

/** Text safe for Postgres: well formed, NUL characters made visible, cut whole. */
function storable(text: string, max = 255): string {
  return cutText(text.replaceAll("\0", "\uFFFD"), max);
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
  const problem = storable(parsed.problem, 4_000);
  const log = deps.log.child({ event_id: eventId });
  const recorded = await deps.sql`
    insert into public.stripe_events_log (event_id, type, outcome, error, payload,
      processed_at)
    values (${eventId}, ${type}, 'invalid', ${problem}, ${
    deps.sql.json({ body: storable(body, 64_000), sha256: hex })
  }, now())
    on conflict (event_id) do nothing
    returning event_id`;
  if (recorded.length === 0) {
    log.info("Duplicate event acknowledged");
    return json({ received: true, duplicate: true });
  }
  log.warn("Signed event recorded as invalid", { problem });
  runInBackground(deps.alert({
    title: "Unusable Stripe event",
    message:
      `A correctly signed Stripe event could not be used (${problem}). It was recorded as invalid and acknowledged; check it in the Stripe dashboard.`,
    eventId,
    fields: { event_type: type },
  }));
  return json({ received: true, outcome: "invalid", order_id: null });
}

/**
 * Records an event Stripe's refusal keeps from being applied (a 4xx on a read: retrying
 * cannot help) as `failed`, alerts, and acknowledges it.
 */
async function recordRefused(
  deps: WebhookDeps,
  event: ShopEvent,
  payload: JSONValue,
  refusal: StripeRefusal,
): Promise<Response> {
  const log = deps.log.child({ event_id: event.id, event_type: event.name });
  const error = storable(refusal.message, 4_000);
  const recorded = await deps.sql`
    insert into public.stripe_events_log (event_id, type, api_version, stripe_created_at,
      outcome, error, payload, processed_at)
    values (${event.id}, ${event.name}, ${event.apiVersion}, to_timestamp(${event.created}),
      'failed', ${error}, ${deps.sql.json(payload)}, now())
    on conflict (event_id) do nothing
    returning event_id`;
  if (recorded.length === 0) {
    log.info("Duplicate event acknowledged");
    return json({ received: true, duplicate: true });
  }
  log.error("Stripe refused a read the event needs; recorded as failed", {
    error,
  });
  runInBackground(deps.alert({
    title: "Stripe event could not be applied",
    message:
      `${error}. The event was recorded as failed and acknowledged (Stripe would only send it again); check it in the Stripe dashboard and apply it by hand.`,
    eventId: event.id,
    fields: { event_type: event.name },
  }));
  return json({ received: true, outcome: "failed", order_id: null });
}

/** Whether the event is recorded already (its Stripe reads are then skipped). */
async function isRecorded(sql: Sql, eventId: string): Promise<boolean> {
  const rows = await sql`select 1 from public.stripe_events_log
    where event_id = ${eventId}`;
  return rows.length > 0;
}

/** A transient database error becomes a 503 so Stripe retries. */
function unavailableOr(error: unknown, log: Logger): unknown {
  if (!isTransientDbError(error)) return error;
  log.error("Database unavailable; Stripe will retry", { error });
  return new HttpError(503, "temporarily_unavailable", "Try again later", {
    cause: error,
  });
}

/** Builds the handler. */
export function createWebhookHandler(deps: WebhookDeps): Handler {
  return withErrorHandling(async (req) => {
    // The header is checked before the body is read: an unsigned post costs nothing.
    const signature = req.headers.get("Stripe-Signature");
    if (!signature || !isStripeSignatureHeader(signature)) {
      await req.body?.cancel().catch(() => {});
      throw new HttpError(
        400,
        "invalid_signature",
        signature
          ? "Malformed Stripe-Signature header"
          : "Missing Stripe-Signature header",
      );
    }
    const body = await readBody(req, WEBHOOK_BODY_LIMIT);
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
    const log = deps.log.child({ event_id: event.id, event_type: event.name });

    let applied: Applied | "duplicate";
    try {
      if (await isRecorded(deps.sql, event.id)) {
        applied = "duplicate";
      } else {
        // Read first, outside any transaction; then lock and decide on the locked row.
        let facts: StripeFacts;
        try {
          facts = await readStripeFacts(deps.stripe, event);
        } catch (error) {
          if (error instanceof StripeRefusal) {
            return await recordRefused(deps, event, parsed.payload, error);
          }
          throw error;
        }
        applied = await deps.sql.begin(async (tx) => {
          const recorded = await tx`
            insert into public.stripe_events_log (event_id, type, api_version,
              stripe_created_at, payload)
            values (${event.id}, ${event.name}, ${event.apiVersion},
              to_timestamp(${event.created}), ${tx.json(parsed.payload)})
            on conflict (event_id) do nothing
            returning event_id`;
          if (recorded.length === 0) return "duplicate" as const;
          const result = await applyEvent(tx, deps, event, facts);
          await tx`
            update public.stripe_events_log set outcome = ${result.outcome},
              order_id = ${result.orderId ?? null}, error = ${
            result.error === undefined ? null : storable(result.error, 4_000)
          }, processed_at = now()
            where event_id = ${event.id}`;
          return result;
        });
      }
    } catch (error) {
      throw unavailableOr(error, log);
    }

    if (applied === "duplicate") {
      log.info("Duplicate event acknowledged");
      return json({ received: true, duplicate: true });
    }
    const orderLog = log.child({ order_id: applied.orderId });
    orderLog.info(`Event ${applied.outcome}`, { error: applied.error });
    if (applied.alert) runInBackground(deps.alert(applied.alert));
    if (applied.cancel) {
      // After commit: the intent is recorded, so a failed call is retried later.
      runInBackground(
        carryOutSubscriptionCancel(deps, applied.cancel, ACTOR),
      );
    }
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

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function webhookFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "stripe-webhook",
    FUNCTIONS["stripe-webhook"].env,
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
