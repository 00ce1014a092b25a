/**
 * Sweep job: Stripe events the webhook never got. Stripe's event list (kept 30 days)
 * is read from a cursor in `shop_state` (`stripe_events_cursor`, minus an overlap), for
 * exactly the types the webhook handles; each event stripe_events_log does not have is
 * recorded and applied through the webhook's own path (`processEvent`, `via: "poll"`),
 * so a copy delivered later, or applied twice at once, changes nothing. A quiet sweep
 * costs one Stripe call.
 *
 * @module
 */
import { HANDLED_EVENT_TYPES, isHandledEventType } from "../manifest.ts";
import { changeOrder } from "../orders/orders.ts";
import { isTransientDbError, type Sql } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import { Stripe } from "../stripe/client.ts";
import {
  type AfterCommit,
  processEvent,
} from "../../stripe-webhook/process.ts";
import { ACTOR, clock, type Count, type SweepDeps } from "./job.ts";

/** `GET /v1/events` takes at most this many `types[]`. */
export const MAX_LISTED_TYPES = 20;
/**
 * How far before the cursor each sweep lists again: events created in the same second
 * as the cursor, or shown late by Stripe's list, are not skipped.
 */
export const EVENTS_OVERLAP_SECONDS = 5 * 60;
/**
 * With no cursor yet (the first sweep), how far back the list is read: Stripe retries
 * a delivery for 3 days, so an older event was settled one way or the other long ago;
 * replaying 30 days of history into a fresh log would re-announce old payments.
 */
export const FIRST_LOOKBACK_SECONDS = 3 * 86400;
/**
 * An event younger than this is left to its delivery (it is usually on its way): the
 * next sweep applies it if it still has not come, so a healthy webhook never raises
 * the "not delivering" alert by racing the sweep.
 */
export const DELIVERY_GRACE_SECONDS = 60;
/** The `shop_state` key of the cursor: the newest `created` the sweep has settled. */
export const EVENTS_CURSOR_KEY = "stripe_events_cursor";
/** Events per page of the list (Stripe's maximum). */
const PAGE_SIZE = 100;
/** The sweep's Stripe calls: short and retried once, so an outage costs seconds. */
const STRIPE_CALL = { timeout: 10_000, maxNetworkRetries: 1 };

/** The types the sweep lists: the webhook's, which must fit in one list call. */
const LISTED_TYPES = listedTypes(HANDLED_EVENT_TYPES);

/** Checks that the handled types fit in one `types[]` filter (Stripe allows 20). */
export function listedTypes(types: readonly string[]): string[] {
  if (types.length > MAX_LISTED_TYPES) {
    throw new RangeError(
      `The webhook handles ${types.length} event types, Stripe lists at most ${MAX_LISTED_TYPES} at once: list them in groups`,
    );
  }
  return [...types];
}

/** The cursor, in Stripe's seconds, or null before the first sweep that saw events. */
async function readCursor(sql: Sql): Promise<number | null> {
  const [row] = await sql<{ created: number | null }[]>`
    select (value->>'created')::bigint::float8 as created from public.shop_state
    where key = ${EVENTS_CURSOR_KEY}`;
  return row?.created ?? null;
}

async function writeCursor(sql: Sql, created: number, at: Date): Promise<void> {
  await sql`
    insert into public.shop_state (key, value, updated_at)
    values (${EVENTS_CURSOR_KEY}, ${sql.json({ created })}, ${at})
    on conflict (key) do update set value = excluded.value,
      updated_at = excluded.updated_at`;
}

/**
 * The handled events created since `since`, newest first, and whether the list is
 * whole (false: the budget ended first). Filtered again here, so a list that answers
 * more than asked (types or times) is still read right.
 */
async function listSince(
  deps: SweepDeps,
  since: number,
  more: () => boolean,
): Promise<{ events: Stripe.Event[]; whole: boolean }> {
  const events: Stripe.Event[] = [];
  let startingAfter: string | undefined;
  for (;;) {
    const page = await deps.stripe.events.list({
      types: LISTED_TYPES,
      created: { gte: since },
      limit: PAGE_SIZE,
      ...(startingAfter ? { starting_after: startingAfter } : {}),
    }, STRIPE_CALL);
    for (const event of page.data) {
      if (event.created < since) return { events, whole: true };
      if (isHandledEventType(event.type)) events.push(event);
    }
    const last = page.data.at(-1);
    if (!page.has_more || !last) return { events, whole: true };
    if (!more()) return { events, whole: false };
    startingAfter = last.id;
  }
}

