/**
 * Changing a running server's plan, as `change-server-plan` and the sweep carry it:
 *
 * - **quote**: what a change would do, refused before anything is charged when it
 *   cannot be done (another game or egg, no room on the node for an upgrade, more disk
 *   in use than a downgrade leaves); Stripe's own proration preview gives the amount.
 * - **upgrade**: under the order's lock and its region's node locks, the change is
 *   recorded `requested` with its idempotency key and the room it needs held; after
 *   commit the subscription's item moves to the new price, invoiced now and pending
 *   until paid; the answer is applied guarded by the change still being `requested`.
 *   Paid: the order takes the new plan and the panel's build follows. Declined: the
 *   change waits (`awaiting_payment`) until Stripe applies it or lets it expire.
 * - **downgrade**: recorded, then a subscription schedule bills the new price from the
 *   period's end; `scheduled` until the renewal applies it, cancellable until then.
 *
 * A call whose answer was lost leaves the change `requested` with a next attempt: the
 * sweep repeats it with the same idempotency key ({@linkcode carryOnPlanChanges}).
 *
 * @module
 */
import type { Alerter } from "../platform/alerts.ts";
import type { Sql, Tx } from "../platform/db.ts";
import { DomainError, HttpError } from "../platform/errors.ts";
import type { Logger } from "../platform/log.ts";
import { lockRegionRooms, type Term } from "../orders/catalog.ts";
import {
  type Order,
  type OrderLimits,
  readOrder,
  recordOrderEvent,
} from "../orders/orders.ts";
import {
  applyPlanChange,
  createPlanChange,
  leaseDuePlanChanges,
  movePlanChange,
  openPlanChange,
  type PlanChange,
  type PlanChangeKind,
  postponePlanChange,
  readPlanChange,
  settlePlanChange,
} from "../orders/plan_changes.ts";
import type { PanelClientApi } from "../panel/client.ts";
import { isTemporaryStripeError, Stripe } from "../stripe/client.ts";
import {
  previewProration,
  readSubscriptionItem,
  releaseSchedule,
  scheduleDowngrade,
  type SubscriptionItem,
  upgradeSubscription,
} from "../stripe/plan_change.ts";

/** What changing a plan needs. */
export interface PlanChangeDeps {
  sql: Sql;
  stripe: Stripe;
  /** The panel's client API, to read the disk in use before a downgrade. */
  client: PanelClientApi | null;
  alert: Alerter;
  log: Logger;
  now?: () => Date;
}

/** Statuses an order may change plan in. */
const CHANGEABLE: readonly Order["status"][] = ["active", "installing"];
/** When the sweep takes up a change whose call may have been lost. */
const CARRY_ON_AFTER_MS = 2 * 60_000;
/** How long the sweep waits past a pending update's expiry before asking Stripe. */
const EXPIRY_MARGIN_MS = 5 * 60_000;
/** How long a worker holds a change it took from the sweep's list. */
const LEASE_MS = 5 * 60_000;
/** Failed tries of a change before an operator is alerted. */
const ALERT_AFTER_ATTEMPTS = 3;
const MIB = 1024 * 1024;

/** The plan an order changes to, at the order's term. */
interface Target {
  plan: OrderLimits & {
    id: string;
    game: string;
    ptero_nest_id: number;
    ptero_egg_id: number;
  };
  priceId: string;
  amountCents: number;
  currency: string;
}

/** What a change would do. */
export interface Quote {
  order: Order & { stripe_subscription_id: string; node_id: number };
  kind: PlanChangeKind;
  target: Target;
  item: SubscriptionItem;
  amountDue: number;
  currency: string;
  effectiveAt: Date | null;
  prorationDate: Date;
  /** Room the change needs on the order's node (an upgrade's growth). */
  grows: { memory_mb: number; disk_mb: number };
}

function clock(deps: { now?: () => Date }): Date {
  return deps.now?.() ?? new Date();
}

function orderNotFound(orderId: string): DomainError {
  return new DomainError(
    "not_found",
    "order_not_found",
    `Order ${orderId} was not found`,
  );
}

function stripeTrouble(error: unknown): DomainError {
  return new DomainError(
    isTemporaryStripeError(error) ? "unavailable" : "upstream",
    "stripe_error",
    "The payment provider could not be reached; nothing was changed, try again",
    { cause: error },
  );
}

