/**
 * Load with chaos: 200 purchases in two waves, several at once, with checkouts paid,
 * failed and abandoned, events delivered twice or in reverse order, then renewals
 * (some failing, some delivered again), cancellations and refunds, while the panel
 * fails one call in ten (and loses one create's answer in five) and Postgres restarts
 * once. Between the waves the sweep passes the retention of the first wave's
 * cancellations, so their servers are deleted and their room sold again. At the end
 * the invariants (`_invariants.ts`) hold and the counts add up: orders to checkouts,
 * servers to orders, events to what Stripe made, attempts to the timeline.
 *
 * Seeded: the seed is printed, CHAOS_SEED replays a run's choices (the interleaving of
 * concurrent requests still varies).
 */
import assert from "node:assert/strict";
import { isHandledEventType } from "../supabase/functions/_shared/manifest.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import {
  type OwnPostgres,
  ownPostgres,
  type Random,
  seededRandom,
  sweepUntilSettled,
} from "./_chaos.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import { assertInvariants } from "./_invariants.ts";
import {
  completeCheckout,
  redeliver,
  sandboxEvents,
  subscriptionControl,
} from "./_purchase.ts";
import { startTestStack, type TestStack, type TestUser } from "./_stack.ts";
import { type Sweeper, sweeper } from "./_sweep.ts";

const PURCHASES = 200;
const WAVES = 2;
/** Requests in flight at once (two cores run everything). */
const WIDTH = 6;
/** The shop's retention of a cancelled order's server, as the sweeper is given it. */
const RETENTION_SECONDS = 1_209_600;

const OUTCOMES = [
  "paid",
  "paid",
  "paid",
  "paid",
  "paid",
  "paid",
  "async_succeeded",
  "async_failed",
  "expired",
] as const;
const DELIVERIES = ["normal", "normal", "duplicate", "reverse"] as const;
const PLANS = ["among-us-1gb", "among-us-1gb", "mc-java-2gb"] as const;
const REGIONS = ["us-east", "eu-west"] as const;
const LIFECYCLE = [
  "none",
  "none",
  "renew",
  "renew",
  "renew_twice",
  "renew_failed",
  "cancel",
  "cancel",
  "refund",
] as const;

/** One purchase, decided from the seed before anything runs. */
interface Plan {
  /** Its place in the run, which names its server (a double submit would reuse one). */
  index: number;
  user: number;
  plan_id: string;
  region: string;
  outcome: typeof OUTCOMES[number];
  delivery: typeof DELIVERIES[number];
}

/** What the purchases came to. */
interface Tally {
  /** Checkouts opened, by the outcome the customer chose. */
  opened: Record<string, number>;
  /** Refusals before payment, by error code. */
  refused: Record<string, number>;
  /** Event ids the sandbox controls reported. */
  eventIds: string[];
  /** Orders of the checkouts opened in the current wave. */
  orderIds: string[];
}

