/**
 * One sweep over every order after payment, within a time budget: abandoned checkouts
 * settled with Stripe (releasing the room they reserved), provisioning retries that are
 * due (failed, handed off in vain, claims of dead workers), deadlines that
 * passed (grace, retention, the warning before deletion), what the panel shows (installs
 * finished or failed, servers gone, suspensions changed by hand) read from its server
 * list a hundred at a time, and the panel actions that are due. Every write takes its
 * row under a lock or a lease in a short transaction, so sweeps running at once never
 * act twice on one order.
 *
 * @module
 */
import {
  applyObservation,
  type ConvergeDeps,
  convergeDue,
  viewOf,
} from "../panel/converge.ts";
import type { Alert } from "../platform/alerts.ts";
import type { Tx } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import {
  changeOrder,
  lockOrdersPastDeadline,
  lockStaleCheckout,
  type Order,
  ordersDueForProvisioning,
  ordersWithServers,
  readOrder,
  recordOrderEvent,
  staleCheckouts,
  type StaleCheckoutWindow,
} from "../orders/orders.ts";
import { PanelError, type PanelServer } from "../panel/client.ts";
import { observe, statusForServer } from "../orders/lifecycle.ts";
import { refreshAllocations, refreshEggs } from "../panel/cache.ts";
import { provisionOrder, STALE_CLAIM_MS } from "../panel/provision.ts";
import type { RetryPolicy } from "../orders/retry.ts";
import { Stripe } from "../stripe/client.ts";
import { reconcileSession } from "../orders/reconcile.ts";
import {
  closeCheckoutSession,
  type ClosedSession,
} from "../stripe/checkout_session.ts";
import { cancelDueSubscriptions } from "../stripe/subscription_cancel.ts";

/** What a sweep needs. */
export interface SweepDeps extends ConvergeDeps {
  /** Stripe: a pending order is never expired without asking it about the session. */
  stripe: Stripe;
  /** Provisioning's retry policy (its `maxAttempts` is PROVISION_MAX_ATTEMPTS). */
  retry: RetryPolicy;
  /** Wall-clock budget: no new work starts after it. */
  budgetMs: number;
  /** Panel requests made so far (for the summary). */
  panelCalls?: () => number;
}

/** What one sweep did. */
export interface SweepSummary {
  /** Orders per outcome, e.g. `provision.installing`, `install.active`, `action.suspended`. */
  outcomes: Record<string, number>;
  panel_calls: number;
  duration_ms: number;
  /** True when the budget ran out with work left (the next sweep goes on). */
  budget_exhausted: boolean;
}

/** Servers per page of the panel's list: calls grow with servers / 100. */
export const LIST_PAGE_SIZE = 100;
/** An operator is warned this long before a server is deleted. */
export const DELETION_WARNING_MS = 24 * 3600_000;
/** Orders taken per step and run; the rest waits for the next sweep. */
const STEP_LIMIT = 200;
/** Orders whose servers a run compares with the panel. */
const OBSERVE_LIMIT = 20_000;

const ACTOR = "sweep";

/** Runs one sweep. */
export async function sweep(deps: SweepDeps): Promise<SweepSummary> {
  const started = performance.now();
  const outcomes: Record<string, number> = {};
  const count = (outcome: string, n = 1) => {
    if (n > 0) outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
  };
  let exhausted = false;
  const more = () => {
    if (performance.now() - started < deps.budgetMs) return true;
    exhausted = true;
    return false;
  };
  const log = deps.log.child({ sweep: crypto.randomUUID() });
  const stepDeps = { ...deps, log };

  await refreshPanelCache(stepDeps, count);
  // Before provisioning: a paid checkout whose webhook was lost is provisioned this run.
  if (more()) await settleCheckouts(stepDeps, count, more);
  if (more()) await retryProvisioning(stepDeps, count, more);
  if (more()) await passDeadlines(stepDeps, count);
  if (more()) await cancelDueSubscriptions(stepDeps, count);
  if (more()) await observeServers(stepDeps, count, more);
  if (more()) {
    const actions = await convergeDue(stepDeps, { actor: ACTOR, more });
    for (const outcome of actions) count(`action.${outcome}`);
  }

  const summary: SweepSummary = {
    outcomes,
    panel_calls: deps.panelCalls?.() ?? 0,
    duration_ms: Math.round(performance.now() - started),
    budget_exhausted: exhausted,
  };
  // A quiet sweep runs every minute: keep it out of the info log.
  if (Object.keys(outcomes).length > 0) log.info("Sweep done", { ...summary });
  else log.debug("Sweep done", { ...summary });
  return summary;
}

