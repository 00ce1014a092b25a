/**
 * The one owner of an order's state. Every status change, every other write to an
 * order and every timeline row goes through this module; the database still decides
 * which transitions are legal (trigger `orders_before_update`) and writes the status
 * rows of the timeline itself (trigger `orders_record_status`), naming the actor and
 * reason set here. Row types come from here too.
 *
 * @module
 */
import type { Sql, Tx } from "../platform/db.ts";
import { scrubSecrets, scrubValue } from "../platform/scrub.ts";
import {
  LIMIT_COLUMNS,
  type OrderStatus,
  type PanelState,
  type SuspendReason,
} from "../contract.ts";

export {
  LIMIT_COLUMNS,
  ORDER_STATUSES,
  type OrderStatus,
  type PanelState,
  type SuspendReason,
} from "../contract.ts";

/** One row of `public.orders`. */
export interface Order {
  id: string;
  user_id: string;
  plan_id: string;
  item_type: string;
  term: string;
  region: string;
  server_name: string;
  status: OrderStatus;
  stripe_price_id: string;
  amount_cents: number;
  currency: string;
  memory_mb: number;
  disk_mb: number;
  cpu_percent: number;
  swap_mb: number;
  io_weight: number;
  databases: number;
  backups: number;
  allocations: number;
  /** The build the panel last confirmed (null: no server yet, or not known). */
  panel_limits: PanelLimits | null;
  stripe_checkout_session_id: string | null;
  stripe_checkout_url: string | null;
  checkout_expires_at: Date | null;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
  node_id: number | null;
  pterodactyl_server_id: number | null;
  pterodactyl_server_identifier: string | null;
  error_message: string | null;
  /** What the customer reads about the last problem (error_message is for operators). */
  customer_message: string | null;
  attempt_count: number;
  next_attempt_at: Date | null;
  paid_at: Date | null;
  paid_until: Date | null;
  subscription_status: string | null;
  cancel_at_period_end: boolean;
  /** When a coming cancellation takes effect (period end, or the portal's cancel_at). */
  cancel_at: Date | null;
  panel_target: PanelTarget;
  suspend_reason: SuspendReason | null;
  suspend_at: Date | null;
  delete_at: Date | null;
  delete_warned_at: Date | null;
  panel_state: PanelState | null;
  panel_seen_at: Date | null;
  panel_action_due_at: Date | null;
  panel_action_attempts: number;
  was_running: boolean | null;
  gave_up_at: Date | null;
  /** Set while the Stripe subscription is still to be canceled (when to try next). */
  subscription_cancel_due_at: Date | null;
  /** When the sweep last read the subscription back because paid_until passed. */
  subscription_checked_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** An order's (or a plan's) limits. */
export type OrderLimits = Pick<Order, typeof LIMIT_COLUMNS[number]>;

/** A server's build as the panel's build endpoint takes and shows it. */
export interface PanelLimits {
  memory: number;
  swap: number;
  disk: number;
  io: number;
  cpu: number;
  databases: number;
  backups: number;
  allocations: number;
}

/** The build an order's limits stand for on the panel. */
export function panelLimitsOf(limits: OrderLimits): PanelLimits {
  return {
    memory: limits.memory_mb,
    swap: limits.swap_mb,
    disk: limits.disk_mb,
    io: limits.io_weight,
    cpu: limits.cpu_percent,
    databases: limits.databases,
    backups: limits.backups,
    allocations: limits.allocations,
  };
}

/** Whether two builds differ in any limit. */
export function sameLimits(a: PanelLimits, b: PanelLimits): boolean {
  return (Object.keys(a) as (keyof PanelLimits)[]).every((key) =>
    a[key] === b[key]
  );
}

/**
 * Whether the panel's confirmed build differs from what the order is entitled to
 * (false while nothing is confirmed yet: the create sends the limits itself).
 */
export function limitsPending(
  order: OrderLimits & Pick<Order, "panel_limits">,
): boolean {
  return order.panel_limits != null &&
    !sameLimits(order.panel_limits, panelLimitsOf(order));
}