/** Runs `fn` over `items`, `width` at a time. */
async function inPool<T>(
  items: T[],
  width: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

function plans(random: Random, users: number): Plan[] {
  return Array.from({ length: PURCHASES }, (_, index) => ({
    index,
    user: random.below(users),
    plan_id: random.pick(PLANS),
    region: random.pick(REGIONS),
    outcome: random.pick(OUTCOMES),
    delivery: random.pick(DELIVERIES),
  }));
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** One customer's purchase: a refusal is counted, anything else must work. */
async function buy(
  stack: TestStack,
  user: TestUser,
  plan: Plan,
  tally: Tally,
): Promise<void> {
  const res = await invoke(user.client, "create-checkout-session", {
    plan_id: plan.plan_id,
    term: "monthly",
    region: plan.region,
    server_name: `Load ${plan.index}`,
  });
  if (res.status !== 200) {
    // Sold out: refused before payment, with its code.
    assert.equal(res.status, 409, JSON.stringify(res.body));
    bump(tally.refused, String(errorCode(res.body)));
    return;
  }
  bump(tally.opened, plan.outcome);
  tally.orderIds.push(String(res.body.order_id));
  tally.eventIds.push(
    ...await completeCheckout(
      stack,
      String(res.body.session_id),
      plan.outcome,
      plan.delivery,
    ),
  );
}

/** A paid order's life after checkout, as the seed chose it. */
async function live(
  stack: TestStack,
  subscriptionId: string,
  action: typeof LIFECYCLE[number],
  tally: Tally,
): Promise<void> {
  const control = async (name: string, body = {}) => {
    const done = await subscriptionControl(stack, subscriptionId, name, body);
    tally.eventIds.push(...done.event_ids);
    return done.event_ids;
  };
  switch (action) {
    case "none":
      return;
    case "renew":
      // Delivered again at once: applied once.
      for (const id of await control("renew")) {
        await redeliver(stack, id, { copies: 2, concurrent: true });
      }
      return;
    case "renew_twice": {
      const first = await control("renew");
      await control("renew");
      // The first renewal's events arrive again after the second's: out of order.
      for (const id of first) await redeliver(stack, id);
      return;
    }
    case "renew_failed":
      await control("renew", { outcome: "failed" });
      return;
    case "cancel": {
      const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
      await stripe.subscriptions.cancel(subscriptionId);
      return;
    }
    case "refund":
      await control("refund");
      return;
  }
}

/** The panel failing one call in ten, and losing the answer of one create in five. */
function panelChaos(stack: TestStack): void {
  stack.panel.addFault({
    method: "POST",
    path: "/api/application/servers",
    loseResponse: true,
    every: 5,
  });
  stack.panel.addFault({ path: /^\/api\//, status: 500, every: 10 });
}

async function wave(
  stack: TestStack,
  context: {
    users: TestUser[];
    plans: Plan[];
    tally: Tally;
    random: Random;
    /** Restarted once, halfway through the wave. */
    restart?: OwnPostgres;
  },
): Promise<void> {
  context.tally.orderIds = [];
  const buyAll = (plans: Plan[]) =>
    inPool(plans, WIDTH, async (plan) => {
      await buy(stack, context.users[plan.user], plan, context.tally);
    });
  const half = Math.floor(context.plans.length / 2);
  await buyAll(context.plans.slice(0, half));
  if (context.restart) {
    // Between two bursts, every pooled connection idle: a restart while a write is
    // queued crashes the process in postgres.js 3.4.9 (porsager/postgres#1154).
    await stack.idle();
    await context.restart.restart({ downMs: 1_000 });
  }
  await buyAll(context.plans.slice(half));
  await stack.idle();
  const paid = await stack.sql<{ subscription: string }[]>`
    select stripe_subscription_id as subscription from public.orders
    where id in ${stack.sql(context.tally.orderIds)}
      and status in ('installing', 'active') and stripe_subscription_id is not null
    order by created_at`;
  const actions = paid.map((o) => ({
    subscription: o.subscription,
    action: context.random.pick(LIFECYCLE),
  }));
  await inPool(actions, WIDTH, async ({ subscription, action }) => {
    await live(stack, subscription, action, context.tally);
  });
  await stack.idle();
}

/** The `n` a counting query answers. */
async function countOf(query: Promise<{ n: number }[]>): Promise<number> {
  const [row] = await query;
  return row.n;
}

Deno.test("load with chaos: 200 purchases, the same invariants, and the counts add up", async () => {
  const random = seededRandom("load_chaos_test");
  const pg = await ownPostgres();
  const stack = await startTestStack({ database: pg });
  stack.panel.configure({ rateLimitPerMinute: 100_000 });
  const sweep: Sweeper = sweeper(stack, {
    lifecycle: {
      paymentGraceSeconds: 259_200,
      retentionSeconds: RETENTION_SECONDS,
    },
  });
  try {
    const users: TestUser[] = [];
    for (let i = 0; i < 40; i++) users.push(await stack.user());
    const all = plans(random, users.length);
    const tally: Tally = {
      opened: {},
      refused: {},
      eventIds: [],
      orderIds: [],
    };
    const size = PURCHASES / WAVES;
    panelChaos(stack);
    await wave(stack, {
      users,
      plans: all.slice(0, size),
      tally,
      random,
      restart: pg,
    });
    // The first wave's cancellations pass their retention: servers deleted, room freed.
    await sweepUntilSettled(stack, sweep);
    sweep.clock.advance(RETENTION_SECONDS * 1000 + 3_600_000);
    await sweepUntilSettled(stack, sweep);
    await wave(stack, { users, plans: all.slice(size), tally, random });

    stack.panel.clearFaults();
    await sweepUntilSettled(stack, sweep, 12);
    const counts = await assertInvariants(stack);
    console.log(
      `load_chaos_test: ${
        JSON.stringify({ ...tally, eventIds: undefined, orderIds: undefined })
      } ${JSON.stringify(counts)}`,
    );

    // Every purchase was opened or refused before payment.
    const opened = Object.values(tally.opened).reduce((a, b) => a + b, 0);
    const refused = Object.values(tally.refused).reduce((a, b) => a + b, 0);
    assert.equal(opened + refused, PURCHASES);
    assert.ok(opened >= PURCHASES / 2, `only ${opened} checkouts opened`);
    assert.equal(
      await countOf(stack.sql`select count(*)::int as n from public.orders`),
      opened,
    );
    // Each paid checkout is one paid order; each other one closed unpaid.
    const paidCheckouts = (tally.opened.paid ?? 0) +
      (tally.opened.async_succeeded ?? 0);
    assert.equal(
      await countOf(
        stack.sql`select count(*)::int as n from public.orders
          where paid_at is not null`,
      ),
      paidCheckouts,
    );
    assert.equal(
      await countOf(
        stack.sql`select count(*)::int as n from public.orders
          where paid_at is null and status <> 'expired'`,
      ),
      0,
    );
    // Servers on the panel are the paid orders' that are not deleted.
    assert.equal(
      counts.servers,
      await countOf(
        stack.sql`select count(*)::int as n from public.orders
          where pterodactyl_server_id is not null
            and panel_state is distinct from 'deleted'`,
      ),
    );
    assert.ok(
      await countOf(
        stack.sql`select count(*)::int as n from public.orders
          where panel_state = 'deleted'`,
      ) > 0,
      "the first wave's cancelled servers were deleted",
    );
    // Every event a control reported is Stripe's; the handled ones are recorded.
    const types = new Map(
      (await sandboxEvents(stack)).map((e) => [e.id, e.type]),
    );
    const reported = [...new Set(tally.eventIds)];
    assert.ok(reported.every((id) => types.has(id)));
    const handled = reported.filter((id) =>
      isHandledEventType(types.get(id) ?? "")
    );
    assert.equal(
      await countOf(
        stack.sql`select count(*)::int as n from public.stripe_events_log
          where event_id in ${stack.sql(handled)}`,
      ),
      handled.length,
    );
    assert.equal(
      await countOf(
        stack.sql`select count(*)::int as n from public.stripe_events_log`,
      ),
      counts.events,
    );
    assert.ok(counts.duplicateDeliveries > 0, "duplicates were delivered");
    // Each provisioning attempt is on its order's timeline.
    assert.equal(
      await countOf(
        stack.sql`select count(*)::int as n from public.order_events
          where kind = 'provision_attempt' and message ~ '^Attempt \\d+ started$'`,
      ),
      await countOf(
        stack.sql`select coalesce(sum(attempt_count), 0)::int as n
          from public.orders`,
      ),
    );
  } finally {
    await sweep.close();
    await stack.close();
  }
});
