/**
 * Provisioning one order: from `paid` (or `error`, for a retry) to `installing`, with
 * exactly one server on the panel whose external_id is the order id. The order row is
 * the claim (taken under a row lock), node choice is serialised per region under row
 * locks, an uncertain create is reconciled by external id before anything is retried,
 * and every failure ends as an `error` order with its cause, the attempt, the next
 * attempt time, a timeline row and an alert.
 *
 * @module
 */
import type { Alerter } from "./alerts.ts";
import { setActor, type Sql, type Tx } from "./db.ts";
import { HttpError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { type PanelClient, PanelError, type PanelServer } from "./panel.ts";
import { ensurePanelAccount } from "./panel_accounts.ts";

/** What provisioning needs; `panel` is a message when the panel is not configured. */
export interface ProvisionDeps {
  sql: Sql;
  panel: PanelClient | { missing: string };
  alert: Alerter;
  log: Logger;
  now?: () => Date;
  /** Attempts before giving up (no next attempt; an operator must act). Default 8. */
  maxAttempts?: number;
}

/** The state of an order after a provisioning call. */
export interface ProvisionSummary {
  order_id: string;
  status: string;
  server_id: number | null;
  server_identifier: string | null;
  node: string | null;
  attempt: number;
  error: string | null;
  next_attempt_at: string | null;
}

/** A claim older than this is taken to be from a worker that died. */
const STALE_CLAIM_MS = 5 * 60 * 1000;

/** Delay before attempt `attempt + 1`: 30 s doubling, at most an hour. */
export function retryDelayMs(attempt: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, attempt - 1), 3_600_000);
}

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

interface OrderRow {
  id: string;
  user_id: string;
  plan_id: string;
  region: string;
  server_name: string;
  status: string;
  memory_mb: number;
  disk_mb: number;
  attempt_count: number;
  updated_at: Date;
  pterodactyl_server_id: number | null;
  pterodactyl_server_identifier: string | null;
  error_message: string | null;
  next_attempt_at: Date | null;
  node_name: string | null;
}

async function readOrder(
  sql: Sql | Tx,
  orderId: string,
  lock: boolean,
): Promise<OrderRow> {
  const [order] = await sql<OrderRow[]>`
    select o.id, o.user_id, o.plan_id, o.region, o.server_name, o.status::text, o.memory_mb,
      o.disk_mb, o.attempt_count, o.updated_at, o.pterodactyl_server_id,
      o.pterodactyl_server_identifier, o.error_message, o.next_attempt_at, n.name as node_name
    from public.orders o left join public.ptero_nodes n on n.id = o.node_id
    where o.id = ${orderId}
    ${lock ? sql`for update of o` : sql``}`;
  if (!order) {
    throw new HttpError(
      404,
      "order_not_found",
      `Order "${orderId}" does not exist`,
    );
  }
  return order;
}

function summary(order: OrderRow): ProvisionSummary {
  return {
    order_id: order.id,
    status: order.status,
    server_id: order.pterodactyl_server_id,
    server_identifier: order.pterodactyl_server_identifier,
    node: order.node_name,
    attempt: order.attempt_count,
    error: order.error_message,
    next_attempt_at: order.next_attempt_at?.toISOString() ?? null,
  };
}

async function recordAttempt(
  tx: Tx,
  order: { id: string; user_id: string },
  message: string,
  detail: Record<string, string | number | boolean | null>,
  actor: string,
): Promise<void> {
  await tx`
    insert into public.order_events (order_id, user_id, kind, message, detail, actor)
    values (${order.id}, ${order.user_id}, 'provision_attempt', ${message}, ${
    tx.json(detail)
  },
      ${actor})`;
}

/** Takes the order for this worker, or says why not. */
async function claim(
  deps: ProvisionDeps,
  orderId: string,
  actor: string,
): Promise<{ claimed: OrderRow } | { current: OrderRow }> {
  const now = deps.now?.() ?? new Date();
  return await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, true);
    if (order.status === "installing" || order.status === "active") {
      return { current: order };
    }
    const stale = now.getTime() - order.updated_at.getTime() > STALE_CLAIM_MS;
    if (order.status === "provisioning" && !stale) return { current: order };
    if (!["paid", "error", "provisioning"].includes(order.status)) {
      throw new HttpError(
        409,
        "order_not_provisionable",
        `Order is "${order.status}"; only paid or failed orders can be provisioned`,
        { details: { status: order.status } },
      );
    }
    const attempt = order.attempt_count + 1;
    await setActor(tx, actor, `Provisioning attempt ${attempt} started`);
    await tx`
      update public.orders
      set status = 'provisioning', attempt_count = ${attempt}, next_attempt_at = null
      where id = ${orderId}`;
    await recordAttempt(
      tx,
      order,
      `Attempt ${attempt} started`,
      { attempt },
      actor,
    );
    return {
      claimed: { ...order, attempt_count: attempt, status: "provisioning" },
    };
  });
}