async function readTarget(
  sql: Sql,
  planId: string,
  term: string,
): Promise<Target> {
  const [row] = await sql<(Target["plan"] & {
    stripe_price_id: string;
    amount_cents: number;
    currency: string;
  })[]>`
    select p.id, p.game, p.ptero_nest_id, p.ptero_egg_id, p.memory_mb, p.disk_mb,
      p.cpu_percent, p.swap_mb, p.io_weight, p.databases, p.backups, p.allocations,
      pp.stripe_price_id, pp.amount_cents, pp.currency
    from public.plans p
    join public.plan_prices pp on pp.plan_id = p.id and pp.term = ${term}::public.billing_term
      and pp.active
    where p.id = ${planId} and p.active`;
  if (!row) {
    throw new DomainError(
      "not_found",
      "plan_not_found",
      `Plan "${planId}" is not sold with this server's billing term`,
    );
  }
  const { stripe_price_id, amount_cents, currency, ...plan } = row;
  return {
    plan,
    priceId: stripe_price_id,
    amountCents: amount_cents,
    currency,
  };
}

/** Refuses a change the order cannot take now (status, subscription, one at a time). */
async function assertChangeable(
  db: Sql | Tx,
  order: Order,
): Promise<Quote["order"]> {
  if (
    !CHANGEABLE.includes(order.status) || !order.stripe_subscription_id ||
    order.node_id === null || order.panel_target !== "running"
  ) {
    throw new DomainError(
      "conflict",
      "order_not_active",
      `Only a running server can change plan; this one is "${order.status}"`,
    );
  }
  if (order.cancel_at_period_end) {
    throw new DomainError(
      "conflict",
      "order_not_active",
      "This server's subscription is set to end; resume it before changing plan",
    );
  }
  if (await openPlanChange(db, order.id)) {
    throw new DomainError(
      "conflict",
      "change_in_progress",
      "A plan change of this server is already on its way",
    );
  }
  return order as Quote["order"];
}

/** Room left on one node for its order's growth (the region's rooms, locked or not). */
function roomOn(
  rooms: { id: number; free_memory_mb: number; free_disk_mb: number }[],
  nodeId: number,
  grows: Quote["grows"],
): boolean {
  const room = rooms.find((node) => node.id === nodeId);
  return room !== undefined && room.free_memory_mb >= grows.memory_mb &&
    room.free_disk_mb >= grows.disk_mb;
}

function nodeFull(): DomainError {
  return new DomainError(
    "conflict",
    "node_full",
    "The machine your server runs on has no room for this upgrade; nothing was charged",
  );
}

async function readDiskInUse(
  deps: PlanChangeDeps,
  order: Order,
): Promise<number> {
  const identifier = order.pterodactyl_server_identifier;
  if (!deps.client || !identifier) {
    throw new DomainError(
      "unavailable",
      "panel_unavailable",
      "The server's disk use cannot be read now; try again later",
    );
  }
  try {
    return (await deps.client.resources(identifier)).resources.disk_bytes;
  } catch (error) {
    throw new DomainError(
      "unavailable",
      "panel_unavailable",
      "The server's disk use cannot be read now; try again later",
      { cause: error },
    );
  }
}

/**
 * What changing `orderId` to `planId` would do, refusing what cannot be done; nothing
 * is written. `userId` null is an admin (any order).
 */
