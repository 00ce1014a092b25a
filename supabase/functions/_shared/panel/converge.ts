/**
 * Making one order's server on the panel match the order's target (running, suspended,
 * deleted). An order is leased first (its `panel_action_due_at` moved past the call), so
 * two workers never act on it at once and a worker that dies leaves it due again. A 204
 * records what the panel now shows and moves the order's status; a failure keeps the
 * action due with backoff, counts it and alerts when it keeps failing: a panel outage
 * delays an action, never loses it. Every outcome is a `panel` row on the timeline.
 *
 * @module
 */
import type { Alerter } from "../platform/alerts.ts";
import type { Sql, Tx } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import {
  observe,
  type PanelAction,
  panelActionFor,
  type ServerView,
  statusForServer,
  statusWhenSuspended,
} from "../orders/lifecycle.ts";
import type { Logger } from "../platform/log.ts";
import {
  changeOrder,
  leaseDuePanelActions,
  limitsPending,
  type Order,
  type OrderFields,
  type OrderStatus,
  type PanelLimits,
  panelLimitsOf,
  readOrder,
  recordOrderEvent,
  sameLimits,
} from "../orders/orders.ts";
import {
  type PanelClient,
  type PanelClientApi,
  PanelError,
  type PanelServer,
} from "./client.ts";
import { confirmedLimits, serverBuild } from "./server_spec.ts";
import { nextAttempt, type RetryPolicy } from "../orders/retry.ts";

/** What converging needs. */
export interface ConvergeDeps {
  sql: Sql;
  panel: PanelClient;
  /** The client API (live state, power); null when no client key is configured. */
  client: PanelClientApi | null;
  alert: Alerter;
  log: Logger;
  now?: () => Date;
}

/** Panel actions never give up: 30 s doubling, at most 15 minutes apart. */
export const PANEL_ACTION_RETRY: RetryPolicy = {
  maxAttempts: Number.MAX_SAFE_INTEGER,
  baseDelayMs: 30_000,
  maxDelayMs: 15 * 60_000,
};
/** How long a worker holds an order it acts on; longer than any panel call. */
export const PANEL_ACTION_LEASE_MS = 2 * 60_000;
/** Consecutive failures of one action before an operator is alerted. */
export const ALERT_AFTER_FAILURES = 3;
/** Failed normal deletions before deleting with `/force`. */
export const FORCE_DELETE_AFTER_FAILURES = 3;

/** How converging one order ended. */
export type ConvergeOutcome =
  | "suspended"
  | "unsuspended"
  | "deleted"
  | "forced_delete"
  | "rebuilt"
  | "no_server"
  | "missing"
  | "failed"
  | "superseded";

function clock(deps: { now?: () => Date }): Date {
  return deps.now?.() ?? new Date();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The panel's view of a server, for {@linkcode observe}. */
export function viewOf(server: PanelServer): ServerView {
  return { status: server.status, suspended: server.suspended };
}

/**
 * Applies what the panel showed about an order's server (null: not there), re-decided
 * on the order as it is under its row lock; answers what was applied, or null. Alerts
 * after the commit.
 */
export async function applyObservation(
  deps: Pick<ConvergeDeps, "sql" | "alert" | "now">,
  orderId: string,
  server: ServerView | null,
  options: { actor: string; seen?: boolean },
): Promise<ReturnType<typeof observe>> {
  const now = clock(deps);
  const applied = await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, { lock: true });
    if (!order) return null;
    const seen = options.seen ? { panel_seen_at: now } : {};
    const observation = observe(order, server);
    if (!observation) {
      if (options.seen) {
        await changeOrder(tx, orderId, { set: seen, actor: options.actor });
      }
      return null;
    }
    const set: OrderFields = {
      ...seen,
      panel_state: observation.panel_state,
      error_message: observation.error_message,
      panel_action_due_at: observation.reconverge
        ? now
        : observation.panel_state === "deleted"
        ? null
        : undefined,
    };
    await changeOrder(tx, orderId, {
      to: observation.to,
      set,
      actor: options.actor,
      reason: observation.error_message ?? observation.message,
    });
    await recordOrderEvent(tx, orderId, {
      kind: "panel",
      message: observation.message,
      detail: { panel_state: observation.panel_state, server },
      actor: options.actor,
    });
    return observation;
  });
  if (applied?.alert) {
    await deps.alert({
      title: applied.alert,
      message: applied.error_message ?? applied.message,
      orderId,
    });
  }
  return applied;
}

