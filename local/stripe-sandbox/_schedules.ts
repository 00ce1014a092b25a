/**
 * Subscription schedules, for changes at a period's end: made `from_subscription`
 * (one phase: the current items until the period end), updated with `phases`
 * (`items`, `start_date`, `end_date` or `duration`, `proration_behavior`) and
 * `end_behavior`, released or canceled. While attached, `subscription.schedule`
 * names it. At a renewal, the next phase's items take over before the invoice is
 * made; after the last phase, `release` lets the subscription go on and `cancel`
 * ends it.
 *
 * @module
 */
import {
  changePrice,
  endSubscription,
  getSubscription,
  isEnded,
} from "./_billing.ts";
import { invalidRequest, missingParam, noSuch } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import { arrayToObject } from "./_form.ts";
import type {
  Interval,
  SchedulePhase,
  StripeEvent,
  Subscription,
  SubscriptionSchedule,
} from "./_objects.ts";
import { newId, now, periodEnd } from "./_objects.ts";
import {
  expandList,
  mergeMetadata,
  onlyKnown,
  optArray,
  optInteger,
  optMetadata,
  optObject,
  optString,
} from "./_params.ts";
import { prorationBehavior } from "./_prorations.ts";
import type { EventRequest, State } from "./_state.ts";
import { NO_REQUEST, recordEvent } from "./_state.ts";

const END_BEHAVIORS = ["release", "cancel"] as const;

const INTERVALS: readonly Interval[] = ["day", "week", "month", "year"];

/** The schedule an id names, or Stripe's 404. */
export function getSchedule(state: State, id: string): SubscriptionSchedule {
  const schedule = state.store.subscriptionSchedules.get(id);
  if (schedule === undefined) throw noSuch("subscription_schedule", id);
  return schedule;
}

/** `POST /v1/subscription_schedules` with `from_subscription`. */
export function createSchedule(
  state: State,
  params: FormObject,
  request: EventRequest,
): SubscriptionSchedule {
  const subId = optString(params, "from_subscription");
  if (subId === undefined) {
    if (params.customer !== undefined || params.phases !== undefined) {
      throw invalidRequest(
        "The Stripe sandbox makes schedules from_subscription only",
        { param: "from_subscription" },
      );
    }
    throw missingParam("from_subscription");
  }
  const extra = Object.keys(params).find((k) =>
    !["from_subscription", "expand", "metadata"].includes(k)
  );
  if (extra !== undefined) {
    throw invalidRequest(
      `You cannot set \`${extra}\` if \`from_subscription\` is set.`,
      { param: extra },
    );
  }
  const sub = state.store.subscriptions.get(subId);
  if (sub === undefined) {
    throw noSuch("subscription", subId, "from_subscription", 400);
  }
  if (isEnded(sub)) {
    throw invalidRequest(
      `You cannot create a subscription schedule from a canceled subscription: ${sub.id}`,
      { param: "from_subscription" },
    );
  }
  if (sub.schedule !== null) {
    throw invalidRequest(
      `You cannot migrate a subscription that is already attached to a schedule: \`${sub.schedule}\`.`,
      { param: "from_subscription" },
    );
  }
  const start = Math.min(...sub.items.data.map((i) => i.current_period_start));
  const end = Math.max(...sub.items.data.map((i) => i.current_period_end));
  const schedule: SubscriptionSchedule = {
    id: newId("sub_sched"),
    object: "subscription_schedule",
    application: null,
    billing_mode: structuredClone(sub.billing_mode),
    canceled_at: null,
    completed_at: null,
    created: now(),
    current_phase: { start_date: start, end_date: end },
    customer: sub.customer,
    customer_account: null,
    default_settings: {
      application_fee_percent: null,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null },
      billing_cycle_anchor: "automatic",
      billing_thresholds: null,
      collection_method: "charge_automatically",
      default_payment_method: null,
      description: null,
      invoice_settings: {
        account_tax_ids: null,
        custom_fields: null,
        days_until_due: null,
        description: null,
        footer: null,
        issuer: { type: "self" },
      },
      on_behalf_of: null,
      transfer_data: null,
    },
    end_behavior: "release",
    livemode: false,
    metadata: optMetadata(params, "metadata") ?? {},
    phases: [
      phase(
        sub.currency,
        start,
        end,
        "create_prorations",
        sub.items.data.map(
          (i) => ({ price: i.price.id, quantity: i.quantity }),
        ),
      ),
    ],
    released_at: null,
    released_subscription: null,
    status: "active",
    subscription: sub.id,
    test_clock: null,
  };
  state.store.subscriptionSchedules.set(schedule.id, schedule);
  sub.schedule = schedule.id;
  state.webhooks.deliver([
    recordEvent(state, "subscription_schedule.created", schedule, request),
    recordEvent(state, "customer.subscription.updated", sub, request, {
      schedule: null,
    }),
  ], "normal");
  return schedule;
}