export async function quotePlanChange(
  deps: PlanChangeDeps,
  request: { orderId: string; planId: string; userId: string | null },
): Promise<Quote> {
  const found = await readOrder(deps.sql, request.orderId);
  if (
    !found || (request.userId !== null && found.user_id !== request.userId) ||
    found.status === "pending" || found.status === "expired"
  ) throw orderNotFound(request.orderId);
  if (found.plan_id === request.planId) {
    throw new DomainError(
      "conflict",
      "same_plan",
      `This server already has plan "${request.planId}"`,
    );
  }
  const target = await readTarget(deps.sql, request.planId, found.term);
  const [current] = await deps.sql<
    { game: string; ptero_nest_id: number; ptero_egg_id: number }[]
  >`select game, ptero_nest_id, ptero_egg_id from public.plans where id = ${found.plan_id}`;
  if (
    !current || current.game !== target.plan.game ||
    current.ptero_nest_id !== target.plan.ptero_nest_id ||
    current.ptero_egg_id !== target.plan.ptero_egg_id
  ) {
    throw new DomainError(
      "invalid",
      "plan_not_compatible",
      `Plan "${request.planId}" is another game or server type; changing to it would need a new server`,
    );
  }
  const order = await assertChangeable(deps.sql, found);
  const grows = {
    memory_mb: Math.max(0, target.plan.memory_mb - order.memory_mb),
    disk_mb: Math.max(0, target.plan.disk_mb - order.disk_mb),
  };
  const kind: PlanChangeKind = target.amountCents > order.amount_cents ||
      (target.amountCents === order.amount_cents &&
        (grows.memory_mb > 0 || grows.disk_mb > 0))
    ? "upgrade"
    : "downgrade";
  if (grows.memory_mb > 0 || grows.disk_mb > 0) {
    const rooms = await deps.sql<
      { id: number; free_memory_mb: number; free_disk_mb: number }[]
    >`select node_id::int as id, free_memory_mb, free_disk_mb
      from public.node_capacity where node_id = ${order.node_id}`;
    if (!roomOn(rooms, order.node_id, grows)) throw nodeFull();
  }
  if (kind === "downgrade" && target.plan.disk_mb < order.disk_mb) {
    const used = await readDiskInUse(deps, order);
    if (used > target.plan.disk_mb * MIB) {
      throw new DomainError(
        "conflict",
        "disk_in_use",
        `Your server uses ${
          Math.ceil(used / MIB)
        } MB of disk, more than the ${target.plan.disk_mb} MB of plan "${target.plan.id}"; remove files first`,
        {
          details: {
            disk_used_mb: Math.ceil(used / MIB),
            plan_disk_mb: target.plan.disk_mb,
          },
        },
      );
    }
  }
  const prorationDate = clock(deps);
  let item: SubscriptionItem;
  let amountDue = 0;
  let currency = target.currency;
  try {
    item = await readSubscriptionItem(
      deps.stripe,
      order.stripe_subscription_id,
    );
    if (kind === "upgrade") {
      ({ amountDue, currency } = await previewProration(deps.stripe, {
        item,
        priceId: target.priceId,
        prorationDate,
      }));
    }
  } catch (error) {
    throw stripeTrouble(error);
  }
  if (item.scheduleId !== null || item.pendingUntil !== null) {
    throw new DomainError(
      "conflict",
      "change_in_progress",
      "A change of this server's subscription is already on its way",
    );
  }
  return {
    order,
    kind,
    target,
    item,
    amountDue,
    currency,
    effectiveAt: kind === "upgrade" ? null : item.periodEnd,
    prorationDate,
    grows,
  };
}

/** The target's limits, column by column. */
function limitsOf(target: Target): OrderLimits {
  const { plan } = target;
  return {
    memory_mb: plan.memory_mb,
    disk_mb: plan.disk_mb,
    cpu_percent: plan.cpu_percent,
    swap_mb: plan.swap_mb,
    io_weight: plan.io_weight,
    databases: plan.databases,
    backups: plan.backups,
    allocations: plan.allocations,
  };
}

/**
 * Records the quoted change under the order's lock (and, for an upgrade, its region's
 * node locks with the room re-checked and held); answers the new change.
 */