/** How old the stored eggs and allocations may get before a sweep reads them again. */
export const PANEL_CACHE_TTL_MS = 10 * 60_000;

/** Reads eggs and each node's allocations again when the stored ones are old. */
async function refreshPanelCache(
  deps: SweepDeps,
  count: (outcome: string) => void,
): Promise<void> {
  const [age] = await deps.sql<{ eggs: number; oldest: Date | null }[]>`
    select (select count(*)::int from public.panel_eggs) as eggs,
      least((select min(fetched_at) from public.panel_eggs),
        (select min(fetched_at) from public.panel_allocations)) as oldest`;
  const now = clock(deps);
  if (
    age.eggs > 0 && age.oldest &&
    now.getTime() - age.oldest.getTime() < PANEL_CACHE_TTL_MS
  ) return;
  try {
    await refreshEggs(deps.sql, deps.panel);
    const nodes = await deps.sql<{ panel_node_id: number }[]>`
      select panel_node_id from public.ptero_nodes where enabled order by id`;
    for (const node of nodes) {
      await refreshAllocations(deps.sql, deps.panel, node.panel_node_id);
    }
    count("cache.refreshed");
  } catch (error) {
    // Provisioning falls back to the panel meanwhile; the next sweep tries again.
    if (!(error instanceof PanelError || error instanceof DomainError)) {
      throw error;
    }
    deps.log.warn("Refreshing eggs and allocations failed", {
      error: error.message,
    });
    count("cache.failed");
  }
}

function clock(deps: { now?: () => Date }): Date {
  return deps.now?.() ?? new Date();
}

/**
 * How long after an order was created without a session being recorded the sweep
 * closes it: the request making the session has long given up by then. An order whose
 * session exists is settled at its end, `checkout_expires_at`, without waiting.
 */
export const CHECKOUT_SETTLE_MS = 5 * 60_000;
/** Abandoned checkouts settled per run (one or two Stripe calls each). */
const CHECKOUT_LIMIT = 50;
/** The sweep's Stripe calls: short and retried once, so an outage costs seconds. */
const STRIPE_CALL = { timeout: 10_000, maxNetworkRetries: 1 };
/** A checkout whose payment is still processing is asked about again after this. */
const PROCESSING_RECHECK_MS = 60 * 60_000;
/** A paid checkout held for an operator is asked about (and alerted) again after this. */
const HELD_RECHECK_MS = 24 * 3600_000;

/** What settling one abandoned checkout did. */
type CheckoutOutcome =
  | "expired"
  | "closed"
  | "unopened"
  | "paid"
  | "processing"
  | "mismatch"
  | "unknown"
  | "failed";

/**
 * Pending orders whose checkout ended without a webhook saying how, or whose session was
 * never created: Stripe says what became of the session (an open one is expired there
 * first), and the order follows, its hold on the node released at the checkout's end.
 */
async function settleCheckouts(
  deps: SweepDeps,
  count: (outcome: string) => void,
  more: () => boolean,
): Promise<void> {
  const now = clock(deps);
  const window: StaleCheckoutWindow = {
    now,
    endedBefore: now,
    createdBefore: new Date(now.getTime() - CHECKOUT_SETTLE_MS),
  };
  const due = await staleCheckouts(deps.sql, {
    ...window,
    limit: CHECKOUT_LIMIT,
  });
  for (const { id: orderId, sessionId } of due) {
    if (!more()) return;
    let settled: { outcome: CheckoutOutcome; alert?: Alert } | null;
    try {
      // Stripe first, outside any transaction; then the order under its lock.
      const closed = sessionId === null
        ? null
        : await closeCheckoutSession(deps.stripe, sessionId, STRIPE_CALL);
      settled = await settleCheckout(deps, orderId, sessionId, closed, window);
    } catch (error) {
      if (!(error instanceof Stripe.errors.StripeError)) throw error;
      // The order is untouched; the next sweep asks again.
      deps.log.warn("Asking Stripe about an abandoned checkout failed", {
        order_id: orderId,
        error: error.message,
        status: error.statusCode ?? null,
      });
      count("checkout.failed");
      // A refusal of this one request leaves the others worth asking; anything else
      // (Stripe down, throttling, the key refused) would fail for them too.
      if (error instanceof Stripe.errors.StripeInvalidRequestError) continue;
      return;
    }
    if (!settled) continue;
    count(`checkout.${settled.outcome}`);
    // After the commit, so an alert never announces a change that rolled back.
    if (settled.alert) await deps.alert(settled.alert);
  }
}

