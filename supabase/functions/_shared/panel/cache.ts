/**
 * The panel facts provisioning needs, kept in the database (`panel_eggs`,
 * `panel_allocations`) so a purchase costs one panel call: the egg of a plan and a free
 * allocation on the chosen node. The sweep refreshes them; provisioning falls back to
 * the panel when an entry is missing or the panel says it is stale.
 *
 * @module
 */
import { z } from "zod";
import type { Sql, Tx } from "../platform/db.ts";
import type { PanelAllocation, PanelClient, PanelEgg } from "./client.ts";

const EggVariables = z.array(z.object({
  env_variable: z.string(),
  default_value: z.string().nullable(),
  rules: z.string(),
}));

/** Stores an egg as the panel defines it. */
async function storeEgg(sql: Sql, nestId: number, egg: PanelEgg) {
  await sql`
    insert into public.panel_eggs (nest_id, egg_id, name, docker_image, startup, variables,
      fetched_at)
    values (${nestId}, ${egg.id}, ${egg.name}, ${egg.dockerImage}, ${egg.startup},
      ${sql.json(egg.variables)}, now())
    on conflict (nest_id, egg_id) do update set name = excluded.name,
      docker_image = excluded.docker_image, startup = excluded.startup,
      variables = excluded.variables, fetched_at = excluded.fetched_at`;
}

/**
 * The egg from the database, or from the panel (then stored) when it is not there or
 * `fresh` asks for the panel's current definition. Null when the panel lacks it.
 */
export async function eggFor(
  sql: Sql,
  panel: PanelClient,
  ids: { nestId: number; eggId: number },
  options: { fresh?: boolean } = {},
): Promise<PanelEgg | null> {
  if (!options.fresh) {
    const [row] = await sql<
      {
        name: string;
        docker_image: string;
        startup: string;
        variables: unknown;
      }[]
    >`
      select name, docker_image, startup, variables from public.panel_eggs
      where nest_id = ${ids.nestId} and egg_id = ${ids.eggId}`;
    if (row) {
      return {
        id: ids.eggId,
        name: row.name,
        dockerImage: row.docker_image,
        startup: row.startup,
        variables: EggVariables.parse(row.variables),
      };
    }
  }
  const egg = await panel.getEgg(ids.nestId, ids.eggId);
  if (egg) await storeEgg(sql, ids.nestId, egg);
  return egg;
}

/** Reads every egg the active plans use from the panel; answers how many were read. */
export async function refreshEggs(
  sql: Sql,
  panel: PanelClient,
): Promise<number> {
  const eggs = await sql<{ nest_id: number; egg_id: number }[]>`
    select distinct ptero_nest_id as nest_id, ptero_egg_id as egg_id
    from public.plans where active`;
  for (const egg of eggs) {
    await eggFor(sql, panel, { nestId: egg.nest_id, eggId: egg.egg_id }, {
      fresh: true,
    });
  }
  return eggs.length;
}

/**
 * Reads a node's free allocations from the panel: new ones are stored, ones the panel
 * now uses are marked assigned, and ones it freed (a deleted server's) are released
 * unless an order is creating its server on them right now.
 */
export async function refreshAllocations(
  sql: Sql,
  panel: PanelClient,
  panelNodeId: number,
): Promise<void> {
  const free: PanelAllocation[] = await panel.freeAllocations(panelNodeId);
  const ids = free.map((a) => a.id);
  await sql.begin(async (tx) => {
    await lockNodeAllocations(tx, panelNodeId);
    for (const allocation of free) {
      await tx`
        insert into public.panel_allocations (id, panel_node_id, ip, port, assigned, fetched_at)
        values (${allocation.id}, ${panelNodeId}, ${allocation.ip}, ${allocation.port}, false,
          now())
        on conflict (id) do update set assigned = false, fetched_at = now(),
          order_id = case
            when exists (select 1 from public.orders o
              where o.id = panel_allocations.order_id and o.status = 'provisioning')
            then panel_allocations.order_id end`;
    }
    await tx`
      update public.panel_allocations set assigned = true, fetched_at = now()
      where panel_node_id = ${panelNodeId} and not (id = any(${ids}::int[]))`;
  });
}

/**
 * Serialises writes to one node's allocations (takes and refreshes) for the rest of
 * the transaction, so they never deadlock on each other's rows.
 */
async function lockNodeAllocations(tx: Tx, panelNodeId: number): Promise<void> {
  await tx`select pg_advisory_xact_lock(hashtext('panel_allocations'), ${panelNodeId})`;
}

/**
 * Takes a free allocation of the node for the order (skipping rows another order is
 * taking), or null when the database knows of none.
 */
export async function takeAllocation(
  sql: Sql,
  panelNodeId: number,
  orderId: string,
): Promise<number | null> {
  return await sql.begin(async (tx) => {
    await lockNodeAllocations(tx, panelNodeId);
    // An order holds one allocation at a time: a retry gives back the one before.
    await tx`update public.panel_allocations set order_id = null where order_id = ${orderId}`;
    const [taken] = await tx<{ id: number }[]>`
      update public.panel_allocations set order_id = ${orderId}
      where id = (
        select id from public.panel_allocations
        where panel_node_id = ${panelNodeId} and not assigned and order_id is null
        order by id limit 1
        for update skip locked)
      returning id`;
    return taken?.id ?? null;
  });
}

/** The panel says the allocation is in use: never offer it again until a refresh. */
export async function markAllocationUsed(sql: Sql, id: number): Promise<void> {
  await sql`
    update public.panel_allocations set assigned = true, order_id = null where id = ${id}`;
}

/** Gives back the allocation an order took without making a server on it. */
export async function releaseAllocation(
  db: Sql | Tx,
  orderId: string,
): Promise<void> {
  await db`update public.panel_allocations set order_id = null where order_id = ${orderId}`;
}
