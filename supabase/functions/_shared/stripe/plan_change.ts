/**
 * The Stripe side of a plan change, never called inside a transaction: reading the
 * subscription's item, previewing the proration, the upgrade (the item's price
 * replaced, the proration invoiced now, the change pending until that invoice is paid)
 * and the downgrade (a subscription schedule whose second phase bills the new price
 * from the period's end). Every write carries an idempotency key derived from the
 * change's, so a retried call is the same request. Stripe's answers are parsed.
 *
 * @module
 */
import { z } from "zod";
import type { Term } from "../orders/catalog.ts";
import type { Stripe } from "./client.ts";

const UNIX = z.number().int().min(0).max(253_402_300_799);

const Subscription = z.object({
  id: z.string().min(1),
  customer: z.union([z.string(), z.object({ id: z.string() }).loose()]),
  status: z.string(),
  schedule: z.union([z.string(), z.object({ id: z.string() }).loose()])
    .nullish(),
  pending_update: z.object({ expires_at: UNIX }).loose().nullish(),
  latest_invoice: z.union([z.string(), z.object({ id: z.string() }).loose()])
    .nullish(),
  items: z.object({
    data: z.array(
      z.object({
        id: z.string().min(1),
        current_period_start: UNIX,
        current_period_end: UNIX,
        price: z.object({ id: z.string().min(1) }).loose(),
      }).loose(),
    ).min(1),
  }).loose(),
}).loose();

function idOf(
  value: string | { id: string } | null | undefined,
): string | null {
  if (value == null) return null;
  return typeof value === "string" ? value : value.id;
}

/** The subscription as a plan change needs it. */
export interface SubscriptionItem {
  subscriptionId: string;
  customerId: string;
  status: string;
  itemId: string;
  priceId: string;
  periodStart: Date;
  periodEnd: Date;
  scheduleId: string | null;
  /** A change waits for its invoice (until then the old price stays). */
  pendingUntil: Date | null;
  latestInvoiceId: string | null;
}

function itemOf(answer: unknown): SubscriptionItem {
  const sub = Subscription.parse(answer);
  const item = sub.items.data[0];
  return {
    subscriptionId: sub.id,
    customerId: idOf(sub.customer)!,
    status: sub.status,
    itemId: item.id,
    priceId: item.price.id,
    periodStart: new Date(item.current_period_start * 1000),
    periodEnd: new Date(item.current_period_end * 1000),
    scheduleId: idOf(sub.schedule),
    pendingUntil: sub.pending_update
      ? new Date(sub.pending_update.expires_at * 1000)
      : null,
    latestInvoiceId: idOf(sub.latest_invoice),
  };
}

/** Reads the subscription's (single) item. */
export async function readSubscriptionItem(
  stripe: Stripe,
  subscriptionId: string,
): Promise<SubscriptionItem> {
  return itemOf(await stripe.subscriptions.retrieve(subscriptionId));
}

const Preview = z.object({
  currency: z.string(),
  lines: z.object({
    data: z.array(
      z.object({
        amount: z.number().int(),
        parent: z.object({
          subscription_item_details: z.object({ proration: z.boolean() })
            .loose()
            .nullish(),
        }).loose().nullish(),
      }).loose(),
    ),
  }).loose(),
}).loose();

/**
 * What switching the item to `priceId` at `prorationDate` charges now: the sum of the
 * preview's proration lines (the credit for unused time on the old price and the
 * charge for the rest of the period on the new one), never below zero.
 */
export async function previewProration(
  stripe: Stripe,
  change: {
    item: SubscriptionItem;
    priceId: string;
    prorationDate: Date;
  },
): Promise<{ amountDue: number; currency: string }> {
  const preview = Preview.parse(
    await stripe.invoices.createPreview({
      customer: change.item.customerId,
      subscription: change.item.subscriptionId,
      subscription_details: {
        items: [{ id: change.item.itemId, price: change.priceId }],
        proration_behavior: "always_invoice",
        proration_date: Math.floor(change.prorationDate.getTime() / 1000),
      },
    }),
  );
  const prorated = preview.lines.data.filter((line) =>
    line.parent?.subscription_item_details?.proration === true
  );
  const amount = prorated.reduce((sum, line) => sum + line.amount, 0);
  return { amountDue: Math.max(0, amount), currency: preview.currency };
}

