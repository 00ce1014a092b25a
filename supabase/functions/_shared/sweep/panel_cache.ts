/**
 * Sweep job: eggs and node allocations read again from the panel when the stored ones
 * are older than ten minutes.
 *
 * @module
 */
import { refreshAllocations, refreshEggs } from "../panel/cache.ts";
import { PanelError } from "../panel/client.ts";
import { DomainError } from "../platform/errors.ts";
import { clock, type Count, type SweepDeps } from "./job.ts";

/** How old the stored eggs and allocations may get before a sweep reads them again. */
export const PANEL_CACHE_TTL_MS = 10 * 60_000;

/** Reads eggs and each node's allocations again when the stored ones are old. */
export async function refreshPanelCache(
  deps: SweepDeps,
  count: Count,
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