/**
 * Leases the orders whose panel action is due (or just `orderId`, if due) and
 * converges each, while `more()` allows; answers one outcome per order.
 */
export async function convergeDue(
  deps: ConvergeDeps,
  options: {
    actor: string;
    orderId?: string;
    batch?: number;
    more?: () => boolean;
  },
): Promise<ConvergeOutcome[]> {
  const outcomes: ConvergeOutcome[] = [];
  const more = options.more ?? (() => true);
  // Bounded: an order whose target keeps changing is due again at once.
  for (let round = 0; round < 100 && more(); round++) {
    const now = clock(deps);
    const leased = await leaseDuePanelActions(deps.sql, {
      now,
      leaseUntil: new Date(now.getTime() + PANEL_ACTION_LEASE_MS),
      limit: options.batch ?? 10,
      orderId: options.orderId,
    });
    if (leased.length === 0) break;
    for (const order of leased) {
      outcomes.push(await convergeLeased(deps, order, options.actor));
    }
    if (options.orderId) break;
  }
  return outcomes;
}

/** Makes one leased order's panel match its target. */
export async function convergeLeased(
  deps: ConvergeDeps,
  order: Order,
  actor: string,
): Promise<ConvergeOutcome> {
  const action = panelActionFor(order);
  const serverId = order.pterodactyl_server_id;
  if (action === null || serverId === null) {
    return await withoutServer(deps, order, actor);
  }
  const log = deps.log.child({ order_id: order.id, action });
  let wasRunning = order.was_running;
  let forced = false;
  let limits: PanelLimits | null = null;
  try {
    switch (action) {
      case "build":
        limits = await changeBuild(deps, order, serverId);
        break;
      case "suspend":
        if (order.panel_state !== "suspended") {
          wasRunning = await readRunning(deps, order, log) ?? wasRunning;
        }
        await deps.panel.suspendServer(serverId);
        break;
      case "unsuspend":
        await deps.panel.unsuspendServer(serverId);
        break;
      case "delete":
        forced = order.panel_action_attempts >= FORCE_DELETE_AFTER_FAILURES;
        if (forced) {
          await deps.alert({
            title: "Forcing a server deletion",
            message:
              `Deleting server ${serverId} failed ${order.panel_action_attempts} times; deleting with force (its files may stay on the node)`,
            orderId: order.id,
          });
        }
        try {
          await deps.panel.deleteServer(serverId, { force: forced });
        } catch (error) {
          // Already gone is what we wanted.
          if (!(error instanceof PanelError && error.status === 404)) {
            throw error;
          }
        }
        break;
    }
  } catch (error) {
    if (error instanceof PanelError && error.status === 404) {
      await applyObservation(deps, order.id, null, { actor });
      await settleMissing(deps, order, actor);
      return "missing";
    }
    if (!(error instanceof PanelError || error instanceof DomainError)) {
      throw error;
    }
    log.error("Panel action failed", { error: error.message });
    await failed(deps, order, action, error, actor);
    return "failed";
  }
  const server = action === "unsuspend"
    ? await readServer(deps, order, log)
    : null;
  const done = await succeeded(deps, order, action, {
    wasRunning,
    forced,
    server,
    limits,
    actor,
  });
  if (!done) return "superseded";
  if (action === "build") return "rebuilt";
  if (
    action === "unsuspend" && done.was_running && deps.client &&
    server && statusForServer(server) === "active"
  ) {
    await startAgain(deps, done, actor, log);
  }
  if (action === "delete") return forced ? "forced_delete" : "deleted";
  return action === "suspend" ? "suspended" : "unsuspended";
}