/** What an upgrade's call left: applied now, or waiting for its invoice. */
export interface UpgradeResult {
  applied: boolean;
  subscription: SubscriptionItem;
}

/**
 * Moves the item to the new price now, invoicing the proration at once; with
 * `pending_if_incomplete` the change waits in `pending_update` until that invoice is
 * paid (a declined card leaves the old price, and the pending change expires).
 */
export async function upgradeSubscription(
  stripe: Stripe,
  change: {
    subscriptionId: string;
    itemId: string;
    priceId: string;
    prorationDate: Date;
    idempotencyKey: string;
  },
): Promise<UpgradeResult> {
  const answer = await stripe.subscriptions.update(change.subscriptionId, {
    items: [{ id: change.itemId, price: change.priceId }],
    proration_behavior: "always_invoice",
    proration_date: Math.floor(change.prorationDate.getTime() / 1000),
    payment_behavior: "pending_if_incomplete",
  }, { idempotencyKey: change.idempotencyKey });
  const subscription = itemOf(answer);
  return {
    applied: subscription.priceId === change.priceId &&
      subscription.pendingUntil === null,
    subscription,
  };
}

/** The length of one billing period of a term, as a schedule phase's duration. */
function termDuration(
  term: Term,
): { interval: "month" | "year"; interval_count: number } {
  switch (term) {
    case "monthly":
      return { interval: "month", interval_count: 1 };
    case "quarterly":
      return { interval: "month", interval_count: 3 };
    case "yearly":
      return { interval: "year", interval_count: 1 };
  }
}

const Schedule = z.object({
  id: z.string().min(1),
  status: z.string(),
  phases: z.array(z.object({ start_date: UNIX, end_date: UNIX }).loose()),
}).loose();

/**
 * Starts a schedule from the subscription (or takes the one `scheduleId` names) and
 * gives it two phases: the current price until the period's end, then the new price,
 * released afterwards so the subscription carries on alone. Answers the schedule id.
 */
export async function scheduleDowngrade(
  stripe: Stripe,
  change: {
    subscriptionId: string;
    scheduleId: string | null;
    fromPriceId: string;
    toPriceId: string;
    term: Term;
    idempotencyKey: string;
    /** Called with the schedule's id as soon as it exists (to record it). */
    onSchedule?: (scheduleId: string) => Promise<void>;
  },
): Promise<string> {
  let schedule = change.scheduleId
    ? Schedule.parse(
      await stripe.subscriptionSchedules.retrieve(change.scheduleId),
    )
    : Schedule.parse(
      await stripe.subscriptionSchedules.create(
        { from_subscription: change.subscriptionId },
        { idempotencyKey: `${change.idempotencyKey}-schedule` },
      ),
    );
  if (!change.scheduleId) await change.onSchedule?.(schedule.id);
  const current = schedule.phases[0];
  schedule = Schedule.parse(
    await stripe.subscriptionSchedules.update(schedule.id, {
      end_behavior: "release",
      phases: [
        {
          items: [{ price: change.fromPriceId, quantity: 1 }],
          start_date: current.start_date,
          end_date: current.end_date,
          proration_behavior: "none",
        },
        {
          items: [{ price: change.toPriceId, quantity: 1 }],
          duration: termDuration(change.term),
          proration_behavior: "none",
        },
      ],
    }, { idempotencyKey: `${change.idempotencyKey}-phases` }),
  );
  return schedule.id;
}

/**
 * Releases a schedule, so the subscription keeps its current price; one already
 * released, canceled or completed is fine (the change is off either way).
 */
export async function releaseSchedule(
  stripe: Stripe,
  scheduleId: string,
): Promise<void> {
  const schedule = Schedule.parse(
    await stripe.subscriptionSchedules.retrieve(scheduleId),
  );
  if (schedule.status !== "active" && schedule.status !== "not_started") return;
  await stripe.subscriptionSchedules.release(scheduleId);
}