/** Whether an error leaves an event for the next sweep (Stripe or the database down). */
function isTemporary(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeError ||
    error instanceof DomainError || isTransientDbError(error);
}

/**
 * Applies the handled events Stripe has and stripe_events_log does not, oldest first,
 * then moves the cursor; one alert when any was missing.
 */
export async function recoverEvents(
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
): Promise<void> {
  const at = clock(deps);
  const now = Math.floor(at.getTime() / 1000);
  const cursor = await readCursor(deps.sql);
  const since = cursor === null
    ? now - FIRST_LOOKBACK_SECONDS
    : cursor - EVENTS_OVERLAP_SECONDS;
  let listed: { events: Stripe.Event[]; whole: boolean };
  try {
    listed = await listSince(deps, since, more);
  } catch (error) {
    if (!(error instanceof Stripe.errors.StripeError)) throw error;
    // The cursor stays: the next sweep asks again.
    deps.log.warn("Listing Stripe's events failed", {
      error: error.message,
      status: error.statusCode ?? null,
    });
    count("events.failed");
    return;
  }
  const { events } = listed;
  const ids = events.map((event) => event.id);
  const known = new Set(
    ids.length === 0 ? [] : (await deps.sql<{ event_id: string }[]>`
      select event_id from public.stripe_events_log
      where event_id in ${deps.sql(ids)}`).map((row) => row.event_id),
  );
  // Oldest first (the list is newest first; ties keep Stripe's order, reversed).
  const missing = events.filter((event) => !known.has(event.id)).reverse()
    .sort((a, b) => a.created - b.created);

  // The oldest event left for a later sweep holds the cursor back.
  let held: number | null = null;
  const recovered: Stripe.Event[] = [];
  const after = afterCommit(deps);
  for (const event of missing) {
    if (event.created > now - DELIVERY_GRACE_SECONDS || !more()) {
      held = event.created;
      break;
    }
    const log = deps.log.child({ event_id: event.id, event_type: event.type });
    try {
      const processed = await processEvent(deps, JSON.stringify(event), {
        via: "poll",
        after,
      });
      if (processed.duplicate) {
        // Its delivery came meanwhile.
        count("events.duplicate");
        continue;
      }
      log.warn("Applied a Stripe event the webhook never received", {
        outcome: processed.outcome,
        order_id: processed.orderId,
      });
      recovered.push(event);
      count("events.recovered");
    } catch (error) {
      if (!isTemporary(error)) throw error;
      // Nothing of it was written: the next sweep tries it again, and the rest after it.
      log.warn("Applying a Stripe event from the list failed", {
        error: error instanceof Error ? error.message : String(error),
      });
      count("events.failed");
      held = event.created;
      break;
    }
  }

  if (recovered.length > 0) {
    await deps.alert({
      title: "Stripe events recovered by the sweep",
      message:
        `The sweep applied ${recovered.length} Stripe event(s) that never reached the webhook (${
          summarize(recovered)
        }). Stripe is not delivering to the webhook endpoint: check it is enabled, its URL and its signing secret.`,
      fields: {
        recovered: recovered.length,
        oldest_event: recovered[0].id,
        newest_event: recovered[recovered.length - 1].id,
      },
    });
  }

  // Only a whole list moves the cursor: an unread page may hold older events.
  if (!listed.whole) return;
  const newest = events.reduce<number | null>(
    (max, event) => max === null || event.created > max ? event.created : max,
    null,
  );
  const next = held ?? newest;
  if (next !== null && next !== cursor) await writeCursor(deps.sql, next, at);
}

/** Event types and counts, e.g. `2 invoice.paid, 1 checkout.session.completed`. */
function summarize(events: Stripe.Event[]): string {
  const counts = new Map<string, number>();
  for (const event of events) {
    counts.set(event.type, (counts.get(event.type) ?? 0) + 1);
  }
  return [...counts].map(([type, n]) => `${n} ${type}`).join(", ");
}

/**
 * What follows a recovered event's commit, within this sweep: a paid order is due for
 * provisioning now (the provisioning job takes it), a changed panel target is already
 * due (the panel_actions job converges it); everything is awaited.
 */
function afterCommit(deps: SweepDeps): AfterCommit {
  return {
    async provision(orderId) {
      await deps.sql.begin((tx) =>
        changeOrder(tx, orderId, {
          onlyFrom: ["paid"],
          set: { next_attempt_at: clock(deps) },
          actor: ACTOR,
        })
      );
    },
    sync: () => Promise.resolve(),
    run: (work) => work,
  };
}