/** What the panel should show for an order's server. */
export type PanelTarget = "running" | "suspended" | "deleted";

/** Columns a change may set besides the status (identity and sale stay fixed). */
export type OrderFields = Partial<
  Pick<
    Order,
    | "stripe_checkout_session_id"
    | "stripe_checkout_url"
    | "checkout_expires_at"
    | "stripe_customer_id"
    | "stripe_subscription_id"
    | "node_id"
    | "pterodactyl_server_id"
    | "pterodactyl_server_identifier"
    | "error_message"
    | "customer_message"
    | "attempt_count"
    | "next_attempt_at"
    | "paid_at"
    | "paid_until"
    | "subscription_status"
    | "cancel_at_period_end"
    | "cancel_at"
    | "panel_target"
    | "panel_limits"
    | "suspend_reason"
    | "suspend_at"
    | "delete_at"
    | "delete_warned_at"
    | "panel_state"
    | "panel_seen_at"
    | "panel_action_due_at"
    | "panel_action_attempts"
    | "was_running"
    | "gave_up_at"
    | "subscription_cancel_due_at"
    | "subscription_checked_at"
  >
>;

/**
 * What a new order is made of: the customer, the request and the offer's snapshot; a
 * checkout also reserves its node and says when its checkout ends.
 */
export type NewOrder =
  & Pick<
    Order,
    | "user_id"
    | "plan_id"
    | "term"
    | "region"
    | "server_name"
    | "stripe_price_id"
    | "amount_cents"
    | "currency"
    | typeof LIMIT_COLUMNS[number]
  >
  & Partial<Pick<Order, "node_id" | "checkout_expires_at">>;

/** Kinds of timeline rows other than status changes (those the database writes). */
export type OrderEventKind =
  | "checkout"
  | "payment"
  | "provision_attempt"
  | "panel"
  | "alert"
  | "note"
  | "plan_change";

/** A timeline row to record. */
export interface OrderEvent {
  kind: OrderEventKind;
  /** The operator's words. */
  message: string;
  actor: string;
  detail?: Record<string, unknown>;
  /** Set to show the row to the order's owner, in these words (default: operator only). */
  customerMessage?: string;
}

/**
 * The words a customer reads for a problem whose operator detail is `error_message`,
 * by the status the order moves to.
 */
export function customerWords(status?: OrderStatus): string {
  switch (status) {
    case "expired":
      return "The checkout could not be completed; please start a new one";
    case "error":
    case undefined:
      return "Setting up your server hit a problem; we are retrying and our team has been told";
    default:
      return "Something on this order needs our attention; our team has been told";
  }
}

/** One change to an order, made by `actor` for `reason`. */
export interface OrderChange {
  /** New status; the database refuses an illegal transition. */
  to?: OrderStatus;
  /** Change only while the order is in one of these statuses (else nothing happens). */
  onlyFrom?: readonly OrderStatus[];
  set?: OrderFields;
  actor: string;
  /** Why; becomes the message of the status row on the timeline. */
  reason?: string;
  /** The caller's clock: a new panel target is due for the sweep from then. */
  now?: Date;
}

type Db = Sql | Tx;

/** Selects an order row typed as {@linkcode Order}. */
function selectOrder(db: Db) {
  return db`
    id, user_id, plan_id, item_type, term::text as term, region,
    server_name, status::text as status, stripe_price_id, amount_cents, currency,
    memory_mb, disk_mb, cpu_percent, swap_mb, io_weight, databases, backups,
    allocations, panel_limits, stripe_checkout_session_id, stripe_checkout_url,
    checkout_expires_at, stripe_customer_id, stripe_subscription_id,
    node_id::int as node_id, pterodactyl_server_id, pterodactyl_server_identifier,
    error_message, customer_message, attempt_count, next_attempt_at, paid_at, paid_until,
    subscription_status, cancel_at_period_end, cancel_at, panel_target, suspend_reason, suspend_at,
    delete_at, delete_warned_at, panel_state, panel_seen_at, panel_action_due_at,
    panel_action_attempts, was_running, gave_up_at, subscription_cancel_due_at,
    subscription_checked_at, created_at, updated_at`;
}