function phase(
  currency: string,
  start: number,
  end: number,
  proration: SchedulePhase["proration_behavior"],
  items: { price: string; quantity: number }[],
): SchedulePhase {
  return {
    add_invoice_items: [],
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: null,
    billing_thresholds: null,
    collection_method: null,
    currency,
    default_payment_method: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    end_date: end,
    invoice_settings: null,
    items: items.map((i) => ({
      billing_thresholds: null,
      discounts: [],
      metadata: {},
      price: i.price,
      quantity: i.quantity,
      tax_rates: [],
    })),
    metadata: {},
    on_behalf_of: null,
    proration_behavior: proration,
    start_date: start,
    transfer_data: null,
    trial_end: null,
  };
}

/** `POST /v1/subscription_schedules/{id}`: `phases`, `end_behavior`, `metadata`. */
export function updateSchedule(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): SubscriptionSchedule {
  onlyKnown(params, [
    "phases",
    "end_behavior",
    "metadata",
    "proration_behavior",
    "expand",
  ]);
  const schedule = getSchedule(state, id);
  if (schedule.status !== "active" && schedule.status !== "not_started") {
    throw invalidRequest(
      `You cannot update a subscription schedule that is currently in the \`${schedule.status}\` status. It must be in one of the following statuses: \`not_started\`, \`active\`.`,
    );
  }
  const sub = getSubscription(state, schedule.subscription ?? "");
  const previous: Record<string, unknown> = {};
  const rawPhases = optArray(params, "phases");
  if (rawPhases !== undefined) {
    const phases = parsePhases(state, sub, schedule, rawPhases);
    previous.phases = schedule.phases;
    schedule.phases = phases;
  }
  const endBehavior = optString(params, "end_behavior");
  if (endBehavior !== undefined) {
    if (!(END_BEHAVIORS as readonly string[]).includes(endBehavior)) {
      throw invalidRequest(
        `Invalid end_behavior: the Stripe sandbox supports ${
          END_BEHAVIORS.join(", ")
        }`,
        { param: "end_behavior" },
      );
    }
    if (endBehavior !== schedule.end_behavior) {
      previous.end_behavior = schedule.end_behavior;
      schedule.end_behavior = endBehavior as SubscriptionSchedule[
        "end_behavior"
      ];
    }
  }
  const metadata = optMetadata(params, "metadata");
  if (metadata !== undefined) {
    previous.metadata = schedule.metadata;
    schedule.metadata = mergeMetadata(
      schedule.metadata,
      metadata,
      params.metadata === "",
    );
  }
  if (Object.keys(previous).length > 0) {
    state.webhooks.deliver([
      recordEvent(
        state,
        "subscription_schedule.updated",
        schedule,
        request,
        previous,
      ),
    ], "normal");
  }
  return schedule;
}