/**
 * Applies what Stripe said about one abandoned checkout, under the order's row lock
 * and only while it still is that abandoned checkout; null when it no longer is one.
 */
async function settleCheckout(
  deps: SweepDeps,
  orderId: string,
  sessionId: string | null,
  closed: ClosedSession | null,
  window: StaleCheckoutWindow,
): Promise<{ outcome: CheckoutOutcome; alert?: Alert } | null> {
  return await deps.sql.begin(async (tx) => {
    const order = await lockStaleCheckout(tx, orderId, window);
    if (!order || order.stripe_checkout_session_id !== sessionId) return null;
    if (sessionId === null || closed === null) {
      // The URL is handed out only after the session is stored: nobody can pay this.
      await expireCheckout(
        tx,
        order,
        "Checkout never opened: no Stripe session was recorded for the order",
        { session_id: null },
      );
      return { outcome: "unopened" };
    }
    if ("unknown" in closed) {
      // Other keys, or a session deleted with its account: a person decides, since a
      // payment made elsewhere must not lose its order.
      const message =
        `Stripe does not know checkout session "${sessionId}": the order keeps its room until an operator settles it`;
      await holdCheckout(tx, order, message, window.now, HELD_RECHECK_MS, {
        session_id: sessionId,
      });
      return {
        outcome: "unknown",
        alert: {
          title: "Checkout session unknown to Stripe",
          message,
          orderId: order.id,
          fields: { session_id: sessionId },
        },
      };
    }
    const { session } = closed;
    const detail = {
      session_id: session.id,
      session_status: session.status,
      payment_status: session.payment_status,
    };
    switch (session.status) {
      case "expired":
        await expireCheckout(
          tx,
          order,
          closed.closedNow
            ? "Checkout still open at its end: expired in Stripe by the sweep"
            : "Checkout expired without payment (Stripe asked by the sweep; its webhook never arrived)",
          detail,
        );
        return { outcome: closed.closedNow ? "closed" : "expired" };
      case "complete":
        return await completeCheckout(tx, order, session, window.now);
      default:
        // Nothing to act on safely: the order waits, and the next sweep asks again.
        deps.log.warn("Stripe answered an unknown checkout session status", {
          order_id: order.id,
          ...detail,
        });
        return { outcome: "failed" };
    }
  });
}

/** Expires an abandoned checkout's order, releasing its reserved room. */
async function expireCheckout(
  tx: Tx,
  order: Order,
  reason: string,
  detail: Record<string, unknown>,
): Promise<void> {
  await changeOrder(tx, order.id, {
    to: "expired",
    onlyFrom: ["pending"],
    set: { error_message: reason },
    actor: ACTOR,
    reason,
  });
  await recordOrderEvent(tx, order.id, {
    kind: "checkout",
    message: reason,
    detail,
    actor: ACTOR,
  });
}

/** Leaves an order pending and records when the sweep asks Stripe about it again. */
async function holdCheckout(
  tx: Tx,
  order: Order,
  message: string,
  now: Date,
  recheckMs: number,
  detail: Record<string, unknown>,
): Promise<void> {
  await recordOrderEvent(tx, order.id, {
    kind: "checkout",
    message,
    detail: {
      ...detail,
      next_check_at: new Date(now.getTime() + recheckMs).toISOString(),
    },
    actor: ACTOR,
  });
}

/**
 * A completed checkout whose webhook never came: applied as `checkout.session.completed`
 * would be (same checks, same result), so the customer who paid gets the server; an
 * operator is told, since a lost payment event means the webhook needs looking at.
 */