/** Reads one order, optionally locking its row for the rest of the transaction. */
export async function readOrder(
  db: Db,
  orderId: string,
  options: { lock?: boolean } = {},
): Promise<Order | null> {
  const [order] = await db<Order[]>`
    select ${selectOrder(db)} from public.orders where id = ${orderId}
    ${options.lock ? db`for update` : db``}`;
  return order ?? null;
}

/** The customer's open (pending) order for exactly this request, locked. */
export async function readOpenOrder(
  tx: Tx,
  key: Pick<Order, "user_id" | "plan_id" | "term" | "region" | "server_name">,
): Promise<Order | null> {
  const [order] = await tx<Order[]>`
    select ${selectOrder(tx)} from public.orders
    where user_id = ${key.user_id} and plan_id = ${key.plan_id}
      and term = ${key.term} and region = ${key.region}
      and server_name = ${key.server_name} and status = 'pending'
    for update`;
  return order ?? null;
}

/**
 * Creates a `pending` order; answers null when an identical open order exists (a
 * concurrent double submit), which the caller then reads.
 */
export async function createOrder(
  tx: Tx,
  order: NewOrder,
  actor: string,
): Promise<Order | null> {
  await setActor(tx, actor, "Order created");
  const [created] = await tx<Order[]>`
    insert into public.orders ${tx(order)}
    on conflict do nothing
    returning ${selectOrder(tx)}`;
  return created ?? null;
}

/**
 * Applies one change; answers the order as it is afterwards, or null when the order
 * does not exist or is not in `onlyFrom`.
 */
export async function changeOrder(
  tx: Tx,
  orderId: string,
  change: OrderChange,
): Promise<Order | null> {
  const values: Record<string, unknown> = Object.fromEntries(
    Object.entries(change.set ?? {})
      .filter(([, value]) => value !== undefined)
      // Messages stored on an order may quote an upstream error that echoed a key.
      .map(([key, value]) => [
        key,
        typeof value === "string" ? scrubSecrets(value) : value,
      ]),
  );
  if (change.to) values.status = change.to;
  // A new panel target is an action to take now, from its first attempt.
  if ("panel_target" in values && !("panel_action_due_at" in values)) {
    values.panel_action_due_at = change.now ?? new Date();
    values.panel_action_attempts = 0;
  }
  // Every operator message comes with customer words, unless the caller chose them.
  if (values.error_message !== undefined && !("customer_message" in values)) {
    values.customer_message = values.error_message === null
      ? null
      : customerWords(change.to);
  }
  const guard = change.onlyFrom
    ? tx`and status::text in ${tx(change.onlyFrom)}`
    : tx``;
  if (Object.keys(values).length === 0) {
    return await readOrder(tx, orderId);
  }
  await setActor(
    tx,
    change.actor,
    change.reason === undefined ? undefined : scrubSecrets(change.reason),
  );
  const [order] = await tx<Order[]>`
    update public.orders set ${tx(values)}
    where id = ${orderId} ${guard}
    returning ${selectOrder(tx)}`;
  return order ?? null;
}

/** What an order is entitled to after a plan change. */
export interface Entitlement {
  plan_id: string;
  stripe_price_id: string;
  amount_cents: number;
  limits: OrderLimits;
}

/**
 * Gives an order a new plan, price and limits (a plan change taking effect). When the
 * order has a server, its build is due on the panel from `now`, from its first attempt.
 */
export async function entitle(
  tx: Tx,
  orderId: string,
  entitlement: Entitlement,
  options: { actor: string; reason: string; now: Date },
): Promise<Order | null> {
  const limits = Object.fromEntries(
    LIMIT_COLUMNS.map((column) => [column, entitlement.limits[column]]),
  );
  await setActor(tx, options.actor, options.reason);
  const [order] = await tx<Order[]>`
    update public.orders set ${
    tx({
      ...limits,
      plan_id: entitlement.plan_id,
      stripe_price_id: entitlement.stripe_price_id,
      amount_cents: entitlement.amount_cents,
    })
  },
      panel_action_due_at = case when pterodactyl_server_id is null
        then panel_action_due_at else ${options.now} end,
      panel_action_attempts = case when pterodactyl_server_id is null
        then panel_action_attempts else 0 end
    where id = ${orderId}
    returning ${selectOrder(tx)}`;
  return order ?? null;
}

