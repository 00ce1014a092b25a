/**
 * Decisions about a server's life after payment, as plain functions over an order and
 * what the panel shows: which panel action makes the panel match the order's target,
 * which status the order takes afterwards, what a panel listing says about an order,
 * and what the customer reads. `converge.ts` and `sweep.ts` are the shells around them.
 *
 * @module
 */
import {
  limitsPending,
  type Order,
  type OrderLimits,
  type OrderStatus,
  type PanelState,
} from "./orders.ts";

/** A change the panel is asked for. */
export type PanelAction = "suspend" | "unsuspend" | "delete" | "build";

/** What a panel listing says about one server. */
export interface ServerView {
  /** The panel's `status`: null when installed and running normally. */
  status: string | null;
  suspended: boolean;
}

/** The error message of an order whose server disappeared from the panel. */
export const SERVER_MISSING = "server missing on the panel";

const FAILED_INSTALL = new Set(["install_failed", "reinstall_failed"]);

/** The panel action that makes the panel match the order's target, if any is needed. */
export function panelActionFor(
  order:
    & Pick<
      Order,
      "panel_target" | "pterodactyl_server_id" | "panel_state" | "panel_limits"
    >
    & OrderLimits,
): PanelAction | null {
  if (order.pterodactyl_server_id === null) return null;
  // The build follows the order's limits once the server is in the state its target
  // asks for (a suspension for non-payment comes before an upgrade's new limits).
  const build = limitsPending(order);
  switch (order.panel_target) {
    case "deleted":
      return order.panel_state === "deleted" ? null : "delete";
    case "suspended":
      return build && order.panel_state === "suspended" ? "build" : "suspend";
    case "running":
      return build && order.panel_state !== "suspended" ? "build" : "unsuspend";
  }
}

/** The status an order takes once its server is suspended (null: it keeps its own). */
export function statusWhenSuspended(status: OrderStatus): OrderStatus | null {
  return ["paid", "installing", "active", "error"].includes(status)
    ? "suspended"
    : null;
}

/** The status a server's panel status stands for once it may run. */
export function statusForServer(
  server: ServerView,
): "installing" | "active" | "error" {
  if (server.status === "installing") return "installing";
  if (server.status !== null && FAILED_INSTALL.has(server.status)) {
    return "error";
  }
  return "active";
}

/** What a sweep learned about one order from the panel. */
export interface Observation {
  panel_state: PanelState;
  /** New order status, if it moves. */
  to?: OrderStatus;
  error_message?: string;
  /** The panel no longer matches the target (changed by hand): act again. */
  reconverge?: boolean;
  /** What happened, for the timeline. */
  message: string;
  /** Set when an operator must look: the alert's title. */
  alert?: string;
}

/**
 * What the panel's view of an order's server (null: not on the panel) changes on the
 * order, or null when nothing does.
 */
export function observe(
  order: Pick<
    Order,
    "status" | "panel_target" | "panel_state" | "panel_action_due_at"
  >,
  server: ServerView | null,
): Observation | null {
  if (server === null) {
    if (order.panel_target === "deleted") {
      return order.panel_state === "deleted" ? null : {
        panel_state: "deleted",
        message: "Server is no longer on the panel: deletion done",
      };
    }
    if (order.panel_state === "missing") return null;
    const fails = ["installing", "active", "suspended"].includes(order.status);
    return {
      panel_state: "missing",
      to: fails ? "error" : undefined,
      error_message: fails ? SERVER_MISSING : undefined,
      message: "Server missing on the panel",
      alert: "Server missing on the panel",
    };
  }
  if (server.status === "installing") {
    return order.panel_state === "installing"
      ? null
      : { panel_state: "installing", message: "Server installing" };
  }
  if (FAILED_INSTALL.has(server.status ?? "")) {
    if (order.panel_state === "install_failed") return null;
    const fails = order.status === "installing" || order.status === "active";
    const cause =
      `installation failed on the panel (status "${server.status}")`;
    return {
      panel_state: "install_failed",
      to: fails ? "error" : undefined,
      error_message: fails ? cause : undefined,
      message: `Server ${cause}`,
      alert: "Server installation failed",
    };
  }
  const state: PanelState = server.suspended ? "suspended" : "installed";
  const wantSuspended = order.panel_target === "suspended";
  let to: OrderStatus | undefined;
  if (order.status === "installing" && wantSuspended === server.suspended) {
    to = server.suspended ? "suspended" : "active";
  }
  const reconverge = order.panel_target !== "deleted" &&
    order.panel_action_due_at === null && wantSuspended !== server.suspended;
  if (state === order.panel_state && !to && !reconverge) return null;
  return {
    panel_state: state,
    to,
    reconverge: reconverge || undefined,
    message: to === "active"
      ? "Installation finished"
      : reconverge
      ? `Server is ${
        server.suspended ? "suspended" : "not suspended"
      } on the panel, but should be ${order.panel_target}: acting again`
      : `Server ${state}`,
  };
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The sentence a customer reads about an order (never internal error text). */
export function customerMessage(
  order: Pick<
    Order,
    | "status"
    | "suspend_reason"
    | "suspend_at"
    | "delete_at"
    | "paid_until"
    | "cancel_at_period_end"
    | "gave_up_at"
    | "panel_state"
    | "panel_target"
  >,
): string {
  switch (order.status) {
    case "pending":
      return "Waiting for payment";
    case "paid":
    case "provisioning":
      return "Payment received: your server is being set up";
    case "installing":
      return "Your server is being installed";
    case "active":
      if (order.suspend_at) {
        return `Your last payment failed: update your payment method before ${
          day(order.suspend_at)
        } to keep your server running`;
      }
      if (order.cancel_at_period_end && order.paid_until) {
        return `Your server is running until your subscription ends on ${
          day(order.paid_until)
        }`;
      }
      return "Your server is running";
    case "error":
      return order.gave_up_at
        ? "We could not set up your server; our team has been alerted and will contact you"
        : "Setting up your server hit a problem; we are retrying automatically";
    case "suspended":
      // Lifted or paid: the status moves once the panel confirms the unsuspension.
      if (order.panel_target === "running") {
        return "Your suspension was lifted: your server is resuming";
      }
      switch (order.suspend_reason) {
        case "dispute":
          return "Your server is suspended while a payment dispute is reviewed";
        case "admin":
          return "Your server was suspended by our team; contact support";
        case "canceled":
          return "Your subscription ended: your server is suspended";
        default:
          return "Your server is suspended for non-payment; it resumes as soon as you pay";
      }
    case "canceled":
      if (order.panel_state === "deleted") {
        return "Your subscription ended and the server has been deleted";
      }
      return order.delete_at
        ? `Your subscription ended: your server's files are kept until ${
          day(order.delete_at)
        }`
        : "Your subscription ended";
    case "expired":
      return "Checkout expired";
  }
}

/** The status a lifted suspension returns to: where it was, without a stale claim. */
export function resumedStatus(
  order: {
    statusBeforeSuspension: OrderStatus | null;
    pterodactyl_server_id: number | null;
  },
): OrderStatus {
  switch (order.statusBeforeSuspension) {
    case "active":
    case "installing":
    case "error":
      return order.statusBeforeSuspension;
    case "paid":
    case "provisioning":
      return "paid";
    default:
      return order.pterodactyl_server_id === null ? "paid" : "installing";
  }
}