/**
 * A server the panel no longer has is not acted on again: its action is no longer due
 * (not retried at every lease's end), until a server is recorded on the order again.
 */
async function settleMissing(
  deps: ConvergeDeps,
  order: Order,
  actor: string,
): Promise<void> {
  await deps.sql.begin(async (tx) => {
    const fresh = await readOrder(tx, order.id, { lock: true });
    if (
      fresh?.panel_state !== "missing" ||
      fresh.pterodactyl_server_id !== order.pterodactyl_server_id
    ) return;
    await changeOrder(tx, order.id, {
      set: { panel_action_due_at: null, panel_action_attempts: 0 },
      actor,
    });
  });
}

const MIB = 1024 * 1024;

/**
 * Gives the server the order's limits (the panel takes the whole build, with the
 * server's own default allocation) and answers what the panel confirmed. A smaller
 * disk than the data in use would make Wings stop the server and refuse to start it:
 * that build waits (a `disk_in_use` failure, retried and alerted) until files go.
 */
async function changeBuild(
  deps: ConvergeDeps,
  order: Order,
  serverId: number,
): Promise<PanelLimits> {
  const server = await deps.panel.getServerByExternalId(order.id);
  if (!server || server.id !== serverId) {
    throw new PanelError(`server ${serverId} is not on the panel`, {
      status: 404,
    });
  }
  const wanted = panelLimitsOf(order);
  const current = confirmedLimits(server);
  if (sameLimits(current, wanted)) return current;
  const shrinks = wanted.disk !== 0 &&
    (current.disk === 0 || wanted.disk < current.disk);
  if (shrinks && order.pterodactyl_server_identifier) {
    if (!deps.client) {
      throw new DomainError(
        "unavailable",
        "disk_in_use_unknown",
        "the disk in use cannot be read (no client API key): the smaller disk waits",
      );
    }
    const live = await deps.client.resources(
      order.pterodactyl_server_identifier,
    );
    if (live.resources.disk_bytes > wanted.disk * MIB) {
      throw new DomainError(
        "conflict",
        "disk_in_use",
        `the server uses ${
          Math.ceil(live.resources.disk_bytes / MIB)
        } MB of disk, more than the ${wanted.disk} MB of its new plan; it keeps its disk until files are removed`,
      );
    }
  }
  const changed = await deps.panel.updateBuild(
    serverId,
    serverBuild(order, server.allocation),
  );
  return confirmedLimits(changed);
}

/** Whether the server runs now (client API); null when that cannot be read. */
async function readRunning(
  deps: ConvergeDeps,
  order: Order,
  log: Logger,
): Promise<boolean | null> {
  if (!deps.client || !order.pterodactyl_server_identifier) return null;
  try {
    const live = await deps.client.resources(
      order.pterodactyl_server_identifier,
    );
    return live.current_state === "running" ||
      live.current_state === "starting";
  } catch (error) {
    // A server still installing answers 409: it was not running.
    log.warn("Could not read whether the server runs", {
      error: messageOf(error),
    });
    return error instanceof PanelError && error.status === 409 ? false : null;
  }
}

/** The server as the panel shows it after an unsuspend (null when unreadable). */
async function readServer(
  deps: ConvergeDeps,
  order: Order,
  log: Logger,
): Promise<ServerView | null> {
  try {
    const server = await deps.panel.getServerByExternalId(order.id);
    return server ? viewOf(server) : null;
  } catch (error) {
    log.warn("Could not read the server after unsuspending", {
      error: messageOf(error),
    });
    return null;
  }
}

