/**
 * Sweep job: what the panel shows, read from its server list a hundred at a time:
 * installs finished or failed, servers gone, suspensions changed by hand; servers
 * carrying an order's id that the order does not record are attached, and servers
 * naming no order alerted once. A sweep reads at most {@linkcode LIST_PAGES_PER_SWEEP}
 * pages, from where the last one stopped (`shop_state` `servers_cursor`): a panel
 * larger than that is compared over several sweeps, and the orders still installing
 * whose servers are not on this sweep's pages are asked for one by one, every sweep.
 *
 * @module
 */
import { applyObservation, viewOf } from "../panel/converge.ts";
import { PanelError, type PanelServer } from "../panel/client.ts";
import { observe, statusForServer } from "../orders/lifecycle.ts";
import {
  changeOrder,
  type Order,
  ordersWithServers,
  readOrder,
  recordOrderEvent,
} from "../orders/orders.ts";
import type { Sql } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import { ACTOR, clock, type Count, type SweepDeps } from "./job.ts";

/** Servers per page of the panel's list: calls grow with servers / 100. */
export const LIST_PAGE_SIZE = 100;
/**
 * Pages of the list one sweep reads. The panel answers 240 requests a minute per key
 * and the sweep runs every 15 s by default: 60 requests an interval, shared with
 * provisioning, panel actions and the customers' own calls. Twenty pages (2,000
 * servers) a sweep keep the list to a third of that; a larger panel is compared in
 * turns (100,000 servers: every 50 sweeps).
 */
export const LIST_PAGES_PER_SWEEP = 20;
/** Installing orders off this sweep's pages asked for one by one, at most, a sweep. */
export const INSTALL_CHECKS_PER_SWEEP = 10;
/** Where the next sweep's reading of the list starts (`shop_state`). */
export const SERVERS_CURSOR_KEY = "servers_cursor";
/** Orders whose servers a run compares with the panel. */
const OBSERVE_LIMIT = 20_000;

/** Where the list's reading stands: the next page, and the last server id read. */
interface Cursor {
  page: number;
  afterId: number;
}

/** What one sweep read of the list. */
interface ListedPages {
  servers: PanelServer[];
  /** Server ids this reading covers: orders with a server in it are compared. */
  from: number;
  to: number;
  next: Cursor;
}

async function readCursor(sql: Sql): Promise<Cursor> {
  const [row] = await sql<{ page: number | null; after_id: number | null }[]>`
    select (value->>'page')::int as page, (value->>'after_id')::int as after_id
    from public.shop_state where key = ${SERVERS_CURSOR_KEY}`;
  return row?.page && row.page > 1
    ? { page: row.page, afterId: row.after_id ?? 0 }
    : { page: 1, afterId: 0 };
}

async function saveCursor(deps: SweepDeps, cursor: Cursor): Promise<void> {
  await deps.sql`
    insert into public.shop_state (key, value, updated_at)
    values (${SERVERS_CURSOR_KEY}, ${
    deps.sql.json({ page: cursor.page, after_id: cursor.afterId })
  }, ${clock(deps)})
    on conflict (key) do update set value = excluded.value,
      updated_at = excluded.updated_at`;
}

/**
 * Reads up to LIST_PAGES_PER_SWEEP pages from the cursor. The list is ordered by id:
 * the pages cover the ids after the last one read (from the first page: all ids) up to
 * their last server (at the list's end: every id above).
 */
async function listPages(
  deps: SweepDeps,
  cursor: Cursor,
): Promise<ListedPages> {
  const servers: PanelServer[] = [];
  for (let page = cursor.page;; page++) {
    const result = await deps.panel.listServers({
      page,
      perPage: LIST_PAGE_SIZE,
    });
    servers.push(...result.servers);
    const from = cursor.page === 1 ? 0 : cursor.afterId + 1;
    if (result.page >= result.totalPages || result.servers.length === 0) {
      return {
        servers,
        from,
        to: Number.MAX_SAFE_INTEGER,
        next: { page: 1, afterId: 0 },
      };
    }
    if (page - cursor.page + 1 >= LIST_PAGES_PER_SWEEP) {
      const last = Math.max(cursor.afterId, ...servers.map((s) => s.id));
      return {
        servers,
        from,
        to: last,
        next: { page: page + 1, afterId: last },
      };
    }
  }
}

/** Compares the orders that have servers with the panel's list (this sweep's pages). */
export async function observeServers(
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
): Promise<void> {
  // Orders first, then the list: every server these orders name exists before it.
  const orders = await ordersWithServers(deps.sql, { limit: OBSERVE_LIMIT });
  let listed: ListedPages;
  try {
    listed = await listPages(deps, await readCursor(deps.sql));
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
  await saveCursor(deps, listed.next);
  await adoptStrays(deps, listed.servers, count);
  const byId = new Map(listed.servers.map((server) => [server.id, server]));
  let installChecks = 0;
  for (const order of orders) {
    if (!more()) return;
    const serverId = order.pterodactyl_server_id!;
    const onPages = serverId >= listed.from && serverId <= listed.to;
    // Off this sweep's pages, only an install in progress is asked for now.
    if (!onPages && order.panel_state !== "installing") continue;
    if (!onPages && installChecks++ >= INSTALL_CHECKS_PER_SWEEP) continue;
    let server: PanelServer | null = byId.get(serverId) ?? null;
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
  count: Count,
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
