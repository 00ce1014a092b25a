/**
 * Provisioning one order: from `paid` (or `error`, for a retry) to `installing`, with
 * exactly one server on the panel whose external_id is the order id. The order row is
 * the claim (taken under a row lock), node choice is serialised per region under row
 * locks, an uncertain create is reconciled by external id before anything is retried,
 * and every failure ends as an `error` order with its cause, the attempt, the next
 * attempt time, a timeline row and an alert. Decisions (claim, node, server spec, retry)
 * are plain functions; this module is the shell around them.
 *
 * @module
 */
import type { Alerter } from "../platform/alerts.ts";
import { convergeDue } from "./converge.ts";
import type { Sql } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import type { Logger } from "../platform/log.ts";
import {
  changeOrder,
  type Order,
  type OrderStatus,
  readOrder,
  recordOrderEvent,
} from "../orders/orders.ts";
import {
  type PanelClient,
  type PanelClientApi,
  PanelError,
  type PanelServer,
} from "./client.ts";
import { ensurePanelAccount } from "./accounts.ts";
import { lockRegionRooms } from "../orders/catalog.ts";
import {
  eggFor,
  markAllocationUsed,
  refreshAllocations,
  releaseAllocation,
  takeAllocation,
} from "./cache.ts";
import { chooseNode, type NodeRoom } from "../orders/placement.ts";
import {
  DEFAULT_RETRY_POLICY,
  nextAttempt,
  type RetryPolicy,
} from "../orders/retry.ts";
import { confirmedLimits, type PlanBuild, serverSpec } from "./server_spec.ts";

/** What provisioning needs. */
export interface ProvisionDeps {
  sql: Sql;
  panel: PanelClient;
  /** The client API, for converging an order that moved on while its server was made. */
  client?: PanelClientApi | null;
  alert: Alerter;
  log: Logger;
  now?: () => Date;
  retry?: RetryPolicy;
}

/** The state of an order after a provisioning call. */
export interface ProvisionSummary {
  order_id: string;
  status: OrderStatus;
  server_id: number | null;
  server_identifier: string | null;
  node: string | null;
  attempt: number;
  error: string | null;
  next_attempt_at: string | null;
}

/** A claim older than this is taken to be from a worker that died. */
export const STALE_CLAIM_MS = 5 * 60 * 1000;

/** Whether a worker may take an order now: take it, leave it as it is, or refuse. */
export function claimDecision(
  order: Pick<Order, "status" | "updated_at">,
  now: Date,
): "claim" | "current" | "refuse" {
  switch (order.status) {
    case "paid":
    case "error":
      return "claim";
    case "provisioning":
      // Another worker has it, unless that worker died long ago.
      return now.getTime() - order.updated_at.getTime() > STALE_CLAIM_MS
        ? "claim"
        : "current";
    case "installing":
    case "active":
      return "current";
    default:
      return "refuse";
  }
}

/** A failed step of provisioning, with the words an operator reads on the order. */
class StepError extends Error {
  override name = "StepError";
  constructor(
    readonly step: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StepError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new StepError(name, message, { cause: error });
  }
}

async function summary(deps: ProvisionDeps, orderId: string) {
  const [row] = await deps.sql<{ name: string | null }[]>`
    select n.name from public.orders o left join public.ptero_nodes n on n.id = o.node_id
    where o.id = ${orderId}`;
  const order = await readOrder(deps.sql, orderId);
  if (!order) throw orderNotFound(orderId);
  return {
    order_id: order.id,
    status: order.status,
    server_id: order.pterodactyl_server_id,
    server_identifier: order.pterodactyl_server_identifier,
    node: row?.name ?? null,
    attempt: order.attempt_count,
    error: order.error_message,
    next_attempt_at: order.next_attempt_at?.toISOString() ?? null,
  } satisfies ProvisionSummary;
}

function orderNotFound(orderId: string): DomainError {
  return new DomainError(
    "not_found",
    "order_not_found",
    `Order "${orderId}" does not exist`,
  );
}

