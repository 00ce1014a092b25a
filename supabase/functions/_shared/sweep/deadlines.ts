/**
 * Sweep job: deadlines that passed: payment grace (suspend), retention (delete), and the
 * operator's warning the day before a deletion.
 *
 * @module
 */
import {
  changeOrder,
  lockOrdersPastDeadline,
  type Order,
  recordOrderEvent,
} from "../orders/orders.ts";
import { ACTOR, clock, type Count, STEP_LIMIT, type SweepDeps } from "./job.ts";

/** An operator is warned this long before a server is deleted. */
export const DELETION_WARNING_MS = 24 * 3600_000;

/** Acts on the deadlines that passed. */
export async function passDeadlines(
  deps: SweepDeps,
  count: Count,
): Promise<void> {
  const now = clock(deps);
  // Grace over: suspend (for non-payment, unless already suspended for another reason).
  const suspended = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "grace_ended", {
      at: now,
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      const suspend = order.panel_target === "running";
      const message = "Payment grace period ended: suspending the server";
      await changeOrder(tx, order.id, {
        to: suspend && suspendable(order) ? "suspended" : undefined,
        set: {
          suspend_at: null,
          ...(suspend
            ? {
              panel_target: "suspended",
              suspend_reason: "billing",
              panel_action_due_at: now,
              panel_action_attempts: 0,
            }
            : {}),
        },
        actor: ACTOR,
        reason: message,
      });
      if (suspend) {
        await recordOrderEvent(tx, order.id, {
          kind: "note",
          message,
          actor: ACTOR,
        });
      }
    }
    return orders.filter((order) => order.panel_target === "running").length;
  });
  count("deadline.suspended", suspended);

  const deleting = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "retention_ended", {
      at: now,
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      const message = "Retention ended: deleting the server";
      await changeOrder(tx, order.id, {
        set: {
          panel_target: "deleted",
          panel_action_due_at: now,
          panel_action_attempts: 0,
        },
        actor: ACTOR,
        reason: message,
      });
      await recordOrderEvent(tx, order.id, {
        kind: "note",
        message,
        actor: ACTOR,
      });
    }
    return orders.length;
  });
  count("deadline.delete", deleting);

  const warn = await deps.sql.begin(async (tx) => {
    const orders = await lockOrdersPastDeadline(tx, "deletion_soon", {
      at: new Date(now.getTime() + DELETION_WARNING_MS),
      limit: STEP_LIMIT,
    });
    for (const order of orders) {
      await changeOrder(tx, order.id, {
        set: { delete_warned_at: now },
        actor: ACTOR,
      });
    }
    return orders;
  });
  // Alerts go out after the commit, so a second sweep never sends them again.
  for (const order of warn) {
    await deps.alert({
      title: "Server deletion tomorrow",
      message:
        `The server of a cancelled subscription will be deleted at ${order.delete_at?.toISOString()}`,
      orderId: order.id,
      fields: {
        server_id: order.pterodactyl_server_id,
        delete_at: order.delete_at?.toISOString() ?? null,
      },
    });
  }
  count("deadline.warned", warn.length);
}

function suspendable(order: Order): boolean {
  return ["paid", "installing", "active", "error"].includes(order.status);
}