async function completeCheckout(
  tx: Tx,
  order: Order,
  session: Stripe.Checkout.Session,
  now: Date,
): Promise<{ outcome: CheckoutOutcome; alert?: Alert }> {
  const idOf = (value: string | { id: string } | null) =>
    typeof value === "string" ? value : value?.id ?? null;
  const detail = {
    session_id: session.id,
    session_status: session.status,
    payment_status: session.payment_status,
  };
  const decision = reconcileSession("checkout.session.completed", ACTOR, {
    id: session.id,
    metadata: session.metadata,
    customer: idOf(session.customer),
    subscription: idOf(session.subscription),
    amount_total: session.amount_total,
    currency: session.currency,
    payment_status: session.payment_status,
  }, order);
  if (decision.outcome === "mismatch") {
    const message =
      `Checkout session "${session.id}" was completed but disagrees with the order: ${
        decision.problems.join("; ")
      }`;
    await holdCheckout(tx, order, message, now, HELD_RECHECK_MS, detail);
    return {
      outcome: "mismatch",
      alert: {
        title: "Paid checkout does not match its order",
        message:
          `${message}. Nothing was provisioned; check the payment in Stripe.`,
        orderId: order.id,
        fields: { session_id: session.id },
      },
    };
  }
  if (decision.transition?.to !== "paid") {
    // Completed with the payment still processing: its async webhook decides.
    await holdCheckout(
      tx,
      order,
      "Checkout completed; the payment is still processing",
      now,
      PROCESSING_RECHECK_MS,
      detail,
    );
    return { outcome: "processing" };
  }
  const reason =
    `Payment confirmed by the sweep: Stripe reports checkout session "${session.id}" complete and paid, and its webhook never arrived`;
  await changeOrder(tx, order.id, {
    to: "paid",
    onlyFrom: ["pending"],
    set: {
      stripe_customer_id: order.stripe_customer_id ??
        decision.link?.customer ?? null,
      stripe_subscription_id: order.stripe_subscription_id ??
        decision.link?.subscription ?? null,
      paid_at: now,
      // Provisioning takes it in this same sweep.
      next_attempt_at: now,
    },
    actor: ACTOR,
    reason,
  });
  await recordOrderEvent(tx, order.id, {
    kind: "payment",
    message: reason,
    detail,
    actor: ACTOR,
  });
  return {
    outcome: "paid",
    alert: {
      title: "Paid checkout whose webhook never arrived",
      message:
        `Stripe reports checkout session "${session.id}" paid, but no checkout.session.completed reached the shop. The sweep applied it and provisioning follows; check the webhook endpoint's deliveries in Stripe.`,
      orderId: order.id,
      fields: { session_id: session.id },
    },
  };
}

async function retryProvisioning(
  deps: SweepDeps,
  count: (outcome: string) => void,
  more: () => boolean,
): Promise<void> {
  const now = clock(deps);
  const due = await ordersDueForProvisioning(deps.sql, {
    now,
    staleBefore: new Date(now.getTime() - STALE_CLAIM_MS),
    limit: STEP_LIMIT,
  });
  for (const orderId of due) {
    if (!more()) return;
    try {
      const result = await provisionOrder(deps, orderId, { actor: ACTOR });
      count(
        result.status === "error" && result.next_attempt_at === null
          ? "provision.gave_up"
          : `provision.${result.status}`,
      );
    } catch (error) {
      // Another worker moved it on (canceled, say) since it was listed.
      if (!(error instanceof DomainError)) throw error;
      deps.log.warn("Provisioning retry skipped", {
        order_id: orderId,
        error: error.message,
      });
      count("provision.skipped");
    }
  }
}

