/**
 * The sweep job `plan_changes`: a change whose Stripe call never answered is repeated
 * with its idempotency key, and an upgrade waiting for its payment past the pending
 * update's expiry is read back from Stripe (its event may be lost): applied when the
 * subscription bills the new price, expired (its room let go) when it does not.
 *
 * @module
 */
import { carryOnPlanChanges } from "../plan_change/flow.ts";
import { ACTOR, type Count, STEP_LIMIT, type SweepDeps } from "./job.ts";

/** Runs the job. */
export async function followPlanChanges(
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
): Promise<void> {
  const done = await carryOnPlanChanges(deps, {
    actor: ACTOR,
    limit: STEP_LIMIT,
    more,
  });
  count("plan_change.carried", done.carried);
  count("plan_change.settled", done.settled);
}