async function recordIntent(
  deps: PlanChangeDeps,
  quote: Quote,
  actor: string,
): Promise<PlanChange> {
  const now = clock(deps);
  return await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, quote.order.id, { lock: true });
    if (!order) throw orderNotFound(quote.order.id);
    if (
      order.plan_id !== quote.order.plan_id ||
      order.stripe_price_id !== quote.order.stripe_price_id
    ) {
      throw new DomainError(
        "conflict",
        "change_in_progress",
        "This server's plan changed meanwhile; look again",
      );
    }
    const changeable = await assertChangeable(tx, order);
    const holds = quote.kind === "upgrade" &&
      (quote.grows.memory_mb > 0 || quote.grows.disk_mb > 0);
    if (holds) {
      const rooms = await lockRegionRooms(tx, changeable.region);
      if (!roomOn(rooms, changeable.node_id, quote.grows)) throw nodeFull();
    }
    const change = await createPlanChange(tx, {
      order_id: order.id,
      user_id: order.user_id,
      kind: quote.kind,
      from_plan_id: order.plan_id,
      to_plan_id: quote.target.plan.id,
      from_price_id: order.stripe_price_id,
      to_price_id: quote.target.priceId,
      amount_cents: quote.target.amountCents,
      currency: quote.target.currency,
      limits: limitsOf(quote.target),
      amount_due_cents: quote.amountDue,
      node_id: holds ? changeable.node_id : null,
      reserve_memory_mb: holds ? quote.grows.memory_mb : 0,
      reserve_disk_mb: holds ? quote.grows.disk_mb : 0,
      proration_date: quote.prorationDate,
      effective_at: quote.effectiveAt,
      next_attempt_at: new Date(now.getTime() + CARRY_ON_AFTER_MS),
      actor,
    });
    if (!change) {
      throw new DomainError(
        "conflict",
        "change_in_progress",
        "A plan change of this server is already on its way",
      );
    }
    await recordOrderEvent(tx, order.id, {
      kind: "plan_change",
      detail: {
        change_id: change.id,
        status: change.status,
        kind: change.kind,
      },
      actor,
      message: quote.kind === "upgrade"
        ? `Upgrade from ${order.plan_id} to ${quote.target.plan.id} requested: ${quote.amountDue} ${quote.currency} due now${
          holds
            ? `, ${quote.grows.memory_mb} MB memory and ${quote.grows.disk_mb} MB disk held on node ${changeable.node_id}`
            : ""
        }`
        : `Downgrade from ${order.plan_id} to ${quote.target.plan.id} requested for ${quote.effectiveAt?.toISOString()}`,
      customerMessage: quote.kind === "upgrade"
        ? `Upgrade to ${quote.target.plan.id} requested`
        : `Change to ${quote.target.plan.id} requested for the end of the paid period`,
    });
    return change;
  });
}

/** How carrying a change on ended. */
export type CarryOutcome =
  | "applied"
  | "awaiting_payment"
  | "scheduled"
  | "failed"
  | "retry"
  | "moved_on";

/** Ends a change Stripe refused for good: failed, its room let go, an operator told. */
async function refused(
  deps: PlanChangeDeps,
  change: PlanChange,
  error: unknown,
  actor: string,
): Promise<CarryOutcome> {
  const problem = error instanceof Error ? error.message : String(error);
  const moved = await deps.sql.begin((tx) =>
    movePlanChange(tx, change, {
      from: ["requested"],
      to: "failed",
      set: { error_message: `Stripe refused the change: ${problem}` },
      actor,
      message: `Stripe refused the plan change: ${problem}`,
      customerMessage:
        "The plan change could not be made; nothing was changed and our team has been told",
    })
  );
  if (moved) {
    await deps.alert({
      title: "Plan change refused by Stripe",
      message:
        `Change ${change.id} (${change.from_plan_id} → ${change.to_plan_id}): ${problem}`,
      orderId: change.order_id,
    });
  }
  return moved ? "failed" : "moved_on";
}

/** Keeps a change whose call failed for now `requested`, due again later. */
async function postpone(
  deps: PlanChangeDeps,
  change: PlanChange,
  error: unknown,
): Promise<CarryOutcome> {
  const problem = error instanceof Error ? error.message : String(error);
  const until = new Date(clock(deps).getTime() + CARRY_ON_AFTER_MS);
  await postponePlanChange(deps.sql, change.id, until, problem);
  deps.log.warn("Plan change call failed; retrying later", {
    order_id: change.order_id,
    change_id: change.id,
    error: problem,
  });
  if (change.attempts + 1 === ALERT_AFTER_ATTEMPTS) {
    await deps.alert({
      title: "Plan change keeps failing",
      message:
        `Change ${change.id} (${change.from_plan_id} → ${change.to_plan_id}) failed ${
          change.attempts + 1
        } times: ${problem}`,
      orderId: change.order_id,
      fields: { next_attempt_at: until.toISOString() },
    });
  }
  return "retry";
}

