/**
 * One sweep over every order after payment, within a time budget: provisioning retries
 * that are due (failed, handed off in vain, claims of dead workers), deadlines that
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
} from "./converge.ts";
import { DomainError } from "./errors.ts";
import {
  changeOrder,
  lockOrdersPastDeadline,
  type Order,
  ordersDueForProvisioning,
  ordersWithServers,
  recordOrderEvent,
} from "./orders.ts";
import { PanelError, type PanelServer } from "./panel.ts";
import { observe } from "./lifecycle.ts";
import { refreshAllocations, refreshEggs } from "./panel_cache.ts";
import { provisionOrder, STALE_CLAIM_MS } from "./provision.ts";
import type { RetryPolicy } from "./retry.ts";

/** What a sweep needs. */
export interface SweepDeps extends ConvergeDeps {
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
  if (more()) await retryProvisioning(stepDeps, count, more);
  if (more()) await passDeadlines(stepDeps, count);
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
  if (orders.length === 0) return;
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