/** Takes the order for this worker (counting the attempt), or says why not. */
async function claim(
  deps: ProvisionDeps,
  orderId: string,
  actor: string,
): Promise<Order | null> {
  const now = deps.now?.() ?? new Date();
  return await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, { lock: true });
    if (!order) throw orderNotFound(orderId);
    const decision = claimDecision(order, now);
    if (decision === "current") return null;
    if (decision === "refuse") {
      throw new DomainError(
        "conflict",
        "order_not_provisionable",
        `Order is "${order.status}"; only paid or failed orders can be provisioned`,
        { details: { status: order.status } },
      );
    }
    const attempt = order.attempt_count + 1;
    const claimed = await changeOrder(tx, orderId, {
      to: "provisioning",
      set: { attempt_count: attempt, next_attempt_at: null, gave_up_at: null },
      actor,
      reason: `Provisioning attempt ${attempt} started`,
    });
    await recordOrderEvent(tx, orderId, {
      kind: "provision_attempt",
      message: `Attempt ${attempt} started`,
      detail: { attempt },
      actor,
    });
    return claimed;
  });
}

/**
 * Books the order's node: the one reserved at checkout while it is still enabled, else
 * the node with the most room in the order's region.
 */
async function bookNode(
  sql: Sql,
  order: Order,
  actor: string,
): Promise<NodeRoom> {
  return await sql.begin(async (tx) => {
    const rooms = await lockRegionRooms(tx, order.region);
    const current = await readOrder(tx, order.id);
    if (current?.status !== "provisioning") {
      // Cancelled, refunded or disputed since the claim: no server is wanted now.
      throw new StepError(
        "Booking a node",
        `the order became ${
          current?.status ?? "deleted"
        } before its server was created`,
      );
    }
    // The reservation's room is already counted in node_capacity: use it as it is.
    const reserved = rooms.find((room) => room.id === current?.node_id);
    if (reserved) return reserved;
    const node = chooseNode(rooms, order);
    if (!node) {
      throw new StepError(
        "Choosing a node",
        `no enabled node in region "${order.region}" has ${order.memory_mb} MB memory and ${order.disk_mb} MB disk free; add a node or capacity to the region`,
      );
    }
    await changeOrder(tx, order.id, { set: { node_id: node.id }, actor });
    return node;
  });
}

/** Whether the panel refused a server because its owner (our linked user) is gone. */
function ownerMissing(error: unknown): boolean {
  const cause = error instanceof StepError ? error.cause : error;
  return cause instanceof PanelError && cause.status === 422 &&
    cause.field === "user";
}

/** Takes a free allocation on the node: from the database, else fresh from the panel. */
async function allocationFor(
  deps: ProvisionDeps,
  order: Order,
  node: NodeRoom,
  refreshed: { done: boolean },
): Promise<number> {
  const taken = await takeAllocation(deps.sql, node.panel_node_id, order.id);
  if (taken !== null) return taken;
  if (!refreshed.done) {
    refreshed.done = true;
    await step(
      "Finding a free allocation",
      () => refreshAllocations(deps.sql, deps.panel, node.panel_node_id),
    );
    const fresh = await takeAllocation(deps.sql, node.panel_node_id, order.id);
    if (fresh !== null) return fresh;
  }
  throw new StepError(
    "Finding a free allocation",
    `node "${node.name}" (panel node ${node.panel_node_id}) has no free allocation; add ports to it`,
  );
}

/** Tries of the create when an allocation turns out taken meanwhile. */
const ALLOCATION_TRIES = 3;

/**
 * Creates the server on a free allocation, taking the next one if the panel says it
 * was taken meanwhile, and reading the egg again if the panel refuses its variables.
 */
async function createServer(
  deps: ProvisionDeps,
  order: Order,
  spec: ReturnType<typeof serverSpec>,
  node: NodeRoom,
  rebuild: () => Promise<ReturnType<typeof serverSpec>>,
): Promise<PanelServer> {
  const refreshed = { done: false };
  let eggReread = false;
  for (let tries = 0; tries < ALLOCATION_TRIES; tries++) {
    const allocation = await allocationFor(deps, order, node, refreshed);
    try {
      return await deps.panel.createServer({
        ...spec,
        allocation: { default: allocation },
      });
    } catch (error) {
      if (error instanceof PanelError && error.status === 422) {
        if (error.field?.startsWith("allocation")) {
          await markAllocationUsed(deps.sql, allocation);
          continue;
        }
        if (error.field?.startsWith("environment") && !eggReread) {
          // The egg changed on the panel since it was stored: read it again, once.
          eggReread = true;
          spec = await rebuild();
          tries--;
          continue;
        }
      }
      if (error instanceof PanelError && error.uncertain) {
        // The panel may have made it, on this allocation: never offer it again until
        // a refresh says it is free, and look for the server before anyone retries.
        await markAllocationUsed(deps.sql, allocation);
        const made = await step(
          "Checking for the server after an uncertain create",
          () => deps.panel.getServerByExternalId(order.id),
        );
        if (made) return made;
      }
      throw new StepError(
        "Creating the server on the panel",
        error instanceof Error ? error.message : String(error),
        { cause: error },
      );
    }
  }
  throw new StepError(
    "Creating the server on the panel",
    `every free allocation tried on node "${node.name}" was taken meanwhile`,
  );
}