/** Records a timeline row on an order (nothing when the order does not exist). */
export async function recordOrderEvent(
  db: Db,
  orderId: string,
  event: OrderEvent,
): Promise<void> {
  await db`
    insert into public.order_events (order_id, user_id, kind, message, detail, actor,
      audience, customer_message)
    select id, user_id, ${event.kind}, ${scrubSecrets(event.message)}, ${
    db.json(scrubValue(JSON.parse(JSON.stringify(event.detail ?? {}))))
  }, ${event.actor}, ${event.customerMessage ? "customer" : "operator"},
      ${event.customerMessage ?? null}
    from public.orders where id = ${orderId}`;
}

/** Names who writes and why, for the status timeline trigger (transaction-scoped). */
async function setActor(tx: Tx, actor: string, reason?: string): Promise<void> {
  await tx`select set_config('shop.actor', ${actor}, true),
    set_config('shop.reason', ${reason ?? ""}, true)`;
}

/** The order billed by a Stripe subscription, optionally locked. */
export async function readOrderBySubscription(
  db: Db,
  subscriptionId: string,
  options: { lock?: boolean } = {},
): Promise<Order | null> {
  const [order] = await db<Order[]>`
    select ${selectOrder(db)} from public.orders
    where stripe_subscription_id = ${subscriptionId}
    order by created_at limit 1
    ${options.lock ? db`for update` : db``}`;
  return order ?? null;
}

/** The status an order had when it was last suspended (from its timeline). */
export async function statusBeforeSuspension(
  db: Db,
  orderId: string,
): Promise<OrderStatus | null> {
  const [row] = await db<{ from_status: OrderStatus | null }[]>`
    select from_status::text as from_status from public.order_events
    where order_id = ${orderId} and kind = 'status' and to_status = 'suspended'
    order by id desc limit 1`;
  return row?.from_status ?? null;
}

/** A paid invoice of an order's subscription. */
export interface OrderInvoice {
  invoice_id: string;
  billing_reason: string | null;
  amount_paid: number;
  currency: string;
  period_end: Date | null;
}

/**
 * Records a paid invoice once; answers whether this call recorded it (false when it
 * was already applied, however its events arrived).
 */
export async function recordOrderInvoice(
  tx: Tx,
  orderId: string,
  invoice: OrderInvoice,
): Promise<boolean> {
  const inserted = await tx`
    insert into public.order_invoices (invoice_id, order_id, billing_reason, amount_paid,
      currency, period_end)
    values (${invoice.invoice_id}, ${orderId}, ${invoice.billing_reason},
      ${invoice.amount_paid}, ${invoice.currency}, ${invoice.period_end})
    on conflict (invoice_id) do nothing
    returning invoice_id`;
  return inserted.length > 0;
}

/** How many paid invoices with money on them an order has, other than `invoiceId`. */
export async function countOtherPayments(
  db: Db,
  orderId: string,
  invoiceId: string,
): Promise<number> {
  const [{ n }] = await db<{ n: number }[]>`
    select count(*)::int as n from public.order_invoices
    where order_id = ${orderId} and invoice_id <> ${invoiceId} and amount_paid > 0`;
  return n;
}

/**
 * Leases up to `limit` orders whose panel action is due (`panel_action_due_at <= now`)
 * until `leaseUntil`, skipping rows another worker holds: two sweeps never take the same
 * order, and an action whose worker dies is due again when the lease ends.
 */
