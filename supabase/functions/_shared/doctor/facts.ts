/**
 * The doctor's I/O: finds the orders a query names and gathers, read-only, what the
 * database, Stripe and the panel say about each. Every outside call is a GET with a
 * short timeout and no retry (at most 5 per order and 1 for the shop); a side that
 * cannot be reached is recorded as such, never thrown. The decisions are in
 * `causes.ts`, over these facts.
 *
 * @module
 */
import { latestPlanChanges, type PlanChange } from "../orders/plan_changes.ts";
import type { Sql } from "../platform/db.ts";
import type { Order } from "../orders/orders.ts";
import type { PanelClient } from "../panel/client.ts";
import type { Stripe } from "../stripe/client.ts";
import { HANDLED_EVENT_TYPES } from "../manifest.ts";

/** How long each outside call may take. */
export const DOCTOR_TIMEOUT_MS = 5_000;

/** What a query names. */
export type QueryKind =
  | "order_id"
  | "email"
  | "checkout_session"
  | "subscription"
  | "panel_server_id"
  | "panel_identifier";

/** What a query is, or null when it is none of the ids the doctor knows. */
export function queryKind(query: string): QueryKind | null {
  const q = query.trim();
  if (
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(q)
  ) return "order_id";
  if (/^[^@\s]+@[^@\s]+$/.test(q)) return "email";
  if (/^cs_(test|live)_\w+$/.test(q)) return "checkout_session";
  if (/^sub_\w+$/.test(q)) return "subscription";
  if (/^\d{1,9}$/.test(q)) return "panel_server_id";
  if (/^[a-z0-9]{8}$/i.test(q)) return "panel_identifier";
  return null;
}

/** An order row with its customer's email. */
export type DoctorOrder = Order & { email: string | null };

/** The orders a query names, newest first (an email names all of its customer's). */
export async function findOrders(
  sql: Sql,
  query: string,
): Promise<DoctorOrder[]> {
  const q = query.trim();
  const kind = queryKind(q);
  if (kind === null) return [];
  const where = {
    order_id: sql`o.id = ${q}::uuid`,
    email: sql`lower(u.email) = lower(${q})`,
    checkout_session: sql`o.stripe_checkout_session_id = ${q}`,
    subscription: sql`o.stripe_subscription_id = ${q}`,
    // Eight digits may be an identifier too (hex that happens to have no letters).
    panel_server_id: sql`(o.pterodactyl_server_id = ${Number(q)}
      or o.pterodactyl_server_identifier = ${q})`,
    panel_identifier: sql`o.pterodactyl_server_identifier = ${q}`,
  }[kind];
  return await sql<DoctorOrder[]>`
    select o.*, u.email::text as email
    from public.orders o left join auth.users u on u.id = o.user_id
    where ${where}
    order by o.created_at desc
    limit 50`;
}

/** One row of the order's timeline. */
export interface TimelineRow {
  at: Date;
  kind: string;
  message: string;
  from_status: string | null;
  to_status: string | null;
  detail: Record<string, unknown>;
}

/** A Stripe event about the order, and whether the shop recorded it. */
export interface EventFact {
  id: string;
  type: string;
  created: Date;
  pending_webhooks: number;
  /** The outcome in stripe_events_log, or null when the shop never recorded it. */
  outcome: string | null;
}

/** What Stripe says about the order (`error`: Stripe could not be asked). */
export interface StripeFacts {
  error?: string;
  /** The checkout session; null when Stripe does not know it, undefined when not asked. */
  session?: {
    id: string;
    status: string | null;
    payment_status: string;
    metadata: Record<string, string>;
    subscription: string | null;
    expires_at: Date;
  } | null;
  subscription?: {
    id: string;
    status: string;
    cancel_at_period_end: boolean;
    cancel_at: Date | null;
    current_period_end: Date | null;
    latest_invoice:
      | {
        id: string;
        status: string | null;
        amount_due: number;
        currency: string;
      }
      | null;
  } | null;
  events?: EventFact[];
}

/** What the panel says about the order (`error`: the panel could not be asked). */
export interface PanelFacts {
  error?: string;
  /** The customer's panel account linked in the database (null: none linked). */
  linkedUserId: number | null;
  /** The panel's user with the customer's external id (null: none; undefined: not asked). */
  user?: { id: number; email: string } | null;
  /** The server with the order's external id (null: none; undefined: not asked). */
  server?: {
    id: number;
    identifier: string;
    status: string | null;
    suspended: boolean;
    node: number;
    user: number;
    memory: number;
    disk: number;
  } | null;
}