async function runSteps(
  deps: ProvisionDeps,
  order: Order,
  actor: string,
): Promise<{ server: PanelServer; nodeId: number }> {
  const { panel } = deps;
  const [plan] = await deps.sql<PlanBuild[]>`
    select id, ptero_nest_id, ptero_egg_id, docker_image, startup, environment
    from public.plans where id = ${order.plan_id}`;
  const account = await step(
    "Ensuring the customer's panel account",
    () => ensurePanelAccount(deps.sql, panel, order.user_id),
  );

  if (order.attempt_count > 1 || order.pterodactyl_server_id !== null) {
    // An earlier attempt may have made the server before its worker died.
    const existing = await step(
      "Looking for a server from an earlier attempt",
      () => panel.getServerByExternalId(order.id),
    );
    if (existing) {
      const [node] = await deps.sql<{ id: number }[]>`
        select id::int as id from public.ptero_nodes where panel_node_id = ${existing.node}`;
      if (node) return { server: existing, nodeId: node.id };
    }
  }

  const buildSpec = async (fresh: boolean) => {
    const ids = { nestId: plan.ptero_nest_id, eggId: plan.ptero_egg_id };
    const egg = await step(
      "Reading the egg",
      () => eggFor(deps.sql, panel, ids, { fresh }),
    );
    if (!egg) {
      throw new StepError(
        "Reading the egg",
        `plan "${plan.id}" uses egg ${plan.ptero_egg_id} of nest ${plan.ptero_nest_id}, which the panel does not have; fix the plan's ptero_nest_id / ptero_egg_id`,
      );
    }
    return await step(
      "Building the environment",
      () => Promise.resolve(serverSpec(plan, egg, order, account)),
    );
  };
  const spec = await buildSpec(false);
  const node = await bookNode(deps.sql, order, actor);
  try {
    return {
      server: await createServer(
        deps,
        order,
        spec,
        node,
        () => buildSpec(true),
      ),
      nodeId: node.id,
    };
  } catch (error) {
    if (!ownerMissing(error)) throw error;
  }
  // The linked panel account was deleted on the panel by hand: re-create, relink, retry.
  const relinked = await step(
    "Relinking the customer's panel account",
    () =>
      ensurePanelAccount(deps.sql, panel, order.user_id, {
        gone: account.pteroUserId,
      }),
  );
  await recordOrderEvent(deps.sql, order.id, {
    kind: "panel",
    message:
      `Panel user ${account.pteroUserId} no longer exists; linked panel user ${relinked.pteroUserId}`,
    detail: { gone: account.pteroUserId, linked: relinked.pteroUserId },
    actor,
  });
  const server = await createServer(
    deps,
    order,
    { ...spec, user: relinked.pteroUserId },
    node,
    async () => ({ ...await buildSpec(true), user: relinked.pteroUserId }),
  );
  return { server, nodeId: node.id };
}

/**
 * Records the server the panel made on its order, whatever the order's status became
 * while the create ran: a server always belongs to its order. A claim still held moves
 * to `installing`; an order that moved on (cancelled, suspended) keeps its status, and
 * when its target is no longer a running server the panel action is due now.
 */
async function recordServer(
  deps: ProvisionDeps,
  order: Order,
  server: PanelServer,
  nodeId: number,
  options: { actor: string },
): Promise<Order> {
  const now = deps.now?.() ?? new Date();
  return await deps.sql.begin(async (tx) => {
    const current = await readOrder(tx, order.id, { lock: true });
    if (!current) throw orderNotFound(order.id);
    const claimed = current.status === "provisioning";
    const act = current.panel_target !== "running";
    const changed = await changeOrder(tx, order.id, {
      to: claimed ? "installing" : undefined,
      set: {
        pterodactyl_server_id: server.id,
        pterodactyl_server_identifier: server.identifier,
        node_id: nodeId,
        next_attempt_at: null,
        panel_state: "installing",
        panel_seen_at: now,
        panel_limits: confirmedLimits(server),
        ...(claimed ? { error_message: null } : {}),
        ...(act ? { panel_action_due_at: now, panel_action_attempts: 0 } : {}),
      },
      actor: options.actor,
      reason: claimed
        ? `Server ${server.identifier} created; installing`
        : `Server ${server.identifier} created while the order became ${current.status}; recorded`,
    });
    await recordOrderEvent(tx, order.id, {
      kind: "provision_attempt",
      message: claimed
        ? `Attempt ${order.attempt_count} succeeded`
        : `Attempt ${order.attempt_count} created server ${server.identifier} after the order became ${current.status}: recorded, and the panel follows the order's target (${current.panel_target})`,
      detail: {
        attempt: order.attempt_count,
        server_id: server.id,
        server_identifier: server.identifier,
        panel_node_id: server.node,
        status: current.status,
        panel_target: current.panel_target,
      },
      actor: options.actor,
    });
    return changed!;
  });
}

