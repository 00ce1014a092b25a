/**
 * Plan changes as rows (`public.plan_changes`): the one writer of them, and the
 * customer's view. A change moves `requested` → `awaiting_payment` | `scheduled` →
 * `applied`, or ends `failed`, `canceled` or `expired`; every move is guarded by the
 * status it expects, so a webhook, the sweep and the customer's own request never
 * apply one change twice. Applying one gives its order the new plan through
 * {@linkcode entitle}, in the same transaction.
 *
 * @module
 */
import type { Sql, Tx } from "../platform/db.ts";
import { scrubSecrets } from "../platform/scrub.ts";
import {
  entitle,
  type Order,
  type OrderLimits,
  recordOrderEvent,
} from "./orders.ts";

import type {
  PlanChangeKind,
  PlanChangeStatus,
  PlanChangeView,
} from "../contract.ts";

export {
  PLAN_CHANGE_STATUSES,
  type PlanChangeKind,
  type PlanChangeStatus,
  type PlanChangeView,
} from "../contract.ts";

/** The statuses of a change still on its way (one per order at most). */
export const OPEN_PLAN_CHANGE: readonly PlanChangeStatus[] = [
  "requested",
  "awaiting_payment",
  "scheduled",
];

/** One row of `public.plan_changes`. */
export interface PlanChange {
  id: string;
  order_id: string;
  user_id: string;
  kind: PlanChangeKind;
  status: PlanChangeStatus;
  from_plan_id: string;
  to_plan_id: string;
  from_price_id: string;
  to_price_id: string;
  amount_cents: number;
  currency: string;
  limits: OrderLimits;
  amount_due_cents: number;
  node_id: number | null;
  reserve_memory_mb: number;
  reserve_disk_mb: number;
  proration_date: Date | null;
  effective_at: Date | null;
  expires_at: Date | null;
  stripe_invoice_id: string | null;
  stripe_schedule_id: string | null;
  idempotency_key: string;
  next_attempt_at: Date | null;
  attempts: number;
  error_message: string | null;
  customer_message: string | null;
  actor: string;
  created_at: Date;
  updated_at: Date;
  settled_at: Date | null;
}

/** What a new change is made of. */
export type NewPlanChange = Pick<
  PlanChange,
  | "order_id"
  | "user_id"
  | "kind"
  | "from_plan_id"
  | "to_plan_id"
  | "from_price_id"
  | "to_price_id"
  | "amount_cents"
  | "currency"
  | "limits"
  | "amount_due_cents"
  | "node_id"
  | "reserve_memory_mb"
  | "reserve_disk_mb"
  | "proration_date"
  | "effective_at"
  | "next_attempt_at"
  | "actor"
>;

type Db = Sql | Tx;

function columns(db: Db) {
  return db`id, order_id, user_id, kind, status, from_plan_id, to_plan_id,
    from_price_id, to_price_id, amount_cents, currency, limits, amount_due_cents,
    node_id::int as node_id, reserve_memory_mb, reserve_disk_mb, proration_date,
    effective_at, expires_at, stripe_invoice_id, stripe_schedule_id, idempotency_key,
    next_attempt_at, attempts, error_message, customer_message, actor, created_at,
    updated_at, settled_at`;
}

/**
 * Records a new change (its id makes its idempotency key); answers null when the
 * order already has one on its way (the unique index decides a race).
 */
export async function createPlanChange(
  tx: Tx,
  change: NewPlanChange,
): Promise<PlanChange | null> {
  const id = crypto.randomUUID();
  const [created] = await tx<PlanChange[]>`
    insert into public.plan_changes ${
    tx({
      ...change,
      id,
      limits: tx.json(change.limits),
      idempotency_key: `plan-change-${id}`,
    })
  }
    on conflict do nothing
    returning ${columns(tx)}`;
  return created ?? null;
}

/** The order's change on its way, optionally locked. */
export async function openPlanChange(
  db: Db,
  orderId: string,
  options: { lock?: boolean } = {},
): Promise<PlanChange | null> {
  const [change] = await db<PlanChange[]>`
    select ${columns(db)} from public.plan_changes
    where order_id = ${orderId} and status in ${db(OPEN_PLAN_CHANGE)}
    ${options.lock ? db`for update` : db``}`;
  return change ?? null;
}