/** Makes a `requested` upgrade's Stripe call and applies its answer. */
async function carryOnUpgrade(
  deps: PlanChangeDeps,
  change: PlanChange,
  order: Order,
  actor: string,
  known: SubscriptionItem | null,
): Promise<CarryOutcome> {
  let result;
  try {
    const item = known ??
      await readSubscriptionItem(deps.stripe, order.stripe_subscription_id!);
    result = await upgradeSubscription(deps.stripe, {
      subscriptionId: item.subscriptionId,
      itemId: item.itemId,
      priceId: change.to_price_id,
      prorationDate: change.proration_date ?? change.created_at,
      idempotencyKey: change.idempotency_key,
    });
  } catch (error) {
    return isTemporaryStripeError(error) ||
        !(error instanceof Stripe.errors.StripeError)
      ? await postpone(deps, change, error)
      : await refused(deps, change, error, actor);
  }
  const now = clock(deps);
  return await deps.sql.begin(async (tx) => {
    // The order first, then its change: the webhook locks them in that order too.
    await readOrder(tx, change.order_id, { lock: true });
    const fresh = await readPlanChange(tx, change.id, { lock: true });
    if (fresh?.status !== "requested") return "moved_on";
    if (result.applied) {
      const applied = await applyPlanChange(tx, fresh, {
        actor,
        now,
        message:
          `Upgrade to ${fresh.to_plan_id} paid: the subscription bills ${fresh.to_price_id}`,
      });
      return applied ? "applied" : "moved_on";
    }
    const until = result.subscription.pendingUntil;
    await movePlanChange(tx, fresh, {
      from: ["requested"],
      to: "awaiting_payment",
      set: {
        stripe_invoice_id: result.subscription.latestInvoiceId,
        expires_at: until,
        next_attempt_at: until
          ? new Date(until.getTime() + EXPIRY_MARGIN_MS)
          : new Date(now.getTime() + CARRY_ON_AFTER_MS),
      },
      actor,
      message: `The upgrade's invoice ${
        result.subscription.latestInvoiceId ?? ""
      } is not paid: the change waits for it until ${until?.toISOString()}`,
      customerMessage:
        `Your payment for the upgrade was declined: update your card in billing before ${
          until?.toISOString().slice(0, 10)
        } or the upgrade is dropped`,
    });
    return "awaiting_payment";
  });
}

/** Makes a `requested` downgrade's Stripe calls and records the schedule. */
async function carryOnDowngrade(
  deps: PlanChangeDeps,
  change: PlanChange,
  order: Order,
  actor: string,
  known: SubscriptionItem | null,
): Promise<CarryOutcome> {
  let scheduleId: string;
  let item: SubscriptionItem;
  try {
    item = known ??
      await readSubscriptionItem(deps.stripe, order.stripe_subscription_id!);
    scheduleId = await scheduleDowngrade(deps.stripe, {
      subscriptionId: item.subscriptionId,
      scheduleId: change.stripe_schedule_id ?? item.scheduleId,
      fromPriceId: change.from_price_id,
      toPriceId: change.to_price_id,
      term: order.term as Term,
      idempotencyKey: change.idempotency_key,
      onSchedule: async (id) => {
        await deps.sql`update public.plan_changes set stripe_schedule_id = ${id}
          where id = ${change.id} and status = 'requested'`;
      },
    });
  } catch (error) {
    return isTemporaryStripeError(error) ||
        !(error instanceof Stripe.errors.StripeError)
      ? await postpone(deps, change, error)
      : await refused(deps, change, error, actor);
  }
  return await deps.sql.begin(async (tx) => {
    const moved = await movePlanChange(tx, change, {
      from: ["requested"],
      to: "scheduled",
      set: {
        stripe_schedule_id: scheduleId,
        effective_at: item.periodEnd,
        next_attempt_at: null,
      },
      actor,
      message:
        `Downgrade to ${change.to_plan_id} scheduled for ${item.periodEnd.toISOString()} (schedule ${scheduleId})`,
      customerMessage: `Your plan changes to ${change.to_plan_id} on ${
        item.periodEnd.toISOString().slice(0, 10)
      }`,
    });
    return moved ? "scheduled" : "moved_on";
  });
}

/**
 * Carries one `requested` change on: the customer's request (with the subscription its
 * quote just read), or the sweep's retry (which reads it afresh).
 */
async function carryOn(
  deps: PlanChangeDeps,
  change: PlanChange,
  actor: string,
  known: SubscriptionItem | null = null,
): Promise<CarryOutcome> {
  const order = await readOrder(deps.sql, change.order_id);
  if (!order?.stripe_subscription_id) {
    return await refused(
      deps,
      change,
      new Error("the order has no subscription any more"),
      actor,
    );
  }
  return change.kind === "upgrade"
    ? await carryOnUpgrade(deps, change, order, actor, known)
    : await carryOnDowngrade(deps, change, order, actor, known);
}