function parsePhases(
  state: State,
  sub: Subscription,
  schedule: SubscriptionSchedule,
  raw: unknown[],
): SchedulePhase[] {
  if (raw.length === 0) {
    throw invalidRequest("You must pass at least one phase.", {
      param: "phases",
    });
  }
  const phases: SchedulePhase[] = [];
  let start = schedule.current_phase?.start_date ?? now();
  raw.forEach((value, i) => {
    const param = `phases[${i}]`;
    const entry = Array.isArray(value)
      ? arrayToObject(value)
      : typeof value === "object" && value !== null
      ? value as FormObject
      : undefined;
    if (entry === undefined) throw invalidRequest("Invalid object", { param });
    onlyKnown(entry, [
      "items",
      "start_date",
      "end_date",
      "duration",
      "proration_behavior",
      "metadata",
    ]);
    const startDate = entry.start_date === "now"
      ? now()
      : optInteger(entry, "start_date", `${param}[start_date]`);
    if (i === 0 && startDate !== undefined && startDate !== start) {
      throw invalidRequest(
        "You can not modify the start date of the current phase.",
        { param: `${param}[start_date]` },
      );
    }
    if (startDate !== undefined) start = startDate;
    const endDate = entry.end_date === "now"
      ? now()
      : optInteger(entry, "end_date", `${param}[end_date]`);
    const duration = optObject(entry, "duration", `${param}[duration]`);
    if (endDate !== undefined && duration !== undefined) {
      throw invalidRequest(
        `You may only specify one of these parameters: ${param}[duration], ${param}[end_date].`,
        { param: `${param}[duration]` },
      );
    }
    const items = parsePhaseItems(state, sub, entry, param);
    const firstPrice = state.store.prices.get(items[0].price);
    const end = endDate ??
      durationEnd(start, duration, param) ??
      periodEnd(
        start,
        firstPrice?.recurring?.interval ?? "month",
        firstPrice?.recurring?.interval_count ?? 1,
      );
    if (end <= start) {
      throw invalidRequest(
        `The end_date of phase ${i} must be after its start_date.`,
        { param: `${param}[end_date]` },
      );
    }
    phases.push(
      phase(
        sub.currency,
        start,
        end,
        prorationBehavior(entry, `${param}[proration_behavior]`),
        items,
      ),
    );
    start = end;
  });
  return phases;
}

function durationEnd(
  start: number,
  duration: FormObject | undefined,
  param: string,
): number | undefined {
  if (duration === undefined) return undefined;
  const interval = optString(
    duration,
    "interval",
    `${param}[duration][interval]`,
  );
  if (interval === undefined) {
    throw missingParam(`${param}[duration][interval]`);
  }
  if (!INTERVALS.includes(interval as Interval)) {
    throw invalidRequest(`Invalid ${param}[duration][interval]`, {
      param: `${param}[duration][interval]`,
    });
  }
  const count = optInteger(
    duration,
    "interval_count",
    `${param}[duration][interval_count]`,
  ) ?? 1;
  return periodEnd(start, interval as Interval, count);
}

function parsePhaseItems(
  state: State,
  sub: Subscription,
  entry: FormObject,
  param: string,
): { price: string; quantity: number }[] {
  const raw = optArray(entry, "items", `${param}[items]`);
  if (raw === undefined || raw.length === 0) {
    throw missingParam(`${param}[items]`);
  }
  return raw.map((value, j) => {
    const at = `${param}[items][${j}]`;
    const item = Array.isArray(value)
      ? arrayToObject(value)
      : typeof value === "object" && value !== null
      ? value as FormObject
      : undefined;
    if (item === undefined) {
      throw invalidRequest("Invalid object", { param: at });
    }
    onlyKnown(item, ["price", "quantity", "metadata"]);
    const priceId = optString(item, "price", `${at}[price]`);
    if (priceId === undefined) throw missingParam(`${at}[price]`);
    const price = state.store.prices.get(priceId);
    if (price === undefined) {
      throw noSuch("price", priceId, `${at}[price]`, 400);
    }
    if (price.currency !== sub.currency || price.recurring === null) {
      throw invalidRequest(
        `The price ${price.id} cannot be used in this schedule: it must be a recurring price in ${sub.currency}.`,
        { param: `${at}[price]` },
      );
    }
    return {
      price: price.id,
      quantity: optInteger(item, "quantity", `${at}[quantity]`) ?? 1,
    };
  });
}

/** `POST /v1/subscription_schedules/{id}/release`: the subscription goes on alone. */
export function releaseSchedule(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): SubscriptionSchedule {
  onlyKnown(params, ["preserve_cancel_date", "expand"]);
  const schedule = getSchedule(state, id);
  if (schedule.status !== "active" && schedule.status !== "not_started") {
    throw invalidRequest(
      `You cannot release a subscription schedule that is currently in the \`${schedule.status}\` status. It must be in one of the following statuses: \`not_started\`, \`active\`.`,
    );
  }
  state.webhooks.deliver(release(state, schedule, request), "normal");
  return schedule;
}