/** One change, optionally locked. */
export async function readPlanChange(
  db: Db,
  id: string,
  options: { lock?: boolean } = {},
): Promise<PlanChange | null> {
  const [change] = await db<PlanChange[]>`
    select ${columns(db)} from public.plan_changes where id = ${id}
    ${options.lock ? db`for update` : db``}`;
  return change ?? null;
}

/** The latest change of each of these orders (what "My servers" shows). */
export async function latestPlanChanges(
  db: Db,
  orderIds: readonly string[],
): Promise<Map<string, PlanChange>> {
  if (orderIds.length === 0) return new Map();
  const rows = await db<PlanChange[]>`
    select distinct on (order_id) ${columns(db)} from public.plan_changes
    where order_id in ${db(orderIds)}
    order by order_id, created_at desc`;
  return new Map(rows.map((row) => [row.order_id, row]));
}

/** What a move of a change sets besides its status. */
export type PlanChangeFields = Partial<
  Pick<
    PlanChange,
    | "stripe_invoice_id"
    | "stripe_schedule_id"
    | "expires_at"
    | "effective_at"
    | "amount_due_cents"
    | "next_attempt_at"
    | "attempts"
    | "error_message"
    | "customer_message"
  >
>;

/**
 * Moves a change that is still in one of `from` to `to` (a final status also
 * settles it and lets its room go); answers the change afterwards, or null when it
 * had moved on. A timeline row records the move, shown to the customer in
 * `customerMessage` when given.
 */
export async function movePlanChange(
  tx: Tx,
  change: Pick<PlanChange, "id" | "order_id">,
  move: {
    from: readonly PlanChangeStatus[];
    to: PlanChangeStatus;
    set?: PlanChangeFields;
    actor: string;
    message: string;
    customerMessage?: string;
    detail?: Record<string, unknown>;
  },
): Promise<PlanChange | null> {
  // Orders are locked before their changes everywhere (as the webhook does).
  await tx`select id from public.orders where id = ${change.order_id} for update`;
  const final = !OPEN_PLAN_CHANGE.includes(move.to);
  const values: Record<string, unknown> = Object.fromEntries(
    Object.entries(move.set ?? {}).filter(([, value]) => value !== undefined)
      .map(([key, value]) => [
        key,
        typeof value === "string" ? scrubSecrets(value) : value,
      ]),
  );
  values.status = move.to;
  if (final) {
    values.settled_at = new Date();
    values.next_attempt_at = null;
  }
  if (move.customerMessage !== undefined) {
    values.customer_message = move.customerMessage;
  }
  const [moved] = await tx<PlanChange[]>`
    update public.plan_changes set ${tx(values)}
    where id = ${change.id} and status in ${tx(move.from)}
    returning ${columns(tx)}`;
  if (!moved) return null;
  await recordOrderEvent(tx, change.order_id, {
    kind: "plan_change",
    message: move.message,
    detail: {
      change_id: change.id,
      status: move.to,
      kind: moved.kind,
      from_plan_id: moved.from_plan_id,
      to_plan_id: moved.to_plan_id,
      ...move.detail,
    },
    actor: move.actor,
    customerMessage: move.customerMessage,
  });
  return moved;
}

/**
 * Applies a change on its way: the change is `applied` and its order takes the new
 * plan, price and limits (and its server's build is due on the panel), in this
 * transaction. Answers the order, or null when the change had moved on.
 */
export async function applyPlanChange(
  tx: Tx,
  change: PlanChange,
  options: { actor: string; now: Date; message: string },
): Promise<Order | null> {
  const moved = await movePlanChange(tx, change, {
    from: OPEN_PLAN_CHANGE,
    to: "applied",
    actor: options.actor,
    message: options.message,
    customerMessage: change.kind === "upgrade"
      ? `Upgrade to ${change.to_plan_id} paid: your server gets its new limits now`
      : `Your plan is now ${change.to_plan_id}: your server gets its new limits now`,
  });
  if (!moved) return null;
  return await entitle(tx, change.order_id, {
    plan_id: change.to_plan_id,
    stripe_price_id: change.to_price_id,
    amount_cents: change.amount_cents,
    limits: change.limits,
  }, {
    actor: options.actor,
    reason: options.message,
    now: options.now,
  });
}

/** Counts an attempt at carrying a `requested` change on, and when to try next. */
export async function postponePlanChange(
  db: Db,
  id: string,
  until: Date,
  problem: string,
): Promise<void> {
  await db`update public.plan_changes
    set next_attempt_at = ${until}, attempts = attempts + 1,
      error_message = ${scrubSecrets(problem)}
    where id = ${id} and status = 'requested'`;
}