export async function leaseDuePanelActions(
  sql: Sql,
  options: { now: Date; leaseUntil: Date; limit: number; orderId?: string },
): Promise<Order[]> {
  const only = options.orderId ? sql`and id = ${options.orderId}` : sql``;
  return await sql<Order[]>`
    update public.orders set panel_action_due_at = ${options.leaseUntil}
    where id in (
      select id from public.orders
      where panel_action_due_at <= ${options.now} ${only}
      order by panel_action_due_at
      limit ${options.limit}
      for update skip locked)
    returning ${selectOrder(sql)}`;
}

/**
 * Leases up to `limit` orders whose Stripe subscription is due to be canceled until
 * `leaseUntil` (skipping rows others hold), so two workers do not call at once.
 */
export async function leaseDueSubscriptionCancels(
  sql: Sql,
  options: { now: Date; leaseUntil: Date; limit: number },
): Promise<Order[]> {
  return await sql<Order[]>`
    update public.orders set subscription_cancel_due_at = ${options.leaseUntil}
    where id in (
      select id from public.orders
      where subscription_cancel_due_at <= ${options.now}
      order by subscription_cancel_due_at
      limit ${options.limit}
      for update skip locked)
    returning ${selectOrder(sql)}`;
}

/**
 * Ends a subscription cancellation the order still expects (its intent is set and it
 * names the same subscription): clears the intent and records `message` on the
 * timeline. Answers false, writing nothing, when the order no longer expects it.
 */
export async function settleSubscriptionCancel(
  tx: Tx,
  orderId: string,
  settle: { subscriptionId: string; actor: string; message: string },
): Promise<boolean> {
  await setActor(tx, settle.actor);
  const rows = await tx`
    update public.orders set subscription_cancel_due_at = null
    where id = ${orderId} and subscription_cancel_due_at is not null
      and stripe_subscription_id = ${settle.subscriptionId}
    returning id`;
  if (rows.length === 0) return false;
  await recordOrderEvent(tx, orderId, {
    kind: "note",
    message: settle.message,
    detail: { subscription_id: settle.subscriptionId },
    actor: settle.actor,
  });
  return true;
}

/** Moves a cancellation still expected to `until` (after a failed try). */
export async function postponeSubscriptionCancel(
  db: Db,
  orderId: string,
  until: Date,
): Promise<void> {
  await db`update public.orders set subscription_cancel_due_at = ${until}
    where id = ${orderId} and subscription_cancel_due_at is not null`;
}

/**
 * Ids of orders provisioning should take again now: failed ones at their next attempt
 * (not given up), paid ones whose hand-off failed or never came, and claims older than
 * `staleBefore` (their worker died).
 */
