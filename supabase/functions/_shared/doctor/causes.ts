/**
 * The doctor's decisions, as pure functions over gathered facts: one check per link of
 * an order's chain (order, checkout, Stripe's events, subscription, provisioning, panel
 * account, server, what the panel should show), plus the shop's own health, and ONE
 * cause: the first broken link, with a stable code, a sentence and the exact fix.
 *
 * @module
 */
import type { OrderFacts, TimelineRow } from "./facts.ts";
import { disagreements } from "../orders/reconcile.ts";
import { SERVER_MISSING } from "../orders/lifecycle.ts";
import { limitsPending } from "../orders/orders.ts";

/** Every cause the doctor names. */
export const CAUSE_CODES = [
  "ok",
  "awaiting_payment",
  "checkout_expired",
  "webhook_not_delivered",
  "payment_mismatch",
  "provisioning_retrying",
  "provisioning_gave_up",
  "no_capacity",
  "panel_unreachable",
  "stripe_unreachable",
  "panel_rejected",
  "egg_missing",
  "panel_account_problem",
  "installing",
  "install_failed",
  "server_missing",
  "payment_grace",
  "suspended_billing",
  "suspended_dispute",
  "suspended_admin",
  "canceled_pending_deletion",
  "deleted",
  "state_drift",
  "plan_change_pending",
  "plan_change_failing",
  "plan_change_failed",
  "build_failing",
] as const;
/** A cause's code. */
export type CauseCode = typeof CAUSE_CODES[number];

/** Causes that need no one: the order is healthy or on its way by itself. */
export const NEEDS_NO_ONE: ReadonlySet<CauseCode> = new Set<CauseCode>([
  "ok",
  "installing",
  "awaiting_payment",
  "payment_grace",
  "canceled_pending_deletion",
  "deleted",
  "plan_change_pending",
]);

/** Why an order is where it is, and what to do. */
export interface Cause {
  code: CauseCode;
  message: string;
  fix: string;
}

/** One link of the chain: true (fine), false (broken), null (unknown). */
export interface Check {
  id: string;
  ok: boolean | null;
  detail: string;
}

/** The doctor's verdict on one order. */
export interface Diagnosis {
  cause: Cause;
  checks: Check[];
  /** Sides that could not be read (`stripe`, `panel`). */
  unreachable: string[];
}

/** Stripe may still be delivering an event this young. */
export const DELIVERY_GRACE_MS = 60_000;
/** The sweep runs every minute; older than this it is not running. */
export const SWEEP_STALE_MS = 5 * 60_000;
/** paid_until behind Stripe's period end by more than this: a renewal was missed. */
const PAID_UNTIL_SLACK_MS = 60 * 60_000;

function iso(date: Date | null | undefined): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, "Z") : "never";
}