async function succeeded(
  deps: ConvergeDeps,
  order: Order,
  action: PanelAction,
  result: {
    wasRunning: boolean | null;
    forced: boolean;
    server: ServerView | null;
    /** What the panel confirmed of a build change. */
    limits: PanelLimits | null;
    actor: string;
  },
): Promise<Order | null> {
  const now = clock(deps);
  return await deps.sql.begin(async (tx) => {
    const fresh = await readOrder(tx, order.id, { lock: true });
    if (!fresh) return null;
    const what = {
      suspend: "suspended",
      unsuspend: "unsuspended",
      delete: result.forced ? "deleted with force" : "deleted",
      build: "given its plan's limits",
    }[action];
    if (action === "build" && result.limits) {
      return await rebuilt(tx, fresh, result.limits, result.actor, now);
    }
    if (panelActionFor(fresh) !== action) {
      // The target changed while the panel call ran: act again at once.
      await changeOrder(tx, order.id, {
        set: { panel_action_due_at: now },
        actor: result.actor,
      });
      await recordOrderEvent(tx, order.id, {
        kind: "panel",
        message:
          `Server ${what} on the panel, but the target is now ${fresh.panel_target}`,
        detail: { action },
        actor: result.actor,
      });
      return null;
    }
    let to: OrderStatus | null = null;
    const set: OrderFields = {
      panel_action_due_at: null,
      panel_action_attempts: 0,
      panel_seen_at: now,
    };
    if (action === "suspend") {
      to = statusWhenSuspended(fresh.status);
      set.panel_state = "suspended";
      set.was_running = result.wasRunning;
    } else if (action === "unsuspend") {
      const server = result.server ?? { status: null, suspended: false };
      if (fresh.status === "suspended") to = statusForServer(server);
      set.panel_state = server.status === "installing"
        ? "installing"
        : to === "error"
        ? "install_failed"
        : "installed";
      if (to === "error") {
        set.error_message =
          `installation failed on the panel (status "${server.status}")`;
      }
    } else {
      set.panel_state = "deleted";
    }
    // Limits still to change once the server is as its target asks: next, at once.
    if (action !== "delete" && limitsPending(fresh)) {
      set.panel_action_due_at = now;
    }
    const changed = await changeOrder(tx, order.id, {
      to: to ?? undefined,
      set,
      actor: result.actor,
      reason: `Server ${what} on the panel`,
    });
    await recordOrderEvent(tx, order.id, {
      kind: "panel",
      message: `Server ${what} on the panel`,
      detail: {
        action,
        server_id: order.pterodactyl_server_id,
        forced: result.forced,
        was_running: set.was_running ?? fresh.was_running,
      },
      actor: result.actor,
    });
    return changed;
  });
}

/**
 * Records the build the panel confirmed. When the order's limits changed again while
 * the call ran, the next build is due at once; otherwise the customer is told, and
 * reminded that memory a game reads at start (Java's heap) needs a restart.
 */
async function rebuilt(
  tx: Tx,
  fresh: Order,
  confirmed: PanelLimits,
  actor: string,
  now: Date,
): Promise<Order | null> {
  const settled = sameLimits(confirmed, panelLimitsOf(fresh));
  const before = fresh.panel_limits;
  const changed = await changeOrder(tx, fresh.id, {
    set: {
      panel_limits: confirmed,
      panel_seen_at: now,
      panel_action_due_at: settled ? null : now,
      panel_action_attempts: 0,
    },
    actor,
  });
  const memoryChanged = before !== null && before.memory !== confirmed.memory;
  await recordOrderEvent(tx, fresh.id, {
    kind: "panel",
    message: settled
      ? `Server build changed on the panel: ${confirmed.memory} MB memory, ${confirmed.disk} MB disk, ${confirmed.cpu}% CPU`
      : "Server build changed on the panel, but the order's limits changed meanwhile: changing again",
    detail: { action: "build", before, confirmed },
    actor,
    customerMessage: settled
      ? `Your server now has ${confirmed.memory} MB of memory and ${confirmed.disk} MB of disk${
        memoryChanged ? "; restart it for the game to use the new memory" : ""
      }`
      : undefined,
  });
  return settled ? changed : null;
}