export async function ordersDueForProvisioning(
  sql: Sql,
  options: { now: Date; staleBefore: Date; limit: number },
): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from public.orders
    where (status = 'error' and gave_up_at is null and next_attempt_at <= ${options.now})
       or (status = 'paid' and (next_attempt_at <= ${options.now}
           or (next_attempt_at is null and updated_at < ${options.staleBefore})))
       or (status = 'provisioning' and updated_at < ${options.staleBefore})
    order by coalesce(next_attempt_at, updated_at)
    limit ${options.limit}`;
  return rows.map((row) => row.id);
}

/**
 * Orders whose `paid_until` passed before `lapsedBefore` with no renewal recorded (no
 * paid invoice for a period beyond it) and not asked about since `checkedBefore`:
 * the sweep reads their subscriptions back from Stripe (a lost cancellation, say).
 */
export async function ordersLapsedWithoutRenewal(
  sql: Sql,
  options: { lapsedBefore: Date; checkedBefore: Date; limit: number },
): Promise<{ id: string; subscriptionId: string }[]> {
  return await sql<{ id: string; subscriptionId: string }[]>`
    select o.id, o.stripe_subscription_id as "subscriptionId" from public.orders o
    where o.status not in ('pending', 'expired', 'canceled')
      and o.stripe_subscription_id is not null
      and o.paid_until < ${options.lapsedBefore}
      and (o.subscription_checked_at is null
        or o.subscription_checked_at < ${options.checkedBefore})
      and not exists (
        select 1 from public.order_invoices i
        where i.order_id = o.id and i.period_end > o.paid_until)
    order by o.subscription_checked_at nulls first, o.paid_until
    limit ${options.limit}`;
}

/** Orders with a server whose panel state the sweep reads (installs, removals, drift). */
export async function ordersWithServers(
  sql: Sql,
  options: { limit: number },
): Promise<Order[]> {
  return await sql<Order[]>`
    select ${selectOrder(sql)} from public.orders
    where status in ('installing', 'active', 'suspended', 'canceled')
      and pterodactyl_server_id is not null
      and panel_state is distinct from 'deleted'
    order by id
    limit ${options.limit}`;
}

/** Which deadline a locked work list is about. */
export type Deadline = "grace_ended" | "retention_ended" | "deletion_soon";

/**
 * Locks (skipping rows others hold) up to `limit` orders whose `deadline` has come by
 * `at`: grace ended with the server still meant to run, retention ended for a
 * cancelled order, or deletion close enough to warn an operator (not yet warned).
 */
export async function lockOrdersPastDeadline(
  tx: Tx,
  deadline: Deadline,
  options: { at: Date; limit: number },
): Promise<Order[]> {
  const condition = {
    grace_ended: tx`suspend_at <= ${options.at}`,
    retention_ended: tx`status = 'canceled' and panel_target <> 'deleted'
      and delete_at <= ${options.at}`,
    deletion_soon: tx`status = 'canceled' and panel_target <> 'deleted'
      and delete_warned_at is null and delete_at <= ${options.at}`,
  }[deadline];
  return await tx<Order[]>`
    select ${selectOrder(tx)} from public.orders
    where ${condition}
    order by id
    limit ${options.limit}
    for update skip locked`;
}

/** A customer's own orders (not abandoned checkouts), newest first. */
export async function ordersOfUser(sql: Sql, userId: string): Promise<Order[]> {
  return await sql<Order[]>`
    select ${selectOrder(sql)} from public.orders
    where user_id = ${userId} and status <> 'expired'
    order by created_at desc
    limit 100`;
}

/** Which pending orders count as abandoned checkouts for the sweep. */
export interface StaleCheckoutWindow {
  /** The sweep's clock: an order whose last check asked to wait until later is skipped. */
  now: Date;
  /** A checkout whose session ended before this (its end plus a margin) is settled. */
  endedBefore: Date;
  /** An order created before this that still has no session never opened one. */
  createdBefore: Date;
}

/** The condition of {@linkcode StaleCheckoutWindow} on `public.orders`. */
function staleCheckout(db: Db, window: StaleCheckoutWindow) {
  return db`status = 'pending'
    and ((stripe_checkout_session_id is not null
          and coalesce(checkout_expires_at, created_at) < ${window.endedBefore})
      or (stripe_checkout_session_id is null and created_at < ${window.createdBefore}))
    and not exists (
      select 1 from public.order_events e
      where e.order_id = orders.id and e.kind = 'checkout'
        and (e.detail->>'next_check_at')::timestamptz > ${window.now})`;
}

/**
 * Pending orders (with their session, if any) whose checkout ended (or never opened)
 * and that the sweep should settle with Stripe, those waiting longest first.
 */
export async function staleCheckouts(
  sql: Sql,
  options: StaleCheckoutWindow & { limit: number },
): Promise<{ id: string; sessionId: string | null }[]> {
  return await sql<{ id: string; sessionId: string | null }[]>`
    select id, stripe_checkout_session_id as "sessionId" from public.orders
    where ${staleCheckout(sql, options)}
    order by coalesce(checkout_expires_at, created_at)
    limit ${options.limit}`;
}

/**
 * Locks one order while it still is an abandoned checkout by `window`, skipping it when
 * another worker holds it (a checkout writing its session, a webhook, another sweep).
 */
export async function lockStaleCheckout(
  tx: Tx,
  orderId: string,
  window: StaleCheckoutWindow,
): Promise<Order | null> {
  const [order] = await tx<Order[]>`
    select ${selectOrder(tx)} from public.orders
    where id = ${orderId} and ${staleCheckout(tx, window)}
    for update skip locked`;
  return order ?? null;
}