/** Records the quoted change and carries it on; answers the change as it is then. */
export async function requestPlanChange(
  deps: PlanChangeDeps,
  quote: Quote,
  actor: string,
): Promise<{ change: PlanChange; outcome: CarryOutcome }> {
  const change = await recordIntent(deps, quote, actor);
  const outcome = await carryOn(deps, change, actor, quote.item);
  const now = await readPlanChange(deps.sql, change.id);
  return { change: now ?? change, outcome };
}

/**
 * Cancels the order's scheduled downgrade: the schedule is released in Stripe first
 * (the subscription keeps its price), then the change is `canceled`.
 */
export async function cancelPlanChange(
  deps: PlanChangeDeps,
  request: { orderId: string; userId: string | null },
  actor: string,
): Promise<PlanChange> {
  const order = await readOrder(deps.sql, request.orderId);
  if (!order || (request.userId !== null && order.user_id !== request.userId)) {
    throw orderNotFound(request.orderId);
  }
  const change = await openPlanChange(deps.sql, order.id);
  if (!change) {
    throw new DomainError(
      "not_found",
      "no_plan_change",
      "This server has no plan change to cancel",
    );
  }
  if (change.status !== "scheduled" || !change.stripe_schedule_id) {
    throw new DomainError(
      "conflict",
      "change_in_progress",
      "Only a scheduled downgrade can be canceled; this change is already being charged",
    );
  }
  try {
    await releaseSchedule(deps.stripe, change.stripe_schedule_id);
  } catch (error) {
    throw stripeTrouble(error);
  }
  const canceled = await deps.sql.begin((tx) =>
    movePlanChange(tx, change, {
      from: ["scheduled"],
      to: "canceled",
      actor,
      message:
        `Downgrade to ${change.to_plan_id} canceled; schedule ${change.stripe_schedule_id} released`,
      customerMessage:
        `The change to ${change.to_plan_id} is canceled: your plan stays ${change.from_plan_id}`,
    })
  );
  if (!canceled) {
    throw new DomainError(
      "conflict",
      "change_in_progress",
      "The change took effect or ended meanwhile",
    );
  }
  return canceled;
}

/** The answer of a request whose upgrade payment was declined. */
export function paymentFailed(change: PlanChange): HttpError {
  return new HttpError(
    402,
    "payment_failed",
    `Your card was declined, so the upgrade is not applied yet; update your card in billing before ${
      change.expires_at?.toISOString().slice(0, 10) ?? "tomorrow"
    } and it goes through, otherwise nothing changes`,
    { details: { change_id: change.id } },
  );
}

/**
 * The sweep's part: carries on `requested` changes whose call may have been lost
 * (same idempotency key), and asks Stripe about `awaiting_payment` ones past their
 * pending update's expiry (an event missed). Answers counts.
 */
export async function carryOnPlanChanges(
  deps: PlanChangeDeps,
  options: { actor: string; limit: number; more?: () => boolean },
): Promise<{ carried: number; settled: number; stripeCalls: number }> {
  const now = clock(deps);
  const due = await leaseDuePlanChanges(deps.sql, {
    now,
    leaseUntil: new Date(now.getTime() + LEASE_MS),
    limit: options.limit,
  });
  let carried = 0;
  let settled = 0;
  let stripeCalls = 0;
  for (const change of due) {
    if (options.more && !options.more()) break;
    if (change.status === "requested") {
      stripeCalls += 2;
      const outcome = await carryOn(deps, change, options.actor);
      if (outcome !== "retry") carried++;
      continue;
    }
    const order = await readOrder(deps.sql, change.order_id);
    if (!order?.stripe_subscription_id) continue;
    let item: SubscriptionItem;
    try {
      stripeCalls++;
      item = await readSubscriptionItem(
        deps.stripe,
        order.stripe_subscription_id,
      );
    } catch (error) {
      await postpone(deps, change, error);
      continue;
    }
    const result = await deps.sql.begin((tx) =>
      settlePlanChange(tx, change.order_id, {
        priceId: item.priceId,
        pendingUpdate: item.pendingUntil !== null,
      }, { actor: options.actor, now })
    );
    if (result) settled++;
  }
  return { carried, settled, stripeCalls };
}