interface PlanRow {
  id: string;
  cpu_percent: number;
  swap_mb: number;
  io_weight: number;
  databases: number;
  backups: number;
  allocations: number;
  ptero_nest_id: number;
  ptero_egg_id: number;
  docker_image: string | null;
  startup: string | null;
  environment: Record<string, string>;
}

interface NodeChoice {
  id: number;
  panel_node_id: number;
  name: string;
}

/** Picks the node in the order's region with the most room, and books it on the order. */
async function chooseNode(
  sql: Sql,
  order: OrderRow,
  actor: string,
): Promise<NodeChoice> {
  return await sql.begin(async (tx) => {
    await setActor(tx, actor);
    // Locking the region's nodes serialises placements: a concurrent order waits here,
    // then sees this booking in node_capacity.
    await tx`select id from public.ptero_nodes where region = ${order.region} and enabled
      order by id for update`;
    const [node] = await tx<NodeChoice[]>`
      select n.id::int as id, n.panel_node_id, n.name
      from public.node_capacity c join public.ptero_nodes n on n.id = c.node_id
      where c.region = ${order.region}
        and c.free_memory_mb >= ${order.memory_mb} and c.free_disk_mb >= ${order.disk_mb}
      order by c.free_memory_mb desc, n.id
      limit 1`;
    if (!node) {
      throw new StepError(
        "Choosing a node",
        `no enabled node in region "${order.region}" has ${order.memory_mb} MB memory and ${order.disk_mb} MB disk free; add a node or capacity to the region`,
      );
    }
    await tx`update public.orders set node_id = ${node.id} where id = ${order.id}`;
    return node;
  });
}

function panelDetail(error: unknown): string {
  if (error instanceof PanelError) return error.message;
  if (error instanceof HttpError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StepError) throw error;
    throw new StepError(name, panelDetail(error), { cause: error });
  }
}

