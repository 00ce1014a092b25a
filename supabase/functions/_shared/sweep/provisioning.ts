/**
 * Sweep job: provisioning retries that are due (failed orders at their next attempt,
 * paid orders whose hand-off failed, claims of workers that died).
 *
 * @module
 */
import { ordersDueForProvisioning } from "../orders/orders.ts";
import { provisionOrder, STALE_CLAIM_MS } from "../panel/provision.ts";
import { DomainError } from "../platform/errors.ts";
import { ACTOR, clock, type Count, STEP_LIMIT, type SweepDeps } from "./job.ts";

/** Retries provisioning of the orders that are due, through `provisionOrder`. */
export async function retryProvisioning(
  deps: SweepDeps,
  count: Count,
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
