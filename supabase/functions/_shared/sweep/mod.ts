/**
 * One sweep over every order after payment, within a time budget: a short list of
 * named jobs, one module each, run in this order. Every write takes its row under a
 * lock or a lease in a short transaction and no job calls Stripe or the panel inside
 * one, so sweeps running at once never act twice on one order.
 *
 * @module
 */
import { convergeDue } from "../panel/converge.ts";
import { watchCapacity } from "./capacity.ts";
import { cancelDueSubscriptions } from "../stripe/subscription_cancel.ts";
import { settleCheckouts } from "./checkouts.ts";
import { passDeadlines } from "./deadlines.ts";
import { followPlanChanges } from "./plan_changes.ts";
import { recoverEvents } from "./events.ts";
import { ACTOR, clock, type SweepDeps, type SweepJobRun } from "./job.ts";
import { refreshPanelCache } from "./panel_cache.ts";
import { retryProvisioning } from "./provisioning.ts";
import { observeServers } from "./servers.ts";
import { followLapsedSubscriptions } from "./subscriptions.ts";

export { CAPACITY_ALERT_PLANS, CAPACITY_STATE_KEY } from "./capacity.ts";
export { CHECKOUT_SETTLE_MS } from "./checkouts.ts";
export { DELETION_WARNING_MS } from "./deadlines.ts";
export {
  DELIVERY_GRACE_SECONDS,
  EVENTS_CURSOR_KEY,
  EVENTS_OVERLAP_SECONDS,
  FIRST_LOOKBACK_SECONDS,
} from "./events.ts";
export { LAPSE_MS, SUBSCRIPTION_RECHECK_MS } from "./subscriptions.ts";
export type { SweepDeps } from "./job.ts";
export { PANEL_CACHE_TTL_MS } from "./panel_cache.ts";
export {
  INSTALL_CHECKS_PER_SWEEP,
  LIST_PAGE_SIZE,
  LIST_PAGES_PER_SWEEP,
  SERVERS_CURSOR_KEY,
} from "./servers.ts";

/** A named job and what it may call outside the database. */
export interface SweepJob {
  name: string;
  calls: readonly ("stripe" | "panel")[];
  run: SweepJobRun;
}

/** The sweep's jobs, in the order they run. */
export const SWEEP_JOBS: readonly SweepJob[] = [
  // Always runs first: provisioning below reads what it stores.
  { name: "panel_cache", calls: ["panel"], run: refreshPanelCache },
  // Events the webhook never got, through its own path: a paid order is provisioned
  // and a changed target converged later in this same sweep.
  { name: "events", calls: ["stripe"], run: recoverEvents },
  // Before provisioning: a paid checkout whose webhook was lost is provisioned this run.
  { name: "checkouts", calls: ["stripe"], run: settleCheckouts },
  { name: "provisioning", calls: ["panel"], run: retryProvisioning },
  { name: "deadlines", calls: [], run: passDeadlines },
  // The second net: a paid-until long passed with no renewal is asked of Stripe.
  {
    name: "subscriptions",
    calls: ["stripe"],
    run: followLapsedSubscriptions,
  },
  { name: "cancellations", calls: ["stripe"], run: cancelDueSubscriptions },
  // Before panel_actions: an upgrade applied here has its build changed this run.
  { name: "plan_changes", calls: ["stripe"], run: followPlanChanges },
  { name: "servers", calls: ["panel"], run: observeServers },
  {
    name: "panel_actions",
    calls: ["panel"],
    run: async (deps, count, more) => {
      const actions = await convergeDue(deps, { actor: ACTOR, more });
      for (const outcome of actions) count(`action.${outcome}`);
    },
  },
  // Last: room left once this sweep's placements and deletions are in.
  { name: "capacity", calls: [], run: watchCapacity },
];

/** What one sweep did. */
export interface SweepSummary {
  /** Orders per outcome, e.g. `provision.installing`, `install.active`, `action.suspended`. */
  outcomes: Record<string, number>;
  panel_calls: number;
  duration_ms: number;
  /** True when the budget ran out with work left (the next sweep goes on). */
  budget_exhausted: boolean;
}

/** Runs one sweep: each job in turn while the budget allows (the first always). */
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
  const jobDeps = { ...deps, log };
  for (const [i, job] of SWEEP_JOBS.entries()) {
    if (i > 0 && !more()) break;
    await job.run(jobDeps, count, more);
  }

  const summary: SweepSummary = {
    outcomes,
    panel_calls: deps.panelCalls?.() ?? 0,
    duration_ms: Math.round(performance.now() - started),
    budget_exhausted: exhausted,
  };
  // The doctor reports a sweep that has not run for a while as a shop problem.
  await deps.sql`
    insert into public.shop_state (key, value, updated_at)
    values ('last_sweep', ${deps.sql.json({ ...summary })}, ${clock(deps)})
    on conflict (key) do update set value = excluded.value,
      updated_at = excluded.updated_at`;
  // A quiet sweep runs every minute: keep it out of the info log.
  if (Object.keys(outcomes).length > 0) log.info("Sweep done", { ...summary });
  else log.debug("Sweep done", { ...summary });
  return summary;
}