function ago(now: Date, date: Date): string {
  const s = Math.round((now.getTime() - date.getTime()) / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** The curl that calls a service function with a body, as the README shows it. */
export function serviceCurl(
  supabaseUrl: string,
  fn: string,
  body: Record<string, unknown>,
): string {
  return `curl -s -X POST '${
    supabaseUrl.replace(/\/$/, "")
  }/functions/v1/${fn}' -H "apikey: $SECRET_KEY" -H 'Content-Type: application/json' -d '${
    JSON.stringify(body)
  }'`;
}

/** When the order entered its status (from the timeline; else its last update). */
export function statusSince(
  facts: Pick<OrderFacts, "order" | "timeline">,
): Date {
  const rows = facts.timeline.filter((r) =>
    r.kind === "status" && r.to_status === facts.order.status
  );
  return rows.at(-1)?.at ?? facts.order.updated_at;
}

/** The last provisioning attempt's detail (panel status, code, field, rule). */
function lastAttempt(timeline: TimelineRow[]): Record<string, unknown> {
  return timeline.filter((r) =>
    r.kind === "provision_attempt" && r.detail.error
  )
    .at(-1)?.detail ?? {};
}

function cause(code: CauseCode, message: string, fix: string): Cause {
  return { code, message, fix };
}

/** What a provisioning error says, as a cause (the order is `error`). */
export function provisioningCause(facts: OrderFacts): Cause {
  const { order } = facts;
  const error = order.error_message ?? "no error recorded";
  const provision = serviceCurl(facts.supabaseUrl, "servers-provision", {
    order_id: order.id,
  });
  const next = order.next_attempt_at;
  const retry = next
    ? `the sweep retries at ${iso(next)}; to retry now: ${provision}`
    : `then restart it: ${provision}`;
  const attempt = lastAttempt(facts.timeline);
  if (order.gave_up_at) {
    return cause(
      "provisioning_gave_up",
      `Provisioning gave up after ${order.attempt_count} attempts at ${
        iso(order.gave_up_at)
      }: ${error}`,
      `Fix what the error names, then restart provisioning: ${provision}`,
    );
  }
  if (error === SERVER_MISSING) {
    return cause(
      "server_missing",
      `The server (${
        order.pterodactyl_server_identifier ?? "none"
      }) is gone from the panel; the order is in error`,
      `Provision a new server for the order: ${provision}`,
    );
  }
  if (error.startsWith("installation failed on the panel")) {
    return installFailed(facts, order.pterodactyl_server_identifier);
  }
  if (
    /^(Choosing a node|Finding a free allocation) failed/.test(error) ||
    /No nodes satisfying/i.test(error)
  ) {
    return cause(
      "no_capacity",
      `No room for the server in region "${order.region}": ${error}`,
      `Add a node or room in region "${order.region}" (public.ptero_nodes: enabled, memory_mb, disk_mb; ports on the panel node); ${retry}`,
    );
  }
  if (/^Reading the egg failed/.test(error)) {
    return cause(
      "egg_missing",
      `The plan's egg is missing on the panel: ${error}`,
      `Fix plan "${order.plan_id}" (update public.plans set ptero_nest_id = …, ptero_egg_id = … where id = '${order.plan_id}') or restore the egg on the panel; ${retry}`,
    );
  }
  if (/^(Ensuring|Relinking) the customer's panel account failed/.test(error)) {
    return cause(
      "panel_account_problem",
      `The customer's panel account could not be used: ${error}`,
      `Check the panel user with external id ${order.user_id} (panel admin → Users; a same-email account links only for a confirmed email); ${retry}`,
    );
  }
  const panelStatus = attempt.panel_status;
  if (
    panelStatus === 0 || /could not be reached|no answer within/.test(error)
  ) {
    return cause(
      "panel_unreachable",
      `The panel did not answer: ${error}`,
      `Check that the panel at PTERODACTYL_URL answers (curl -s -H "Authorization: Bearer $PTERODACTYL_API_KEY" -H 'Accept: application/json' '${facts.panelUrl}/api/application/nodes'); ${retry}`,
    );
  }
  const fieldMatch = /panel answered 422/.exec(error);
  if (panelStatus === 422 || fieldMatch) {
    const field = typeof attempt.panel_field === "string"
      ? attempt.panel_field
      : "unknown field";
    const rule = typeof attempt.panel_rule === "string"
      ? attempt.panel_rule
      : "unknown rule";
    return cause(
      "panel_rejected",
      `The panel refused the server: field "${field}", rule "${rule}": ${error}`,
      `Correct what plan "${order.plan_id}" sends for "${field}" (public.plans: environment, limits) or the egg's rule on the panel; ${retry}`,
    );
  }
  return cause(
    "provisioning_retrying",
    `Attempt ${order.attempt_count} failed: ${error}${
      next ? `; next attempt at ${iso(next)}` : ""
    }`,
    next ? `None needed: ${retry}` : `Retry: ${provision}`,
  );
}

function installFailed(facts: OrderFacts, identifier: string | null): Cause {
  return cause(
    "install_failed",
    `The server ${identifier ?? ""} failed to install on the panel`.replace(
      "  ",
      " ",
    ),
    `Panel admin → Servers → ${
      identifier ?? "the server"
    } → Manage → Reinstall; then refresh the order: ${
      serviceCurl(facts.supabaseUrl, "sync-server-status", {
        order_id: facts.order.id,
      })
    }`,
  );
}

function sessionCheck(facts: OrderFacts): Check {
  const { order, stripe } = facts;
  const id = "checkout_session";
  if (!order.stripe_checkout_session_id) {
    return { id, ok: null, detail: "the order has no checkout session" };
  }
  if (stripe.error) return { id, ok: null, detail: stripe.error };
  if (!stripe.session) {
    return {
      id,
      ok: false,
      detail:
        `Stripe does not know ${order.stripe_checkout_session_id} (another account or key?)`,
    };
  }
  const s = stripe.session;
  const problems = metadataProblems(facts);
  return {
    id,
    ok: problems.length === 0,
    detail: `${s.id}: status ${s.status}, payment ${s.payment_status}; ${
      problems.length === 0
        ? "metadata matches the order"
        : `metadata disagrees: ${problems.join("; ")}`
    }`,
  };
}

/**
 * Where the session's metadata (or subscription) disagrees with the order: the same
 * reading the webhook and the sweep apply before they accept a payment.
 */
export function metadataProblems(facts: OrderFacts): string[] {
  const s = facts.stripe.session;
  if (!s) return [];
  return disagreements(facts.order, {
    metadata: s.metadata,
    customer: null,
    subscription: s.subscription,
  });
}

/** Events Stripe has that the shop never recorded and that are no longer in flight. */
export function lostEvents(facts: OrderFacts) {
  return (facts.stripe.events ?? []).filter((e) =>
    e.outcome === null &&
    (e.pending_webhooks === 0 ||
      facts.now.getTime() - e.created.getTime() > DELIVERY_GRACE_MS)
  );
}

function eventsCheck(facts: OrderFacts): Check {
  const id = "stripe_events";
  if (facts.stripe.error) return { id, ok: null, detail: facts.stripe.error };
  const events = facts.stripe.events;
  if (!events) {
    return { id, ok: null, detail: "no session or subscription to look for" };
  }
  if (events.length === 0) {
    return { id, ok: true, detail: "Stripe has no events for this order yet" };
  }
  const lost = new Set(lostEvents(facts).map((e) => e.id));
  const bad = events.filter((e) =>
    lost.has(e.id) || e.outcome === "mismatch" || e.outcome === "failed"
  );
  const words = events.map((e) =>
    `${e.type} ${e.id} ${
      e.outcome === null
        ? `NOT recorded (pending_webhooks ${e.pending_webhooks})`
        : `recorded (${e.outcome})`
    }`
  );
  return { id, ok: bad.length === 0, detail: words.join("; ") };
}

/** Where the subscription in Stripe and the order disagree (empty: they agree). */
export function subscriptionDrift(facts: OrderFacts): string[] {
  const sub = facts.stripe.subscription;
  const { order } = facts;
  if (!sub) return [];
  const problems: string[] = [];
  const ended = ["canceled", "incomplete_expired"].includes(sub.status);
  const live = ["active", "trialing", "past_due"].includes(sub.status);
  if (ended && !["canceled", "expired"].includes(order.status)) {
    problems.push(
      `Stripe says the subscription is ${sub.status}, the database says the order is ${order.status}`,
    );
  }
  if (live && order.status === "canceled") {
    problems.push(
      `Stripe says the subscription is ${sub.status}, the database says the order is canceled`,
    );
  }
  if (
    ["unpaid", "paused"].includes(sub.status) &&
    !["suspended", "canceled"].includes(order.status)
  ) {
    problems.push(
      `Stripe says the subscription is ${sub.status} (dunning over), the order is ${order.status}`,
    );
  }
  if (
    sub.status === "past_due" && order.suspend_at === null &&
    !["suspended", "canceled"].includes(order.status)
  ) {
    problems.push(
      "Stripe says the subscription is past_due, the order has no payment grace (suspend_at)",
    );
  }
  if (
    sub.status === "active" && sub.current_period_end && order.paid_until &&
    sub.current_period_end.getTime() - order.paid_until.getTime() >
      PAID_UNTIL_SLACK_MS
  ) {
    problems.push(
      `Stripe's period ends ${
        iso(sub.current_period_end)
      }, the order is paid until ${iso(order.paid_until)}`,
    );
  }
  return problems;
}

function subscriptionCheck(facts: OrderFacts): Check {
  const id = "subscription";
  if (facts.stripe.error) return { id, ok: null, detail: facts.stripe.error };
  const sub = facts.stripe.subscription;
  if (sub === undefined) {
    return { id, ok: null, detail: "no subscription yet" };
  }
  if (sub === null) {
    return {
      id,
      ok: false,
      detail: `Stripe does not know ${facts.order.stripe_subscription_id}`,
    };
  }
  const drift = subscriptionDrift(facts);
  const invoice = sub.latest_invoice;
  const base = `${sub.id}: ${sub.status}${
    sub.cancel_at_period_end || sub.cancel_at ? ", cancels at period end" : ""
  }, period ends ${iso(sub.current_period_end)}; latest invoice ${
    invoice
      ? `${invoice.id} ${invoice.status} (${
        (invoice.amount_due / 100).toFixed(2)
      } ${invoice.currency.toUpperCase()})`
      : "none"
  }`;
  return {
    id,
    ok: drift.length === 0,
    detail: drift.length ? `${base}; ${drift.join("; ")}` : base,
  };
}

function provisioningCheck(facts: OrderFacts): Check {
  const { order } = facts;
  const id = "provisioning";
  if (["pending", "expired"].includes(order.status)) {
    return { id, ok: null, detail: "not paid: nothing to provision" };
  }
  if (order.status === "error") {
    return {
      id,
      ok: false,
      detail: `attempt ${order.attempt_count}: ${order.error_message}; ${
        order.gave_up_at
          ? `gave up at ${iso(order.gave_up_at)}`
          : `next attempt ${iso(order.next_attempt_at)}`
      }`,
    };
  }
  if (order.pterodactyl_server_id !== null) {
    return {
      id,
      ok: true,
      detail:
        `server ${order.pterodactyl_server_id} (${order.pterodactyl_server_identifier}) on node ${order.node_id} after ${order.attempt_count} attempt(s)`,
    };
  }
  return {
    id,
    ok: order.status === "canceled" ? null : null,
    detail:
      `no server yet (status ${order.status}, ${order.attempt_count} attempt(s))`,
  };
}

function accountCheck(facts: OrderFacts): Check {
  const id = "panel_account";
  const { panel } = facts;
  if (panel.error) return { id, ok: null, detail: panel.error };
  if (panel.user === undefined) {
    return {
      id,
      ok: null,
      detail: panel.linkedUserId === null
        ? "not asked (not paid); no panel account linked yet"
        : `not asked (not paid); linked panel user ${panel.linkedUserId}`,
    };
  }
  if (panel.user === null) {
    return {
      id,
      ok: panel.linkedUserId === null && facts.order.status === "paid"
        ? null
        : false,
      detail:
        `the panel has no user with external id ${facts.order.user_id}; linked in the database: ${
          panel.linkedUserId ?? "none"
        }`,
    };
  }
  const same = panel.linkedUserId === panel.user.id;
  return {
    id,
    ok: same,
    detail: `panel user ${panel.user.id} (${panel.user.email})${
      same ? ", linked" : `; the database links ${panel.linkedUserId ?? "none"}`
    }`,
  };
}

/** Where the panel's server disagrees with the order (empty: it agrees). */
export function panelDrift(facts: OrderFacts): string[] {
  const { order, panel, now } = facts;
  const server = panel.server;
  if (!server) return [];
  const problems: string[] = [];
  if (
    order.pterodactyl_server_id !== null &&
    order.pterodactyl_server_id !== server.id
  ) {
    problems.push(
      `the order records server ${order.pterodactyl_server_id}, the panel has ${server.id} for it`,
    );
  }
  // A panel action that is due (or was just done) is the sweep's, not drift.
  const acting = order.panel_action_due_at !== null &&
    now.getTime() - order.panel_action_due_at.getTime() < SWEEP_STALE_MS;
  const installing = server.status === "installing";
  if (
    !acting &&
    (server.memory !== order.memory_mb || server.disk !== order.disk_mb)
  ) {
    problems.push(
      `limits ${server.memory} MB memory / ${server.disk} MB disk, the order is entitled to ${order.memory_mb} / ${order.disk_mb}`,
    );
  }
  if (!acting && !installing) {
    if (order.panel_target === "running" && server.suspended) {
      problems.push(
        "the order wants the server running, the panel has it suspended",
      );
    }
    if (order.panel_target === "suspended" && !server.suspended) {
      problems.push(
        `the order wants the server suspended (${order.suspend_reason}), the panel has it running`,
      );
    }
    if (order.panel_target === "deleted") {
      problems.push(
        "the order wants the server deleted, the panel still has it",
      );
    }
  }
  return problems;
}

function serverCheck(facts: OrderFacts): Check {
  const id = "panel_server";
  const { panel, order } = facts;
  if (panel.error) return { id, ok: null, detail: panel.error };
  if (panel.server === undefined) {
    return { id, ok: null, detail: "not asked (not paid)" };
  }
  if (panel.server === null) {
    const expected = order.pterodactyl_server_id !== null &&
      order.panel_target !== "deleted";
    return {
      id,
      ok: expected ? false : null,
      detail: `the panel has no server with external id ${order.id}${
        order.pterodactyl_server_id !== null
          ? ` (the order records ${order.pterodactyl_server_id})`
          : ""
      }`,
    };
  }
  const s = panel.server;
  const failed = ["install_failed", "reinstall_failed"].includes(
    s.status ?? "",
  );
  return {
    id,
    ok: !failed,
    detail: `server ${s.id} (${s.identifier}) on panel node ${s.node}: status ${
      s.status ?? "installed"
    }, ${
      s.suspended ? "suspended" : "not suspended"
    }, ${s.memory} MB memory / ${s.disk} MB disk`,
  };
}

function targetCheck(facts: OrderFacts): Check {
  const id = "panel_target";
  const { order, panel } = facts;
  const wants = `target ${order.panel_target}${
    order.suspend_reason ? ` (${order.suspend_reason})` : ""
  }, last seen ${order.panel_state ?? "nothing"}${
    order.panel_action_due_at
      ? `, action due ${iso(order.panel_action_due_at)}`
      : ""
  }`;
  if (panel.error || panel.server === undefined) {
    return { id, ok: null, detail: wants };
  }
  const drift = panelDrift(facts);
  return {
    id,
    ok: drift.length === 0,
    detail: drift.length ? `${wants}; ${drift.join("; ")}` : wants,
  };
}

/** The shop's own health: undelivered events and the sweep. */
export function shopChecks(
  facts: Pick<OrderFacts, "shop" | "now">,
): Check[] {
  const { shop, now } = facts;
  let delivery: Check;
  if (!shop.undelivered.supported) {
    delivery = {
      id: "shop_webhook_delivery",
      ok: null,
      detail: `unknown: ${shop.undelivered.reason}`,
    };
  } else {
    const old = shop.undelivered.events.filter((e) =>
      now.getTime() - e.created.getTime() > DELIVERY_GRACE_MS
    );
    const oldest = old.at(-1);
    delivery = {
      id: "shop_webhook_delivery",
      ok: old.length === 0,
      detail: oldest
        ? `Stripe holds ${old.length}${
          old.length === 100 ? "+" : ""
        } undelivered event(s), oldest ${oldest.id} ${oldest.type} at ${
          iso(oldest.created)
        }: check the webhook endpoint in the Stripe dashboard`
        : "Stripe holds no undelivered events",
    };
  }
  const last = shop.lastSweepAt;
  const sweep: Check = {
    id: "shop_sweep",
    ok: last !== null && now.getTime() - last.getTime() <= SWEEP_STALE_MS,
    detail: last === null
      ? "the sweep has never run: schedule sync-server-status (see README, the sweep)"
      : `the sweep last ran ${ago(now, last)} (${iso(last)})${
        now.getTime() - last.getTime() > SWEEP_STALE_MS
          ? ": it is not running; check the cron job"
          : ""
      }`,
  };
  return [delivery, sweep];
}

/** The first broken link of the chain, as a cause. */
export function decideCause(facts: OrderFacts): Cause {
  const { order, stripe, panel, now } = facts;
  const url = facts.supabaseUrl;
  const sync = serviceCurl(url, "sync-server-status", { order_id: order.id });
  const session = stripe.session;
  const lost = lostEvents(facts);
  const mismatched = (stripe.events ?? []).filter((e) =>
    e.outcome === "mismatch"
  );
  const meta = metadataProblems(facts);
  const paidInStripe = session?.status === "complete" &&
    ["paid", "no_payment_required"].includes(session.payment_status);

  // Before payment: only Stripe can say where the checkout is.
  if (order.status === "pending" || order.status === "expired") {
    if (stripe.error) {
      return cause(
        "stripe_unreachable",
        stripe.error,
        "Check STRIPE_SECRET_KEY and that api.stripe.com answers; then run the doctor again",
      );
    }
    if (session && paidInStripe && (meta.length || mismatched.length)) {
      return paymentMismatch(facts, meta, mismatched.map((e) => e.id));
    }
    if (session && paidInStripe) {
      const event = lost.find((e) => e.type.startsWith("checkout.session"));
      const endpoint = `${url.replace(/\/$/, "")}/functions/v1/stripe-webhook`;
      return cause(
        order.status === "expired" ? "state_drift" : "webhook_not_delivered",
        order.status === "expired"
          ? `Stripe says checkout ${session.id} was paid, the database says the order expired`
          : `The customer paid (${session.id}: ${session.payment_status}) but the shop never received ${
            event
              ? `${event.type} ${event.id} (pending_webhooks ${event.pending_webhooks})`
              : "the payment event"
          }`,
        `Stripe dashboard → Developers → Webhooks: the endpoint ${endpoint} must be enabled, subscribed to checkout.session.completed, signed with STRIPE_WEBHOOK_SECRET; the sweep applies ${
          event?.id ?? "the missed event"
        } from Stripe's event list at its next run (no resend needed), and any paid checkout it finds after ${
          iso(order.checkout_expires_at)
        }`,
      );
    }
    if (order.status === "expired" || session?.status === "expired") {
      return cause(
        "checkout_expired",
        `The checkout ${order.stripe_checkout_session_id ?? ""} expired${
          session?.expires_at ? ` at ${iso(session.expires_at)}` : ""
        } without payment${
          order.status === "pending" ? "; the sweep closes the order" : ""
        }`.replace("checkout  expired", "checkout expired"),
        "None needed for the shop: the customer can buy again",
      );
    }
    return cause(
      "awaiting_payment",
      session?.status === "complete"
        ? `Checkout ${session.id} is complete, the payment is ${session.payment_status} (a bank payment in progress)`
        : `Checkout ${
          order.stripe_checkout_session_id ?? "(not opened)"
        } is open until ${
          iso(session?.expires_at ?? order.checkout_expires_at)
        }: the customer has not paid`,
      "None: waiting for the customer",
    );
  }

  if (session && (meta.length || mismatched.length)) {
    return paymentMismatch(facts, meta, mismatched.map((e) => e.id));
  }
  const subDrift = subscriptionDrift(facts);
  if (subDrift.length) {
    const missing = lost.filter((e) => !e.type.startsWith("checkout"));
    return cause(
      "state_drift",
      `${subDrift.join("; ")}${
        missing.length
          ? ` (never recorded: ${
            missing.map((e) => `${e.type} ${e.id}`).join(", ")
          })`
          : ""
      }`,
      `Resend ${
        missing.map((e) => e.id).join(", ") ||
        "the subscription's latest event"
      } from the Stripe dashboard (Developers → Events), so the webhook applies it; then check: npm run doctor -- ${order.id}`,
    );
  }

  // Provisioning.
  if (order.status === "error") return provisioningCause(facts);
  if (order.status === "paid" || order.status === "provisioning") {
    const since = statusSince(facts);
    const stale = now.getTime() - since.getTime() > 5 * 60_000;
    if (panel.user === null && panel.linkedUserId !== null) {
      return cause(
        "panel_account_problem",
        `The customer's linked panel user ${panel.linkedUserId} is not on the panel`,
        `Provisioning re-creates it: ${
          serviceCurl(url, "servers-provision", { order_id: order.id })
        }`,
      );
    }
    return stale
      ? cause(
        "provisioning_retrying",
        `Paid ${
          ago(now, since)
        } and provisioning has not finished (status ${order.status}); the sweep takes it again`,
        `None needed: the sweep retries; to retry now: ${
          serviceCurl(url, "servers-provision", { order_id: order.id })
        }`,
      )
      : cause(
        "installing",
        `Payment received ${ago(now, since)}: the server is being created`,
        "None: provisioning is under way",
      );
  }

  // After provisioning: the panel.
  if (panel.error && order.panel_state !== "deleted") {
    return cause(
      "panel_unreachable",
      panel.error,
      `Check that the panel at PTERODACTYL_URL answers (curl -s -H "Authorization: Bearer $PTERODACTYL_API_KEY" -H 'Accept: application/json' '${facts.panelUrl}/api/application/nodes'); then run the doctor again`,
    );
  }
  const server = panel.server;
  if (order.status === "canceled") {
    if (server === null || order.panel_state === "deleted") {
      return cause(
        "deleted",
        `The subscription ended and the server was deleted${
          order.delete_at ? ` (due ${iso(order.delete_at)})` : ""
        }`,
        "Nothing to do",
      );
    }
  }
  if (server === null && order.pterodactyl_server_id !== null) {
    return cause(
      "server_missing",
      `The order records server ${order.pterodactyl_server_id} (${order.pterodactyl_server_identifier}), the panel has no server for it`,
      `Let the sweep mark it (${
        serviceCurl(url, "sync-server-status", {})
      }), then provision a new one: ${
        serviceCurl(url, "servers-provision", { order_id: order.id })
      }`,
    );
  }
  if (
    server &&
    ["install_failed", "reinstall_failed"].includes(server.status ?? "")
  ) {
    return installFailed(facts, server.identifier);
  }
  const build = buildCause(facts);
  if (build) return build;
  const drift = panelDrift(facts);
  if (drift.length) {
    return cause(
      "state_drift",
      `The database and the panel disagree: ${drift.join("; ")}`,
      `Make the panel follow the order: ${sync}`,
    );
  }

  const change = planChangeCause(facts);
  if (change) return change;

  // The lifecycle: where the order is, and whether anyone must act.
  switch (order.status) {
    case "installing":
      return cause(
        "installing",
        `Server ${order.pterodactyl_server_identifier} is installing${
          server?.status === null
            ? " (done on the panel; the sweep marks it active)"
            : ""
        } since ${iso(statusSince(facts))}`,
        "None: the sweep marks it active when the panel finishes",
      );
    case "suspended":
      switch (order.suspend_reason) {
        case "dispute":
          return cause(
            "suspended_dispute",
            `Suspended since ${
              iso(statusSince(facts))
            } because the customer disputed a payment`,
            `Resolve the dispute in the Stripe dashboard (Payments → Disputes); then lift the suspension: ${
              serviceCurl(url, "sync-server-status", {
                order_id: order.id,
                lift_suspension: true,
              })
            }`,
          );
        case "admin":
          return cause(
            "suspended_admin",
            `Suspended by an admin since ${iso(statusSince(facts))}`,
            `Lift it when resolved: ${
              serviceCurl(url, "sync-server-status", {
                order_id: order.id,
                lift_suspension: true,
              })
            }`,
          );
        default: {
          const invoice = stripe.subscription?.latest_invoice;
          return cause(
            "suspended_billing",
            `Suspended for non-payment since ${iso(statusSince(facts))}${
              invoice ? `; invoice ${invoice.id} is ${invoice.status}` : ""
            }`,
            `The customer pays ${
              invoice ? `invoice ${invoice.id}` : "the open invoice"
            } (Stripe dashboard → Invoices → send the payment link); the suspension lifts by itself`,
          );
        }
      }
    case "canceled":
      return cause(
        "canceled_pending_deletion",
        `The subscription ended; the server is suspended and will be deleted at ${
          iso(order.delete_at)
        }`,
        "None: the sweep deletes it then",
      );
    default:
      if (order.suspend_at) {
        return cause(
          "payment_grace",
          `A payment failed; the server runs until ${
            iso(order.suspend_at)
          }, then is suspended unless paid`,
          "None: Stripe retries the payment; the customer can pay the open invoice",
        );
      }
      return cause(
        "ok",
        `Server ${order.pterodactyl_server_identifier} is ${
          server?.suspended ? "suspended" : "running"
        } on panel node ${server?.node}; paid until ${iso(order.paid_until)}`,
        "Nothing to do",
      );
  }
}

/**
 * A server whose build has not followed its order's limits (a plan change) while the
 * panel keeps refusing: the last refusal, and what ends it.
 */
function buildCause(facts: OrderFacts): Cause | null {
  const { order, timeline } = facts;
  if (!limitsPending(order) || order.panel_action_attempts === 0) return null;
  const last = [...timeline].reverse().find((row) =>
    row.kind === "panel" && /^Panel build failed/.test(row.message)
  );
  const disk = last !== undefined && /MB of disk, more than/.test(last.message);
  return cause(
    "build_failing",
    `The server's build has not followed the order's limits (${order.memory_mb} MB memory, ${order.disk_mb} MB disk) after ${order.panel_action_attempts} tries${
      last ? `: ${last.message}` : ""
    }; next try ${iso(order.panel_action_due_at)}`,
    disk
      ? `The customer removes files until the server fits the smaller disk (the sweep retries by itself), or an operator changes the plan back: npm run doctor -- ${order.id} shows the disk in use`
      : `Check the panel's build endpoint for server ${order.pterodactyl_server_id}; the sweep retries, or now: ${
        serviceCurl(facts.supabaseUrl, "sync-server-status", {
          order_id: order.id,
        })
      }`,
  );
}

/** A plan change on its way, stuck, or refused. */
function planChangeCause(facts: OrderFacts): Cause | null {
  const change = facts.planChange;
  if (!change) return null;
  const what = `${change.kind} ${change.from_plan_id} → ${change.to_plan_id}`;
  switch (change.status) {
    case "requested":
      return change.attempts > 0
        ? cause(
          "plan_change_failing",
          `The ${what} could not be carried out in Stripe after ${change.attempts} tries: ${change.error_message}; next try ${
            iso(change.next_attempt_at)
          }`,
          "Check STRIPE_SECRET_KEY and Stripe's status; the sweep repeats the same request (idempotency key " +
            `${change.idempotency_key}) by itself`,
        )
        : null;
    case "awaiting_payment":
      return cause(
        "plan_change_pending",
        `The ${what} waits for its invoice ${
          change.stripe_invoice_id ?? ""
        } to be paid until ${
          iso(change.expires_at)
        }; ${change.reserve_memory_mb} MB memory and ${change.reserve_disk_mb} MB disk are held on the node`,
        "None: the customer pays (updates their card in the billing portal), or the change expires and its room is released",
      );
    case "scheduled":
      return cause(
        "plan_change_pending",
        `The ${what} is scheduled for ${
          iso(change.effective_at)
        } (schedule ${change.stripe_schedule_id})`,
        "None: the renewal bills the new price and the server's build follows",
      );
    case "failed":
      return facts.now.getTime() - change.updated_at.getTime() <
          7 * 86_400_000
        ? cause(
          "plan_change_failed",
          `The ${what} failed: ${change.error_message}`,
          "Read the refusal in the Stripe dashboard (Developers → Logs); nothing was applied, the customer can ask again",
        )
        : null;
    default:
      return null;
  }
}

function paymentMismatch(
  facts: OrderFacts,
  meta: string[],
  events: string[],
): Cause {
  return cause(
    "payment_mismatch",
    `The payment does not match the order: ${
      [
        ...meta,
        ...(events.length
          ? [`the webhook recorded ${events.join(", ")} as a mismatch`]
          : []),
      ].join("; ")
    }`,
    `Compare checkout ${facts.stripe.session?.id} (Stripe dashboard → Payments) with order ${facts.order.id}; the shop never provisions a mismatch: refund it in Stripe or correct the order by hand`,
  );
}

/** The whole verdict on one order: its checks and its one cause. */
export function diagnose(facts: OrderFacts): Diagnosis {
  const { order } = facts;
  const checks: Check[] = [
    {
      id: "order",
      ok: true,
      detail: `${order.status} since ${
        iso(statusSince(facts))
      }, ${order.plan_id} in ${order.region}, customer ${
        order.email ?? order.user_id
      }, ${facts.timeline.length} timeline rows${
        order.error_message ? `; last error: ${order.error_message}` : ""
      }`,
    },
    sessionCheck(facts),
    eventsCheck(facts),
    subscriptionCheck(facts),
    provisioningCheck(facts),
    accountCheck(facts),
    serverCheck(facts),
    targetCheck(facts),
    ...shopChecks(facts),
  ];
  const unreachable = [
    ...(facts.stripe.error ? ["stripe"] : []),
    ...(facts.panel.error ? ["panel"] : []),
  ];
  return { cause: decideCause(facts), checks, unreachable };
}
