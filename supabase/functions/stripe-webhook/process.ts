/**
 * One Stripe event, however it came (delivered to the webhook, or found by the sweep in
 * Stripe's event list): parsed by its type's schema (an unusable one is recorded as
 * invalid), what it needs from Stripe read before any transaction (`read.ts`), then
 * recorded once in stripe_events_log and applied to its order in one transaction
 * (`insert … on conflict do nothing` on the event id: a second copy, by either way,
 * changes nothing). After commit: alerts, a subscription cancellation decided under the
 * lock, and the hand-offs of a paid order and of a changed panel target, which the
 * caller chooses (the webhook invokes functions in the background; the sweep leaves
 * them to its own later jobs).
 *
 * @module
 */
import type { Alerter } from "../_shared/platform/alerts.ts";
import type { Sql } from "../_shared/platform/db.ts";
import type { Logger } from "../_shared/platform/log.ts";
import { cutText, wellFormedJson } from "../_shared/platform/text.ts";
import type { Stripe } from "../_shared/stripe/client.ts";
import { carryOutSubscriptionCancel } from "../_shared/stripe/subscription_cancel.ts";
import { ACTOR, type Applied, type ApplyDeps, applyEvent } from "./apply.ts";
import { readStripeFacts, type StripeFacts, StripeRefusal } from "./read.ts";
import { parseShopEvent, type ShopEvent } from "./schemas.ts";
import { isHandledEventType } from "../_shared/manifest.ts";

/** What processing an event needs. */
export interface ProcessDeps extends ApplyDeps {
  sql: Sql;
  stripe: Stripe;
  alert: Alerter;
  log: Logger;
}

/** How an event reached the shop (`stripe_events_log.received_via`). */
export type ReceivedVia = "webhook" | "poll";

/** What follows the commit of an applied event, as the caller wants it done. */
export interface AfterCommit {
  /** A paid order to provision. */
  provision(orderId: string, log: Logger): Promise<void>;
  /** An order whose panel target changed (its `panel_action_due_at` is set). */
  sync(orderId: string, log: Logger): Promise<void>;
  /** Runs one piece of post-commit work: in the background, or awaited. */
  run(work: Promise<unknown>): Promise<unknown> | void;
}

/** How to process one event. */
export interface ProcessOptions {
  via: ReceivedVia;
  after: AfterCommit;
}

/** What processing an event did. */
export type Processed =
  | { duplicate: true }
  | {
    duplicate: false;
    outcome: Applied["outcome"] | "invalid" | "failed";
    orderId: string | null;
  };

/** An event's JSON text, as stored in `stripe_events_log.payload` (jsonb). */
type Payload = string;

type ParsedEvent =
  | { ok: true; event: ShopEvent; payload: Payload }
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
 * A JSON escape that may need care: a NUL (Postgres refuses it in jsonb) or a
 * surrogate (a lone one is not text). Raw control characters are not JSON, and the
 * body was decoded as UTF-8: without such an escape, the text is stored as it came.
 */
const SUSPECT_ESCAPE = /\\u(?:0000|d[89a-f])/i;

/**
 * Reads an event's JSON text as an event the shop can act on (every object it reads
 * parsed by its schema, every string well formed), or says why it is not one. The
 * body is parsed once; only a body with a suspect escape is copied and cleaned.
 */
function parseEvent(body: string, raw: unknown): ParsedEvent {
  const clean = !SUSPECT_ESCAPE.test(body);
  const json = clean ? raw : wellFormedJson(raw);
  const named = json as { id?: unknown; type?: unknown } | null;
  const id = typeof named?.id === "string" ? named.id : undefined;
  const type = typeof named?.type === "string" ? named.type : undefined;
  const parsed = parseShopEvent(json);
  if (!parsed.ok) return { ok: false, problem: parsed.problem, id, type };
  if (!clean && holdsNul(json)) {
    return { ok: false, problem: "the event holds a NUL character", id, type };
  }
  return {
    ok: true,
    event: parsed.event,
    payload: clean ? body : JSON.stringify(json),
  };
}

/** Text safe for Postgres: well formed, NUL characters made visible, cut whole. */
function storable(text: string, max = 255): string {
  return cutText(text.replaceAll("\0", "\uFFFD"), max);
}

/**
 * Records an event we cannot use as `invalid` (once: a retry of the same body maps to
 * the same id) and alerts; nothing else is written.
 */