async function passDeadlines(
  deps: SweepDeps,
  count: (outcome: string, n?: number) => void,
): Promise<void> {
  const now = clock(deps);
  // Grace over: suspend (for non-payment, unless already suspended for another reason).
  const suspended = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "grace_ended", {
      at: now,
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      const suspend = order.panel_target === "running";
      const message = "Payment grace period ended: suspending the server";
      await changeOrder(tx, order.id, {
        to: suspend && suspendable(order) ? "suspended" : undefined,
        set: {
          suspend_at: null,
          ...(suspend
            ? {
              panel_target: "suspended",
              suspend_reason: "billing",
              panel_action_due_at: now,
              panel_action_attempts: 0,
            }
            : {}),
        },
        actor: ACTOR,
        reason: message,
      });
      if (suspend) {
        await recordOrderEvent(tx, order.id, {
          kind: "note",
          message,
          actor: ACTOR,
        });
      }
    }
    return orders.filter((order) => order.panel_target === "running").length;
  });
  count("deadline.suspended", suspended);

  const deleting = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "retention_ended", {
      at: now,
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      const message = "Retention ended: deleting the server";
      await changeOrder(tx, order.id, {
        set: {
          panel_target: "deleted",
          panel_action_due_at: now,
          panel_action_attempts: 0,
        },
        actor: ACTOR,
        reason: message,
      });
      await recordOrderEvent(tx, order.id, {
        kind: "note",
        message,
        actor: ACTOR,
      });
    }
    return orders.length;
  });
  count("deadline.delete", deleting);

  const warn = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "deletion_soon", {
      at: new Date(now.getTime() + DELETION_WARNING_MS),
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      await changeOrder(tx, order.id, {
        set: { delete_warned_at: now },
        actor: ACTOR,
      });
    }
    return orders;
  });
  // Alerts go out after the commit, so a second sweep never sends them again.
  for (const order of warn) {
    await deps.alert({
      title: "Server deletion tomorrow",
      message:
        `The server of a cancelled subscription will be deleted at ${order.delete_at?.toISOString()}`,
      orderId: order.id,
      fields: {
        server_id: order.pterodactyl_server_id,
        delete_at: order.delete_at?.toISOString() ?? null,
      },
    });
  }
  count("deadline.warned", warn.length);
}

function suspendable(order: Order): boolean {
  return ["paid", "installing", "active", "error"].includes(order.status);
}

async function observeServers(
  deps: SweepDeps,
  count: (outcome: string) => void,
  more: () => boolean,
): Promise<void> {
  // Orders first, then the list: every server these orders name exists before it.
  const orders = await ordersWithServers(deps.sql, { limit: OBSERVE_LIMIT });
  let servers: PanelServer[];
  try {
    servers = await listAllServers(deps);
  } catch (error) {
    if (!(error instanceof PanelError || error instanceof DomainError)) {
      throw error;
    }
    // The panel is down: nothing can be learned now; the next sweep reads it again.
    deps.log.error("Could not list the panel's servers", {
      error: error.message,
    });
    count("observe.failed");
    return;
  }
  await adoptStrays(deps, servers, count);
  const byId = new Map(servers.map((server) => [server.id, server]));
  for (const order of orders) {
    if (!more()) return;
    let server: PanelServer | null = byId.get(order.pterodactyl_server_id!) ??
      null;
    if (server === null && order.panel_state !== "missing") {
      try {
        // Pages can shift while they are read: ask for this one before calling it gone.
        server = await deps.panel.getServerByExternalId(order.id);
      } catch (error) {
        if (!(error instanceof PanelError || error instanceof DomainError)) {
          throw error;
        }
        count("observe.failed");
        continue;
      }
    }
    const view = server ? viewOf(server) : null;
    // Most orders match the panel: only the others take a row lock.
    if (observe(order, view) === null) continue;
    const applied = await applyObservation(deps, order.id, view, {
      actor: ACTOR,
    });
    if (!applied) continue;
    if (applied.to === "active") count("install.active");
    else if (applied.panel_state === "install_failed") count("install.failed");
    else if (applied.panel_state === "missing") count("server.missing");
    else if (applied.reconverge) count("server.drift");
    else count(`server.${applied.panel_state}`);
  }
}

async function listAllServers(deps: SweepDeps): Promise<PanelServer[]> {
  const servers: PanelServer[] = [];
  for (let page = 1;; page++) {
    const result = await deps.panel.listServers({
      page,
      perPage: LIST_PAGE_SIZE,
    });
    servers.push(...result.servers);
    if (result.page >= result.totalPages || result.servers.length === 0) {
      return servers;
    }
  }
}