/**
 * Leases up to `limit` changes due for the sweep (`requested` ones whose call may have
 * been lost, and `awaiting_payment` ones past their pending update's expiry) until
 * `leaseUntil`, skipping rows others hold.
 */
export async function leaseDuePlanChanges(
  sql: Sql,
  options: { now: Date; leaseUntil: Date; limit: number },
): Promise<PlanChange[]> {
  return await sql<PlanChange[]>`
    update public.plan_changes set next_attempt_at = ${options.leaseUntil}
    where id in (
      select id from public.plan_changes
      where status in ('requested', 'awaiting_payment')
        and next_attempt_at <= ${options.now}
      order by next_attempt_at
      limit ${options.limit}
      for update skip locked)
    returning ${columns(sql)}`;
}

/** What the customer reads about a change in this state. */
function changeWords(change: PlanChange): string {
  const day = (date: Date | null) => date?.toISOString().slice(0, 10) ?? "";
  switch (change.status) {
    case "requested":
      return change.kind === "upgrade"
        ? "Your upgrade is being charged"
        : "Your downgrade is being scheduled";
    case "awaiting_payment":
      return `Your upgrade waits for its payment; update your card in billing before ${
        day(change.expires_at)
      } or the change is dropped`;
    case "scheduled":
      return `Your plan changes to ${change.to_plan_id} on ${
        day(change.effective_at)
      }; you can cancel this until then`;
    case "applied":
      return `Your plan is now ${change.to_plan_id}`;
    case "failed":
      return change.customer_message ??
        "The plan change could not be made; nothing was charged";
    case "canceled":
      return "The plan change was canceled";
    case "expired":
      return "The upgrade's payment did not come through: your plan is unchanged";
  }
}

/** The customer's view of a change. */
export function planChangeView(change: PlanChange): PlanChangeView {
  return {
    id: change.id,
    kind: change.kind,
    from_plan_id: change.from_plan_id,
    to_plan_id: change.to_plan_id,
    status: change.status,
    effective_at: change.effective_at?.toISOString() ?? null,
    amount_due_cents: change.amount_due_cents,
    currency: change.currency,
    message: changeWords(change),
  };
}

/** What a subscription read from Stripe says about a plan change on its way. */
export interface BilledPrice {
  /** The price the subscription bills now. */
  priceId: string | null;
  /** A change still waits for its invoice. */
  pendingUpdate: boolean;
}

/**
 * Follows the order's change on its way from the subscription as Stripe has it now
 * (any subscription event, or the sweep's read): billing the new price with nothing
 * pending applies it (an upgrade paid, a downgrade at its renewal); an upgrade whose
 * pending update is gone while the old price stays has expired, and its room is let
 * go. Answers what happened, or null.
 */
export async function settlePlanChange(
  tx: Tx,
  orderId: string,
  billed: BilledPrice,
  options: { actor: string; now: Date; detail?: Record<string, unknown> },
): Promise<"applied" | "expired" | null> {
  await tx`select id from public.orders where id = ${orderId} for update`;
  const change = await openPlanChange(tx, orderId, { lock: true });
  if (!change || billed.priceId === null) return null;
  if (billed.priceId === change.to_price_id && !billed.pendingUpdate) {
    const order = await applyPlanChange(tx, change, {
      actor: options.actor,
      now: options.now,
      message: change.kind === "upgrade"
        ? `Upgrade to ${change.to_plan_id} paid: the subscription bills ${change.to_price_id}`
        : `Downgrade to ${change.to_plan_id} took effect: the subscription bills ${change.to_price_id}`,
    });
    return order ? "applied" : null;
  }
  if (
    change.status === "awaiting_payment" && !billed.pendingUpdate &&
    billed.priceId === change.from_price_id
  ) {
    const moved = await movePlanChange(tx, change, {
      from: ["awaiting_payment"],
      to: "expired",
      actor: options.actor,
      message:
        `Upgrade to ${change.to_plan_id} expired unpaid: the subscription stays on ${change.from_price_id}; its room is released`,
      customerMessage:
        "The upgrade's payment did not come through: your plan is unchanged and nothing more is charged",
      detail: options.detail,
    });
    return moved ? "expired" : null;
  }
  return null;
}
