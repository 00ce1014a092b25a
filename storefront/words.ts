/**
 * Customer words: order statuses, error codes, money and dates as a customer reads
 * them. An error is shown by its stable `code`, never by the function's message (which
 * may name internals), and never as a stack trace.
 *
 * @module
 */
import type {
  BILLING_PORTAL_ERROR_CODES,
  CHANGE_PLAN_ERROR_CODES,
  CHECKOUT_ERROR_CODES,
  COMMON_ERROR_CODES,
  OrderStatus,
  PlanChangeStatus,
  PlanChangeView,
} from "../supabase/functions/_shared/contract.ts";

/** Every error code a user-facing function may answer. */
type ErrorCode =
  | typeof COMMON_ERROR_CODES[number]
  | typeof CHECKOUT_ERROR_CODES[number]
  | typeof CHANGE_PLAN_ERROR_CODES[number]
  | typeof BILLING_PORTAL_ERROR_CODES[number];

/** Codes of this storefront's own failures (no function answered). */
type LocalCode = "network" | "unexpected_reply" | "not_deployed";

const ERROR_WORDS: Record<ErrorCode | LocalCode, string> = {
  unauthorized: "Your sign-in has expired. Please sign in again.",
  user_not_found: "Your account no longer exists. Please sign in again.",
  invalid_json: "That request could not be read. Please reload the page.",
  invalid_request: "Some details are not valid. Please check the form.",
  payload_too_large: "That request is too large.",
  method_not_allowed: "That action is not available.",
  forbidden: "You are not allowed to do that.",
  panel_unavailable:
    "The game panel is not answering right now. Please try again in a minute.",
  internal_error:
    "Something went wrong on our side. Please try again in a minute.",
  plan_not_found: "That plan is not sold any more. Please pick another one.",
  plan_inactive: "That plan is not sold any more. Please pick another one.",
  term_not_offered:
    "That billing period is not offered for this plan. Please pick another one.",
  region_unknown: "That region is not available. Please pick another one.",
  region_sold_out:
    "Sorry, this region just sold out for this plan. Please pick another region or plan.",
  too_many_open_checkouts:
    "You have several checkouts open. Finish or close one of them first.",
  checkout_in_progress:
    "Your checkout is still being prepared. Please try again in a moment.",
  stripe_error:
    "The payment service is not answering right now. Nothing was charged; please try again in a minute.",
  order_not_found: "We could not find that server in your account.",
  plan_not_compatible:
    "That plan cannot run this server's game. Please pick a plan for the same game.",
  node_full:
    "The machine your server runs on has no room for that plan right now.",
  disk_in_use:
    "Your server uses more disk than that plan allows. Free some space first.",
  change_in_progress: "A plan change for this server is already under way.",
  order_not_active: "The plan can only be changed while the server is active.",
  same_plan: "Your server already has that plan.",
  payment_failed:
    "The payment for the change failed. Your plan was not changed; please check your card in Manage billing.",
  no_stripe_customer: "There is no billing account for you yet.",
  network:
    "We could not reach the shop. Please check your connection and try again.",
  unexpected_reply:
    "The shop answered something we did not expect. Please reload the page.",
  not_deployed: "That part of the shop is not available yet.",
};

/** The customer's sentence for an error code; unknown codes get a general one. */
export function errorWords(code: string, status: number): string {
  if (code in ERROR_WORDS) return ERROR_WORDS[code as keyof typeof ERROR_WORDS];
  return status >= 500
    ? ERROR_WORDS.internal_error
    : "That did not work. Please check and try again.";
}

const STATUS_WORDS: Record<OrderStatus, string> = {
  pending: "Waiting for payment",
  paid: "Payment received",
  provisioning: "Creating your server",
  installing: "Installing",
  active: "Running",
  error: "Setup problem, retrying",
  suspended: "Suspended",
  canceled: "Canceled",
  expired: "Checkout not completed",
};

/** A status as a short label. */
export function statusWords(status: OrderStatus): string {
  return STATUS_WORDS[status];
}

/** Statuses on the way to a running server: the page refreshes while one shows. */
export const IN_PROGRESS: readonly OrderStatus[] = [
  "pending",
  "paid",
  "provisioning",
  "installing",
];

const MOVING: readonly PlanChangeStatus[] = ["requested", "awaiting_payment"];
const OPEN: readonly PlanChangeStatus[] = [...MOVING, "scheduled"];
const SHOWN: readonly PlanChangeStatus[] = [...OPEN, "failed", "expired"];

/** A plan change still moving: the page refreshes while one shows. */
export function changeInProgress(change: PlanChangeView | null): boolean {
  return change !== null && MOVING.includes(change.status);
}

/** A plan change not yet ended: no other change can start meanwhile. */
export function changeOpen(change: PlanChangeView | null): boolean {
  return change !== null && OPEN.includes(change.status);
}

/** Whether the customer should read about the order's latest plan change. */
export function changeShown(change: PlanChangeView | null): boolean {
  return change !== null && SHOWN.includes(change.status);
}

/** An amount in a currency, e.g. `4.99 USD`. */
export function money(cents: number, currency: string): string {
  return `${(cents / 100).toFixed(2)} ${currency.toUpperCase()}`;
}

/** A date the way the customer's browser writes dates. */
export function day(iso: string): string {
  return new Date(iso).toLocaleDateString(undefined, {
    year: "numeric",
    month: "long",
    day: "numeric",
  });
}

/** Megabytes as GB where whole. */
export function size(mb: number): string {
  return mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

/** Term names. */
export const TERM_WORDS = {
  monthly: "per month",
  quarterly: "per 3 months",
  yearly: "per year",
} as const;