async function recordInvalid(
  deps: ProcessDeps,
  body: string,
  parsed: Extract<ParsedEvent, { ok: false }>,
  options: ProcessOptions,
): Promise<Processed> {
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
      processed_at, received_via)
    values (${eventId}, ${type}, 'invalid', ${problem}, ${
    deps.sql.json({ body: storable(body, 64_000), sha256: hex })
  }, now(), ${options.via})
    on conflict (event_id) do nothing
    returning event_id`;
  if (recorded.length === 0) {
    log.info("Duplicate event acknowledged");
    return { duplicate: true };
  }
  log.warn("Signed event recorded as invalid", { problem, via: options.via });
  await options.after.run(deps.alert({
    title: "Unusable Stripe event",
    message:
      `A correctly signed Stripe event could not be used (${problem}). It was recorded as invalid and acknowledged; check it in the Stripe dashboard.`,
    eventId,
    fields: { event_type: type },
  }));
  return { duplicate: false, outcome: "invalid", orderId: null };
}

/**
 * Records an event Stripe's refusal keeps from being applied (a 4xx on a read: retrying
 * cannot help) as `failed` and alerts.
 */
async function recordRefused(
  deps: ProcessDeps,
  event: ShopEvent,
  payload: Payload,
  refusal: StripeRefusal,
  options: ProcessOptions,
): Promise<Processed> {
  const log = deps.log.child({ event_id: event.id, event_type: event.name });
  const error = storable(refusal.message, 4_000);
  const recorded = await deps.sql`
    insert into public.stripe_events_log (event_id, type, api_version, stripe_created_at,
      outcome, error, payload, processed_at, received_via)
    values (${event.id}, ${event.name}, ${event.apiVersion}, to_timestamp(${event.created}),
      'failed', ${error}, ${payload}::text::jsonb, now(), ${options.via})
    on conflict (event_id) do nothing
    returning event_id`;
  if (recorded.length === 0) {
    log.info("Duplicate event acknowledged");
    return { duplicate: true };
  }
  log.error("Stripe refused a read the event needs; recorded as failed", {
    error,
  });
  await options.after.run(deps.alert({
    title: "Stripe event could not be applied",
    message:
      `${error}. The event was recorded as failed and acknowledged (Stripe would only send it again); check it in the Stripe dashboard and apply it by hand.`,
    eventId: event.id,
    fields: { event_type: event.name },
  }));
  return { duplicate: false, outcome: "failed", orderId: null };
}

/**
 * Records an event of a type the shop does not act on, and its outcome, in one
 * statement (no transaction, no log line: it changes nothing but its own row); a copy
 * already recorded makes it a duplicate.
 */
async function recordIgnored(
  sql: Sql,
  event: ShopEvent,
  payload: Payload,
  via: ReceivedVia,
): Promise<Processed> {
  const recorded = await sql`
    insert into public.stripe_events_log (event_id, type, api_version,
      stripe_created_at, outcome, payload, processed_at, received_via)
    values (${event.id}, ${event.name}, ${event.apiVersion},
      to_timestamp(${event.created}), 'ignored', ${payload}::text::jsonb,
      now(), ${via})
    on conflict (event_id) do nothing
    returning event_id`;
  return recorded.length === 0
    ? { duplicate: true }
    : { duplicate: false, outcome: "ignored", orderId: null };
}

/** An id as Stripe makes them (anything else is left to the event's schema). */
const STRIPE_ID = /^[\x21-\x7e]{1,255}$/;

/** Whether the event is recorded already (its Stripe reads are then skipped). */
async function isRecorded(sql: Sql, eventId: string): Promise<boolean> {
  const rows = await sql`select 1 from public.stripe_events_log
    where event_id = ${eventId}`;
  return rows.length > 0;
}

/**
 * Records and applies one event given as its JSON text (the webhook's verified body, or
 * an event from Stripe's list), then does what follows the commit. Throws when it could
 * not be recorded (Stripe or the database unavailable): nothing was written, and the
 * event can be processed again.
 */
export async function processEvent(
  deps: ProcessDeps,
  body: string,
  options: ProcessOptions,
): Promise<Processed> {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return await recordInvalid(deps, body, {
      ok: false,
      problem: "the body is not JSON",
    }, options);
  }
  // A copy of an event the shop acts on, recorded already, costs this one statement
  // and no log line, before its object is read: it changes nothing.
  const named = raw as { id?: unknown; type?: unknown } | null;
  if (
    typeof named?.id === "string" && STRIPE_ID.test(named.id) &&
    typeof named.type === "string" && isHandledEventType(named.type) &&
    await isRecorded(deps.sql, named.id)
  ) return { duplicate: true };
  const parsed = parseEvent(body, raw);
  if (!parsed.ok) return await recordInvalid(deps, body, parsed, options);
  const event = parsed.event;
  if (event.type === "other") {
    return await recordIgnored(deps.sql, event, parsed.payload, options.via);
  }
  const log = deps.log.child({ event_id: event.id, event_type: event.name });
  // Read first, outside any transaction; then lock and decide on the locked row.
  let facts: StripeFacts;
  try {
    facts = await readStripeFacts(deps.stripe, event);
  } catch (error) {
    if (error instanceof StripeRefusal) {
      return await recordRefused(deps, event, parsed.payload, error, options);
    }
    throw error;
  }
  const applied = await deps.sql.begin(async (tx) => {
    const recorded = await tx`
      insert into public.stripe_events_log (event_id, type, api_version,
        stripe_created_at, payload, received_via)
      values (${event.id}, ${event.name}, ${event.apiVersion},
        to_timestamp(${event.created}), ${parsed.payload}::text::jsonb,
        ${options.via})
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
  if (applied === "duplicate") return { duplicate: true };

  const orderLog = log.child({ order_id: applied.orderId });
  orderLog.info(`Event ${applied.outcome}`, {
    error: applied.error,
    via: options.via,
  });
  const { after } = options;
  if (applied.alert) await after.run(deps.alert(applied.alert));
  if (applied.cancel) {
    // After commit: the intent is recorded, so a failed call is retried later.
    await after.run(carryOutSubscriptionCancel(deps, applied.cancel, ACTOR));
  }
  if (applied.provision) {
    await after.run(after.provision(applied.provision, orderLog));
  }
  if (applied.sync) await after.run(after.sync(applied.sync, orderLog));
  return {
    duplicate: false,
    outcome: applied.outcome,
    orderId: applied.orderId ?? null,
  };
}