function release(
  state: State,
  schedule: SubscriptionSchedule,
  request: EventRequest,
): StripeEvent[] {
  const sub = state.store.subscriptions.get(schedule.subscription ?? "");
  schedule.status = "released";
  schedule.released_at = now();
  schedule.released_subscription = schedule.subscription;
  schedule.subscription = null;
  schedule.current_phase = null;
  const events = [
    recordEvent(state, "subscription_schedule.released", schedule, request),
  ];
  if (sub !== undefined) {
    const previous = sub.schedule;
    sub.schedule = null;
    events.push(
      recordEvent(state, "customer.subscription.updated", sub, request, {
        schedule: previous,
      }),
    );
  }
  return events;
}

/**
 * `POST /v1/subscription_schedules/{id}/cancel`: the schedule and its subscription
 * end now.
 */
export function cancelSchedule(
  state: State,
  id: string,
  params: FormObject,
  request: EventRequest,
): SubscriptionSchedule {
  onlyKnown(params, ["invoice_now", "prorate", "expand"]);
  expandList(params);
  const schedule = getSchedule(state, id);
  if (schedule.status !== "active" && schedule.status !== "not_started") {
    throw invalidRequest(
      `You cannot cancel a subscription schedule that is currently in the \`${schedule.status}\` status. It must be in one of the following statuses: \`not_started\`, \`active\`.`,
    );
  }
  schedule.status = "canceled";
  schedule.canceled_at = now();
  schedule.current_phase = null;
  const events = [
    recordEvent(state, "subscription_schedule.canceled", schedule, request),
  ];
  const sub = state.store.subscriptions.get(schedule.subscription ?? "");
  if (sub !== undefined && !isEnded(sub)) {
    events.push(
      endSubscription(state, sub, "cancellation_requested", request),
    );
  }
  state.webhooks.deliver(events, "normal");
  return schedule;
}

/**
 * At the end of a subscription's period (before the renewal invoice is made): the
 * next phase's items take over (`subscription_schedule.updated`); after the last
 * phase the schedule is released (`end_behavior: release`) or the subscription
 * ends (`cancel`: `ended` true, the caller does not renew).
 */
export function advanceSchedule(
  state: State,
  sub: Subscription,
): { events: StripeEvent[]; ended: boolean } {
  const schedule = state.store.subscriptionSchedules.get(sub.schedule ?? "");
  if (schedule === undefined || schedule.status !== "active") {
    return { events: [], ended: false };
  }
  const boundary = Math.max(...sub.items.data.map((i) => i.current_period_end));
  const next = schedule.phases.find((p) => p.start_date >= boundary);
  if (next !== undefined) {
    const previousPhase = structuredClone(schedule.current_phase);
    schedule.current_phase = {
      start_date: next.start_date,
      end_date: next.end_date,
    };
    next.items.forEach((wanted, i) => {
      const price = state.store.prices.get(wanted.price);
      const item = sub.items.data[i];
      if (price !== undefined && item !== undefined) {
        changePrice(item, price, wanted.quantity);
      }
    });
    return {
      events: [
        recordEvent(
          state,
          "subscription_schedule.updated",
          schedule,
          NO_REQUEST,
          {
            current_phase: previousPhase,
          },
        ),
      ],
      ended: false,
    };
  }
  const last = schedule.phases[schedule.phases.length - 1];
  if (last === undefined || last.end_date > boundary) {
    return { events: [], ended: false };
  }
  if (schedule.end_behavior === "cancel") {
    schedule.status = "completed";
    schedule.completed_at = now();
    schedule.current_phase = null;
    return {
      events: [
        recordEvent(
          state,
          "subscription_schedule.completed",
          schedule,
          NO_REQUEST,
        ),
        endSubscription(state, sub, "cancellation_requested", NO_REQUEST),
      ],
      ended: true,
    };
  }
  return { events: release(state, schedule, NO_REQUEST), ended: false };
}