/** An order id, as provisioning writes it into a server's external_id. */
const ORDER_ID =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The net under every race that could leave a server behind: a server whose
 * external_id names an order that does not record it is attached to that order (the
 * converge step of this sweep then makes it follow the order's target); one whose
 * external_id names no order is alerted once and remembered, never deleted. Servers
 * without an external_id were not made by the shop and are left alone.
 */
async function adoptStrays(
  deps: SweepDeps,
  servers: PanelServer[],
  count: (outcome: string) => void,
): Promise<void> {
  const known = new Set(
    (await deps.sql<{ id: number }[]>`
      select pterodactyl_server_id as id from public.orders
      where pterodactyl_server_id is not null
      union all
      select panel_server_id from public.panel_orphans`).map((row) => row.id),
  );
  const strays = servers.filter((server) =>
    server.external_id !== null && !known.has(server.id)
  );
  if (strays.length === 0) return;
  const ids = strays.map((server) => server.external_id!).filter((id) =>
    ORDER_ID.test(id)
  );
  const owners = new Set(
    (await deps.sql<{ id: string }[]>`
      select id::text as id from public.orders
      where id = any(${ids}::uuid[]) and pterodactyl_server_id is null`)
      .map((row) => row.id),
  );
  for (const server of strays) {
    const orderId = server.external_id!.toLowerCase();
    const attached = owners.has(orderId) &&
      await attachServer(deps, orderId, server);
    if (attached) {
      count("server.attached");
      await deps.alert({
        title: "Server found on the panel and attached to its order",
        message:
          `Server ${server.identifier} (id ${server.id}) carries this order's id but was not recorded on it (a create whose answer was lost, or a race with a cancellation); it is now recorded, and the panel follows the order's target (${attached.panel_target})`,
        orderId,
        fields: { server_id: server.id, status: attached.status },
      });
    } else if (!attached && await rememberOrphan(deps, server)) {
      count("server.unknown");
      await deps.alert({
        title: "Server on the panel names no order",
        message:
          `Server ${server.identifier} (id ${server.id}, "${server.name}") on panel node ${server.node} has external_id "${server.external_id}", which names no order of this shop. It was left as it is: delete or keep it by hand.`,
        fields: { server_id: server.id, external_id: server.external_id },
      });
    }
  }
}

/** Records a stray server on its order, under the order's row lock; null if it moved on. */
async function attachServer(
  deps: SweepDeps,
  orderId: string,
  server: PanelServer,
): Promise<Order | null> {
  const now = clock(deps);
  return await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, { lock: true });
    if (!order || order.pterodactyl_server_id !== null) return null;
    const [node] = await tx<{ id: number }[]>`
      select id::int as id from public.ptero_nodes
      where panel_node_id = ${server.node}`;
    // An order that never paid wants no server: suspended until an operator decides.
    const unpaid = order.status === "pending" || order.status === "expired";
    const view = viewOf(server);
    const changed = await changeOrder(tx, orderId, {
      // A failed order whose server exists after all is installing (or installed).
      to: order.status === "error" ? statusForServer(view) : undefined,
      set: {
        pterodactyl_server_id: server.id,
        pterodactyl_server_identifier: server.identifier,
        node_id: node?.id ?? order.node_id,
        panel_state: view.status === "installing"
          ? "installing"
          : view.suspended
          ? "suspended"
          : "installed",
        panel_seen_at: now,
        ...(order.status === "error"
          ? { error_message: null, next_attempt_at: null }
          : {}),
        ...(unpaid
          ? { panel_target: "suspended", suspend_reason: "admin" }
          : {}),
        panel_action_due_at: now,
        panel_action_attempts: 0,
      },
      actor: ACTOR,
      reason: `Server ${server.identifier} found on the panel and attached`,
    });
    await recordOrderEvent(tx, orderId, {
      kind: "panel",
      message:
        `Server ${server.identifier} (id ${server.id}) found on the panel with this order's id and attached`,
      detail: {
        server_id: server.id,
        panel_node_id: server.node,
        server: view,
      },
      actor: ACTOR,
    });
    return changed;
  });
}

/** Remembers a server naming no order; answers whether it is new (alert once). */
async function rememberOrphan(
  deps: SweepDeps,
  server: PanelServer,
): Promise<boolean> {
  const inserted = await deps.sql`
    insert into public.panel_orphans (panel_server_id, external_id, identifier, name)
    values (${server.id}, ${server.external_id}, ${server.identifier}, ${server.name})
    on conflict (panel_server_id) do update set last_seen_at = now()
    returning (xmax = 0) as inserted`;
  return inserted[0]?.inserted === true;
}