/** Pterodactyl's unsuspend leaves the server off: start it if it ran before. */
async function startAgain(
  deps: ConvergeDeps,
  order: Order,
  actor: string,
  log: Logger,
): Promise<void> {
  const client = deps.client;
  const identifier = order.pterodactyl_server_identifier;
  if (!client || !identifier) return;
  let problem: string | null = null;
  try {
    await client.power(identifier, "start");
  } catch (error) {
    problem = messageOf(error);
    log.warn("Could not start the server again", { error: problem });
  }
  await deps.sql.begin(async (tx) => {
    if (problem === null) {
      await changeOrder(tx, order.id, { set: { was_running: null }, actor });
    }
    await recordOrderEvent(tx, order.id, {
      kind: "panel",
      message: problem === null
        ? "Server started again (it was running before the suspension)"
        : `Could not start the server again: ${problem}`,
      actor,
    });
  });
  if (problem !== null) {
    await deps.alert({
      title: "Server not started after unsuspension",
      message: problem,
      orderId: order.id,
    });
  }
}

async function failed(
  deps: ConvergeDeps,
  order: Order,
  action: PanelAction,
  error: PanelError | DomainError,
  actor: string,
): Promise<void> {
  const now = clock(deps);
  const attempts = order.panel_action_attempts + 1;
  const decision = nextAttempt({
    attempt: attempts,
    retryAfterSeconds: error instanceof PanelError
      ? error.retryAfter
      : undefined,
    now,
  }, PANEL_ACTION_RETRY);
  const retryAt = decision.retry
    ? decision.at
    : new Date(now.getTime() + PANEL_ACTION_RETRY.maxDelayMs);
  await deps.sql.begin(async (tx) => {
    const fresh = await readOrder(tx, order.id, { lock: true });
    if (!fresh) return;
    // A target changed meanwhile is a new action: try it now.
    const due = panelActionFor(fresh) === action ? retryAt : now;
    await changeOrder(tx, order.id, {
      set: { panel_action_attempts: attempts, panel_action_due_at: due },
      actor,
    });
    await recordOrderEvent(tx, order.id, {
      kind: "panel",
      message: `Panel ${action} failed (attempt ${attempts}): ${error.message}`,
      detail: {
        action,
        attempt: attempts,
        panel_status: error instanceof PanelError ? error.status : null,
        next_attempt_at: due.toISOString(),
      },
      actor,
    });
  });
  if (attempts === ALERT_AFTER_FAILURES) {
    await deps.alert({
      title: "Panel action keeps failing",
      message:
        `${action} of server ${order.pterodactyl_server_id} failed ${attempts} times: ${error.message}`,
      orderId: order.id,
      fields: { next_attempt_at: retryAt.toISOString() },
    });
  }
}

/** The target of an order without a server on the panel is met in the database. */
async function withoutServer(
  deps: ConvergeDeps,
  order: Order,
  actor: string,
): Promise<ConvergeOutcome> {
  const now = clock(deps);
  await deps.sql.begin(async (tx) => {
    const fresh = await readOrder(tx, order.id, { lock: true });
    if (!fresh) return;
    const set: OrderFields = {
      panel_action_due_at: null,
      panel_action_attempts: 0,
    };
    let to: OrderStatus | undefined;
    let message = "Nothing to do on the panel: the order has no server";
    if (fresh.pterodactyl_server_id !== null) {
      // A server appeared meanwhile: act on it at once.
      set.panel_action_due_at = now;
      message = "A server appeared meanwhile: acting on it";
    } else if (fresh.panel_target === "running") {
      if (fresh.status === "suspended") {
        // Paid again before any server existed: provision it.
        to = "paid";
        set.next_attempt_at = now;
        message = "Resumed before a server existed: provisioning it";
      }
    } else if (fresh.panel_target === "suspended") {
      to = statusWhenSuspended(fresh.status) ?? undefined;
    } else {
      // Nothing to delete; the booking on the node is released.
      set.panel_state = "deleted";
    }
    await changeOrder(tx, order.id, { to, set, actor, reason: message });
    await recordOrderEvent(tx, order.id, {
      kind: "panel",
      message,
      detail: { target: fresh.panel_target },
      actor,
    });
  });
  return "no_server";
}