/** Problems of the whole shop. */
export interface ShopFacts {
  /** When the sweep last ran; null when it never has. */
  lastSweepAt: Date | null;
  /** Events Stripe has not delivered; `supported: false` when Stripe ignored the filter. */
  undelivered:
    | { supported: true; events: { id: string; type: string; created: Date }[] }
    | { supported: false; reason: string };
}

/** Everything gathered about one order. */
export interface OrderFacts {
  now: Date;
  /** Where the functions are, for the fix commands. */
  supabaseUrl: string;
  /** Where the panel is, for the fix commands. */
  panelUrl: string;
  order: DoctorOrder;
  timeline: TimelineRow[];
  stripe: StripeFacts;
  panel: PanelFacts;
  shop: ShopFacts;
  /** The order's latest plan change (on its way, or how the last one ended). */
  planChange?: PlanChange | null;
}

/** What gathering needs. */
export interface GatherDeps {
  sql: Sql;
  /** Null when Stripe is not configured. */
  stripe: Stripe | null;
  panel: PanelClient;
  supabaseUrl: string;
  now?: () => Date;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function date(seconds: number | null | undefined): Date | null {
  return seconds == null ? null : new Date(seconds * 1000);
}

/** The id of a Stripe field that may be expanded. */
function idOf(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "id" in value) {
    return String((value as { id: unknown }).id);
  }
  return null;
}

/** Whether a Stripe call failed with a 404 (the object does not exist). */
function notFound(error: unknown): boolean {
  return (error as { statusCode?: number })?.statusCode === 404;
}

/** Whether an event's object is the session, the subscription or one of its invoices. */
function concerns(
  event: Stripe.Event,
  ids: Set<string>,
): boolean {
  const object = event.data.object as unknown as Record<string, unknown>;
  if (ids.has(String(object.id))) return true;
  const parent = object.parent as
    | { subscription_details?: { subscription?: unknown } }
    | undefined;
  const sub = idOf(object.subscription) ??
    idOf(parent?.subscription_details?.subscription);
  return sub !== null && ids.has(sub);
}

async function gatherStripe(
  deps: GatherDeps,
  order: DoctorOrder,
): Promise<StripeFacts> {
  const stripe = deps.stripe;
  if (!stripe) return { error: "Stripe is not configured (STRIPE_SECRET_KEY)" };
  const facts: StripeFacts = {};
  try {
    if (order.stripe_checkout_session_id) {
      try {
        const s = await stripe.checkout.sessions.retrieve(
          order.stripe_checkout_session_id,
        );
        facts.session = {
          id: s.id,
          status: s.status,
          payment_status: s.payment_status,
          metadata: (s.metadata ?? {}) as Record<string, string>,
          subscription: idOf(s.subscription),
          expires_at: new Date(s.expires_at * 1000),
        };
      } catch (error) {
        if (!notFound(error)) throw error;
        facts.session = null;
      }
    }
    const subscriptionId = order.stripe_subscription_id ??
      facts.session?.subscription ?? null;
    if (subscriptionId) {
      try {
        const sub = await stripe.subscriptions.retrieve(subscriptionId, {
          expand: ["latest_invoice"],
        });
        const invoice =
          sub.latest_invoice && typeof sub.latest_invoice === "object"
            ? sub.latest_invoice
            : null;
        const ends = sub.items.data.map((i) => i.current_period_end);
        facts.subscription = {
          id: sub.id,
          status: sub.status,
          cancel_at_period_end: sub.cancel_at_period_end,
          cancel_at: date(sub.cancel_at),
          current_period_end: ends.length ? date(Math.max(...ends)) : null,
          latest_invoice: invoice
            ? {
              id: invoice.id!,
              status: invoice.status,
              amount_due: invoice.amount_due,
              currency: invoice.currency,
            }
            : null,
        };
      } catch (error) {
        if (!notFound(error)) throw error;
        facts.subscription = null;
      }
    }
    const ids = new Set(
      [order.stripe_checkout_session_id, subscriptionId].filter((id) =>
        id !== null
      ) as string[],
    );
    if (ids.size > 0) {
      // Stripe cannot filter by object: list the handled types in the order's window.
      const since = Math.floor(order.created_at.getTime() / 1000) - 60;
      const page = await stripe.events.list({
        created: { gte: since },
        types: [...HANDLED_EVENT_TYPES],
        limit: 100,
      });
      // Filtered here too: a Stripe (or sandbox) that ignores a filter changes nothing.
      const handled = new Set<string>(HANDLED_EVENT_TYPES);
      const mine = page.data.filter((e) =>
        handled.has(e.type) && e.created >= since && concerns(e, ids)
      );
      const logged = mine.length === 0 ? [] : await deps.sql<
        { event_id: string; outcome: string }[]
      >`select event_id, outcome from public.stripe_events_log
        where event_id in ${deps.sql(mine.map((e) => e.id))}`;
      const outcome = new Map(logged.map((r) => [r.event_id, r.outcome]));
      facts.events = mine.map((e) => ({
        id: e.id,
        type: e.type,
        created: new Date(e.created * 1000),
        pending_webhooks: e.pending_webhooks,
        outcome: outcome.get(e.id) ?? null,
      })).sort((a, b) => a.created.getTime() - b.created.getTime());
    }
  } catch (error) {
    facts.error = `Stripe could not be read: ${message(error)}`;
  }
  return facts;
}