/** Provisions one order; see the module doc. */
export async function provisionOrder(
  deps: ProvisionDeps,
  orderId: string,
  options: { actor: string },
): Promise<ProvisionSummary> {
  const order = await claim(deps, orderId, options.actor);
  if (!order) return await summary(deps, orderId);
  const log = deps.log.child({
    order_id: order.id,
    attempt: order.attempt_count,
  });
  log.info("Provisioning started");

  try {
    const { server, nodeId } = await runSteps(deps, order, options.actor);
    const recorded = await recordServer(deps, order, server, nodeId, options);
    log.info("Server created", {
      server_id: server.id,
      identifier: server.identifier,
      status: recorded.status,
    });
    if (recorded.panel_action_due_at !== null) {
      // The order no longer wants a running server (cancelled, refunded, disputed while
      // the create ran): the panel follows in this same pass, not a sweep later.
      await convergeDue({ ...deps, client: deps.client ?? null, log }, {
        actor: options.actor,
        orderId: order.id,
      });
    }
  } catch (error) {
    await fail(deps, order, error, options.actor, log);
  }
  return await summary(deps, order.id);
}

async function fail(
  deps: ProvisionDeps,
  order: Order,
  error: unknown,
  actor: string,
  log: Logger,
): Promise<void> {
  const stepName = error instanceof StepError ? error.step : "Provisioning";
  const detail = error instanceof Error ? error.message : String(error);
  const message = `${stepName} failed: ${detail}`;
  const attempt = order.attempt_count;
  const cause = error instanceof StepError ? error.cause : error;
  const decision = nextAttempt({
    attempt,
    retryAfterSeconds: cause instanceof PanelError
      ? cause.retryAfter
      : undefined,
    now: deps.now?.() ?? new Date(),
  }, deps.retry ?? DEFAULT_RETRY_POLICY);
  const now = deps.now?.() ?? new Date();
  const next = decision.retry ? decision.at : null;
  const moved = await deps.sql.begin(async (tx) => {
    const current = await readOrder(tx, order.id, { lock: true });
    if (current?.pterodactyl_server_id == null) {
      await releaseAllocation(tx, order.id);
    }
    // Only a claim still held fails: an order cancelled or suspended meanwhile keeps
    // its status, and nothing is retried for it.
    const failed = current?.status === "provisioning" &&
      await changeOrder(tx, order.id, {
          to: "error",
          onlyFrom: ["provisioning"],
          set: {
            error_message: message,
            // The node booking stays: the customer paid for that room, the retry uses it.
            next_attempt_at: next,
            gave_up_at: decision.retry ? null : now,
          },
          actor,
          reason: message,
        }) !== null;
    await recordOrderEvent(tx, order.id, {
      kind: "provision_attempt",
      message: failed
        ? `Attempt ${attempt} failed`
        : `Attempt ${attempt} failed after the order became ${current?.status}: not retried`,
      detail: {
        attempt,
        step: stepName,
        error: message,
        panel_status: cause instanceof PanelError ? cause.status : null,
        panel_code: cause instanceof PanelError
          ? cause.panelCode ?? null
          : null,
        // The field and rule a validation error names (the doctor shows them).
        panel_field: cause instanceof PanelError ? cause.field ?? null : null,
        panel_rule: cause instanceof PanelError ? cause.rule ?? null : null,
        next_attempt_at: failed ? next?.toISOString() ?? null : null,
      },
      actor,
    });
    return failed ? null : current?.status ?? null;
  });
  if (moved !== null) {
    log.warn("Provisioning stopped: the order moved on", {
      error: message,
      status: moved,
    });
    return;
  }
  log.error("Provisioning failed", { error: message, next_attempt_at: next });
  await deps.alert({
    title: decision.retry ? "Provisioning failed" : "Provisioning gave up",
    message,
    orderId: order.id,
    fields: {
      attempt,
      next_attempt_at: next?.toISOString() ?? "none: an operator must retry",
    },
  });
}
