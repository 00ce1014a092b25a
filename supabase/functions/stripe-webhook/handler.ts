/**
 * `stripe-webhook`: Stripe's signed events. The signature is checked on the raw body;
 * then the event goes the one way every event goes (`process.ts`, the sweep's recovery
 * of undelivered events included): parsed by its type's schema (an unusable one is
 * recorded as invalid and acknowledged), what it needs from Stripe read before any
 * transaction, recorded once in stripe_events_log and applied to its order in one
 * transaction (so a failure leaves nothing half-written and a 5xx makes Stripe retry).
 * After commit, in the background: alerts, a subscription cancellation decided under
 * the lock, a paid order handed to `servers-provision`, an order whose panel target
 * changed handed to `sync-server-status`. What an event does is in `apply.ts`.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { createAlerter } from "../_shared/platform/alerts.ts";
import { type Env, serviceKey } from "../_shared/platform/config.ts";
import { isTransientDbError } from "../_shared/platform/db.ts";
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
  verifyStripeSignature,
  WEBHOOK_BODY_LIMIT,
} from "../_shared/stripe/client.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";
import { ACTOR } from "./apply.ts";
import { type ProcessDeps, type Processed, processEvent } from "./process.ts";

/** What the handler needs. */
export interface WebhookDeps extends ProcessDeps {
  webhookSecret: string;
  /** A service-role client: provisioning is invoked through it. */
  service: SupabaseClient;
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

/** The id a body names, for the log (undefined when it names none). */
function eventIdOf(body: string): string | undefined {
  try {
    const id = (JSON.parse(body) as { id?: unknown } | null)?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
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
      // Verifies the signature only: processEvent parses the body, once.
      await verifyStripeSignature(
        deps.stripe,
        body,
        signature,
        deps.webhookSecret,
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
      throw error;
    }
    // Signed: a body that is not a usable event is recorded as invalid by processEvent.
    let processed: Processed;
    try {
      processed = await processEvent(deps, body, {
        via: "webhook",
        after: {
          provision: (orderId, log) => handOff(deps, orderId, log),
          sync: (orderId, log) => handOffSync(deps, orderId, log),
          // Stripe gets its answer first; the rest runs in the background.
          run: runInBackground,
        },
      });
    } catch (error) {
      throw unavailableOr(error, deps.log.child({ event_id: eventIdOf(body) }));
    }
    if (processed.duplicate) return json({ received: true, duplicate: true });
    return json({
      received: true,
      outcome: processed.outcome,
      order_id: processed.orderId,
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