/** Creates the server, trying the next free allocation if one was taken meanwhile. */
async function createServer(
  panel: PanelClient,
  order: OrderRow,
  build: Omit<Parameters<PanelClient["createServer"]>[0], "allocation">,
  node: NodeChoice,
): Promise<PanelServer> {
  const free = await step(
    "Finding a free allocation",
    () => panel.freeAllocations(node.panel_node_id),
  );
  if (free.length === 0) {
    throw new StepError(
      "Finding a free allocation",
      `node "${node.name}" (panel node ${node.panel_node_id}) has no free allocation; add ports to it`,
    );
  }
  for (const allocation of free.slice(0, 3)) {
    try {
      return await panel.createServer({
        ...build,
        allocation: { default: allocation.id },
      });
    } catch (error) {
      if (
        error instanceof PanelError && error.status === 422 &&
        error.field?.startsWith("allocation")
      ) {
        continue;
      }
      if (error instanceof PanelError && error.uncertain) {
        // The panel may have made it: look before anyone tries again.
        const made = await step(
          "Checking for the server after an uncertain create",
          () => panel.getServerByExternalId(order.id),
        );
        if (made) return made;
      }
      throw new StepError(
        "Creating the server on the panel",
        panelDetail(error),
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
  panel: PanelClient,
  order: OrderRow,
  actor: string,
): Promise<{ server: PanelServer; nodeId: number }> {
  const [plan] = await deps.sql<PlanRow[]>`
    select id, cpu_percent, swap_mb, io_weight, databases, backups, allocations, ptero_nest_id,
      ptero_egg_id, docker_image, startup, environment
    from public.plans where id = ${order.plan_id}`;
  const account = await step(
    "Ensuring the customer's panel account",
    () => ensurePanelAccount(deps.sql, panel, order.user_id),
  );

  if (order.attempt_count > 1) {
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

  const egg = await step(
    "Reading the egg",
    () => panel.getEgg(plan.ptero_nest_id, plan.ptero_egg_id),
  );
  if (!egg) {
    throw new StepError(
      "Reading the egg",
      `plan "${plan.id}" uses egg ${plan.ptero_egg_id} of nest ${plan.ptero_nest_id}, which the panel does not have; fix the plan's ptero_nest_id / ptero_egg_id`,
    );
  }
  const known = new Set(egg.variables.map((v) => v.env_variable));
  const unknown = Object.keys(plan.environment).filter((key) =>
    !known.has(key)
  );
  if (unknown.length > 0) {
    throw new StepError(
      "Building the environment",
      `plan "${plan.id}" sets ${
        unknown.join(", ")
      }, which egg "${egg.name}" does not define`,
    );
  }
  const environment = Object.fromEntries(
    egg.variables.map((
      v,
    ) => [
      v.env_variable,
      plan.environment[v.env_variable] ?? v.default_value ?? "",
    ]),
  );

  const node = await chooseNode(deps.sql, order, actor);
  const server = await createServer(panel, order, {
    name: order.server_name,
    user: account.pteroUserId,
    egg: egg.id,
    docker_image: plan.docker_image ?? egg.dockerImage,
    startup: plan.startup ?? egg.startup,
    environment,
    limits: {
      memory: order.memory_mb,
      swap: plan.swap_mb,
      disk: order.disk_mb,
      io: plan.io_weight,
      cpu: plan.cpu_percent,
    },
    feature_limits: {
      databases: plan.databases,
      backups: plan.backups,
      allocations: plan.allocations,
    },
    external_id: order.id,
    description: `Order ${order.id}`,
    start_on_completion: true,
  }, node);
  return { server, nodeId: node.id };
}

/** Provisions one order; see the module doc. */
export async function provisionOrder(
  deps: ProvisionDeps,
  orderId: string,
  options: { actor: string },
): Promise<ProvisionSummary> {
  const taken = await claim(deps, orderId, options.actor);
  if ("current" in taken) return summary(taken.current);
  const order = taken.claimed;
  const log = deps.log.child({
    order_id: order.id,
    attempt: order.attempt_count,
  });
  log.info("Provisioning started");

  try {
    if ("missing" in deps.panel) {
      throw new StepError(
        "Reading the panel configuration",
        deps.panel.missing,
      );
    }
    const panel = deps.panel;
    const { server, nodeId } = await runSteps(
      deps,
      panel,
      order,
      options.actor,
    );
    await deps.sql.begin(async (tx) => {
      await setActor(
        tx,
        options.actor,
        `Server ${server.identifier} created; installing`,
      );
      await tx`
        update public.orders set status = 'installing', pterodactyl_server_id = ${server.id},
          pterodactyl_server_identifier = ${server.identifier}, node_id = ${nodeId},
          error_message = null, next_attempt_at = null
        where id = ${order.id}`;
      await recordAttempt(
        tx,
        order,
        `Attempt ${order.attempt_count} succeeded`,
        {
          attempt: order.attempt_count,
          server_id: server.id,
          server_identifier: server.identifier,
          panel_node_id: server.node,
        },
        options.actor,
      );
    });
    log.info("Server created", {
      server_id: server.id,
      identifier: server.identifier,
    });
  } catch (error) {
    await fail(deps, order, error, options.actor, log);
  }
  return summary(await readOrder(deps.sql, order.id, false));
}

async function fail(
  deps: ProvisionDeps,
  order: OrderRow,
  error: unknown,
  actor: string,
  log: Logger,
): Promise<void> {
  const now = deps.now?.() ?? new Date();
  const stepName = error instanceof StepError ? error.step : "Provisioning";
  const message = `${stepName} failed: ${panelDetail(error)}`;
  const attempt = order.attempt_count;
  const gaveUp = attempt >= (deps.maxAttempts ?? 8);
  const cause = error instanceof StepError ? error.cause : error;
  // A throttled panel names its own wait; never come back sooner than that.
  const askedMs = cause instanceof PanelError && cause.retryAfter
    ? cause.retryAfter * 1000
    : 0;
  const next = gaveUp
    ? null
    : new Date(now.getTime() + Math.max(retryDelayMs(attempt), askedMs));
  log.error("Provisioning failed", { error: message, next_attempt_at: next });
  await deps.sql.begin(async (tx) => {
    await setActor(tx, actor, message);
    // The node booking is released unless a server exists for the order.
    await tx`
      update public.orders set status = 'error', error_message = ${message},
        next_attempt_at = ${next},
        node_id = case when pterodactyl_server_id is null then null else node_id end
      where id = ${order.id}`;
    await recordAttempt(tx, order, `Attempt ${attempt} failed`, {
      attempt,
      step: stepName,
      error: message,
      panel_status: cause instanceof PanelError ? cause.status : null,
      panel_code: cause instanceof PanelError ? cause.panelCode ?? null : null,
      next_attempt_at: next?.toISOString() ?? null,
    }, actor);
  });
  await deps.alert({
    title: gaveUp ? "Provisioning gave up" : "Provisioning failed",
    message,
    orderId: order.id,
    fields: {
      attempt,
      next_attempt_at: next?.toISOString() ?? "none: an operator must retry",
    },
  });
}
