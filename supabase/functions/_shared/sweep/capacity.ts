/**
 * The sweep's capacity watch: alerts once when a region can take fewer than
 * CAPACITY_ALERT_PLANS (default 2) more of its largest plan, so the operator adds a
 * node before customers see "sold out". Room is the database's (`node_capacity`: each
 * enabled node's size less what its orders hold), as placement counts it. Which
 * regions were alerted is kept in `shop_state` (`capacity_alerts`); a region that
 * recovers is dropped from it, so a later drop alerts again.
 *
 * @module
 */
import { type Count, type SweepDeps } from "./job.ts";

/** The default of CAPACITY_ALERT_PLANS. */
export const CAPACITY_ALERT_PLANS = 2;
/** The `shop_state` key of the regions already alerted. */
export const CAPACITY_STATE_KEY = "capacity_alerts";

/** A region low on room for its largest plan. */
export interface LowRegion {
  region: string;
  plan: string;
  room: number;
}

/** Regions that can take fewer than `threshold` more of the largest active plan. */
export function lowRegions(
  regions: readonly string[],
  nodes: readonly {
    region: string;
    free_memory_mb: number;
    free_disk_mb: number;
  }[],
  plans: readonly { id: string; memory_mb: number; disk_mb: number }[],
  threshold: number,
): LowRegion[] {
  const largest =
    [...plans].sort((a, b) =>
      b.memory_mb - a.memory_mb || b.disk_mb - a.disk_mb ||
      a.id.localeCompare(b.id)
    )[0];
  if (!largest || threshold <= 0) return [];
  return regions.map((region) => ({
    region,
    plan: largest.id,
    room: nodes.filter((n) => n.region === region).reduce(
      (sum, n) =>
        sum + Math.max(
          0,
          Math.min(
            Math.floor(n.free_memory_mb / largest.memory_mb),
            Math.floor(n.free_disk_mb / largest.disk_mb),
          ),
        ),
      0,
    ),
  })).filter((r) => r.room < threshold);
}

/** Which low regions to alert now (not alerted before), and the state to keep. */
export function capacityAlertsDue(
  low: readonly LowRegion[],
  alerted: readonly string[],
): { alert: LowRegion[]; keep: string[] } {
  return {
    alert: low.filter((r) => !alerted.includes(r.region)),
    keep: low.map((r) => r.region),
  };
}

/** The sweep job: alerts each region that newly dropped below the threshold. */
export async function watchCapacity(
  deps: SweepDeps,
  count: Count,
): Promise<void> {
  const threshold = deps.capacityAlertPlans ?? CAPACITY_ALERT_PLANS;
  // Decided under the state row's lock, so sweeps running at once alert once.
  const due = await deps.sql.begin(async (tx) => {
    await tx`
      insert into public.shop_state (key, value) values (${CAPACITY_STATE_KEY}, '{"regions": []}')
      on conflict (key) do nothing`;
    const [state] = await tx<{ value: { regions?: string[] } }[]>`
      select value from public.shop_state where key = ${CAPACITY_STATE_KEY} for update`;
    const regions = (await tx<{ id: string }[]>`
      select id from public.regions where active`).map((r) => r.id);
    const nodes = await tx<
      { region: string; free_memory_mb: number; free_disk_mb: number }[]
    >`select region, free_memory_mb, free_disk_mb from public.node_capacity`;
    const plans = await tx<
      { id: string; memory_mb: number; disk_mb: number }[]
    >`
      select id, memory_mb, disk_mb from public.plans where active`;
    const { alert, keep } = capacityAlertsDue(
      lowRegions(regions, nodes, plans, threshold),
      state.value.regions ?? [],
    );
    await tx`
      update public.shop_state set value = ${
      tx.json({ regions: keep })
    }, updated_at = now()
      where key = ${CAPACITY_STATE_KEY}`;
    return alert;
  });
  for (const low of due) {
    await deps.alert({
      title: `Region ${low.region} is nearly full`,
      message:
        `Room for ${low.room} more ${low.plan} (alert below ${threshold}): add a node in the region's panel location and run \`npm run setup\`, before customers see "sold out"`,
      fields: { region: low.region, plan: low.plan, room: low.room },
    });
    count("capacity.alert");
  }
}