async function gatherPanel(
  deps: GatherDeps,
  order: DoctorOrder,
): Promise<PanelFacts> {
  const [link] = await deps.sql<{ ptero_user_id: number }[]>`
    select ptero_user_id from public.external_accounts where user_id = ${order.user_id}`;
  const facts: PanelFacts = { linkedUserId: link?.ptero_user_id ?? null };
  // Before payment the panel has nothing to say about an order.
  if (["pending", "expired"].includes(order.status)) return facts;
  try {
    const user = await deps.panel.getUserByExternalId(order.user_id);
    facts.user = user ? { id: user.id, email: user.email } : null;
    const server = await deps.panel.getServerByExternalId(order.id);
    facts.server = server
      ? {
        id: server.id,
        identifier: server.identifier,
        status: server.status,
        suspended: server.suspended,
        node: server.node,
        user: server.user,
        memory: server.limits.memory,
        disk: server.limits.disk,
      }
      : null;
  } catch (error) {
    facts.error = `the panel could not be read: ${message(error)}`;
  }
  return facts;
}

/** Gathers the shop-wide facts once per query. */
export async function gatherShop(deps: GatherDeps): Promise<ShopFacts> {
  const [sweep] = await deps.sql<{ updated_at: Date }[]>`
    select updated_at from public.shop_state where key = 'last_sweep'`;
  let undelivered: ShopFacts["undelivered"];
  if (!deps.stripe) {
    undelivered = { supported: false, reason: "Stripe is not configured" };
  } else {
    try {
      const page = await deps.stripe.events.list({
        delivery_success: false,
        limit: 100,
      });
      // An event already delivered in the answer: this Stripe ignored the filter.
      undelivered = page.data.some((e) => e.pending_webhooks === 0)
        ? {
          supported: false,
          reason: "this Stripe API ignored the delivery_success filter",
        }
        : {
          supported: true,
          events: page.data.map((e) => ({
            id: e.id,
            type: e.type,
            created: new Date(e.created * 1000),
          })),
        };
    } catch (error) {
      undelivered = {
        supported: false,
        reason: `Stripe could not be read: ${message(error)}`,
      };
    }
  }
  return { lastSweepAt: sweep?.updated_at ?? null, undelivered };
}

/** Gathers everything about one order. */
export async function gatherOrder(
  deps: GatherDeps,
  order: DoctorOrder,
  shop: ShopFacts,
): Promise<OrderFacts> {
  const now = deps.now?.() ?? new Date();
  const [timeline, stripe, panel, changes] = await Promise.all([
    deps.sql<TimelineRow[]>`
      select created_at as at, kind, message, from_status::text as from_status,
        to_status::text as to_status, detail
      from public.order_events where order_id = ${order.id} order by id`,
    gatherStripe(deps, order),
    gatherPanel(deps, order),
    latestPlanChanges(deps.sql, [order.id]),
  ]);
  return {
    now,
    supabaseUrl: deps.supabaseUrl,
    panelUrl: deps.panel.url,
    order,
    timeline,
    stripe,
    panel,
    shop,
    planChange: changes.get(order.id) ?? null,
  };
}
