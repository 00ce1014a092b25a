/**
 * The fault matrix: one row per fault injected at a step of a purchase or of an
 * order's life (the panel failing, timing out, throttling, losing an answer or down
 * for a while; Stripe down at checkout and during the sweep; Postgres down at
 * checkout and restarted in the middle of provisioning; the worker stopped between
 * the panel's create and the database's record; the webhook endpoint disabled; the
 * panel failing a cancelled order's suspension). After each row the faults are lifted, the sweep runs until nothing is due, and the same invariants
 * (`_invariants.ts`) hold over every order the matrix made so far.
 */
import assert from "node:assert/strict";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import { type OwnPostgres, ownPostgres, sweepUntilSettled } from "./_chaos.ts";
import { errorCode, footprint, type Invocation, invoke } from "./_fixtures.ts";
import { assertInvariants } from "./_invariants.ts";
import { provisioner } from "./_provision.ts";
import {
  alertsOn,
  callsArrive,
  clearStripeFaults,
  completeCheckout,
  openCheckout,
  order,
  purchase,
  serversFor,
  withoutWebhooks,
} from "./_purchase.ts";
import { startTestStack, type TestStack, type TestUser } from "./_stack.ts";
import type { PanelFault } from "../local/panel-sandbox/mod.ts";
import { type Sweeper, sweeper } from "./_sweep.ts";

const SERVERS = "/api/application/servers";
/** What each row buys: small, so the matrix never sells a region out. */
const PLAN = { plan_id: "mc-java-2gb", region: "us-east" };
const isCreate = (call: { method: string; path: string }) =>
  call.method === "POST" && call.path === SERVERS;

/** What a row works with. */
interface Matrix {
  stack: TestStack;
  pg: OwnPostgres;
  sweep: Sweeper;
}

/** One fault: `run` injects it and buys, answering the order; `check` follows up. */
interface Row {
  name: string;
  run(m: Matrix): Promise<string>;
  /** Checks after the sweep settled and the invariants held. */
  settled?(m: Matrix, orderId: string): Promise<void>;
}

/** The order's provisioning attempts as the timeline records them. */
async function attempts(stack: TestStack, orderId: string) {
  return await stack.sql<
    { message: string; detail: Record<string, unknown> }[]
  >`
    select message, detail from public.order_events
    where order_id = ${orderId} and kind = 'provision_attempt' order by id`;
}

/** Asserts the order failed visibly: `error`, a next attempt, an alert. */
async function assertVisibleError(stack: TestStack, orderId: string) {
  const row = await order(stack, orderId);
  assert.equal(row.status, "error", row.error_message);
  assert.ok(row.next_attempt_at, "a next attempt is set");
  assert.ok((await alertsOn(stack, orderId)).length > 0, "an alert was sent");
  return row;
}

/** Asserts the order runs on exactly one server, recorded on it. */
async function assertOneServer(stack: TestStack, orderId: string) {
  const row = await order(stack, orderId);
  assert.ok(["installing", "active"].includes(row.status), row.status);
  const servers = serversFor(stack, orderId);
  assert.equal(servers.length, 1);
  assert.equal(row.pterodactyl_server_id, servers[0].id);
}

/** A fault on the panel's server create (POST /servers), once unless `times` says. */
function failCreate(
  stack: TestStack,
  fault: Omit<PanelFault, "path" | "method">,
): void {
  stack.panel.addFault({ method: "POST", path: SERVERS, times: 1, ...fault });
}

/** A purchase whose first create meets `fault`: a visible error. Answers the order. */
async function failedPurchase(
  stack: TestStack,
  fault: Omit<PanelFault, "path" | "method">,
): Promise<string> {
  failCreate(stack, fault);
  const { orderId } = await purchase(stack, PLAN);
  await assertVisibleError(stack, orderId);
  return orderId;
}

/** A customer's checkout request, whatever it answers. */
function tryCheckout(buyer: TestUser, serverName: string): Promise<Invocation> {
  return invoke(buyer.client, "create-checkout-session", {
    ...PLAN,
    term: "monthly",
    server_name: serverName,
  });
}

/** A row's end: the order on one server, after `attempts` attempts when given. */
function oneServerAfter(attempts?: number): Row["settled"] {
  return async ({ stack }, orderId) => {
    await assertOneServer(stack, orderId);
    if (attempts === undefined) return;
    assert.equal((await order(stack, orderId)).attempt_count, attempts);
  };
}

/** The same customer buys once the fault is gone. Answers the order. */
async function buyAgain(stack: TestStack, buyer: TestUser): Promise<string> {
  const again = await openCheckout(stack, PLAN, buyer);
  await completeCheckout(stack, again.sessionId);
  await stack.idle();
  return again.orderId;
}

const ROWS: Row[] = [
  {
    name: "panel 500 at the create: an alerted error, retried by the sweep",
    run: ({ stack }) => failedPurchase(stack, { status: 500 }),
    settled: oneServerAfter(2),
  },
  {
    name:
      "panel timeout at the sweep's retry: no answer is an error, the next sweep makes it",
    async run({ stack, sweep }) {
      const orderId = await failedPurchase(stack, { status: 502 });
      failCreate(stack, { timeout: true });
      sweep.clock.advance(60_000);
      await sweep.sweep();
      const row = await assertVisibleError(stack, orderId);
      assert.match(row.error_message, /no answer within 1000 ms/);
      return orderId;
    },
    settled: oneServerAfter(3),
  },
  {
    name: "panel 429 with Retry-After: the next attempt waits as long as asked",
    async run({ stack }) {
      const orderId = await failedPurchase(stack, {
        status: 429,
        retryAfterSeconds: 600,
      });
      const row = await order(stack, orderId);
      const [failed] = (await attempts(stack, orderId)).filter((a) =>
        a.detail.panel_status === 429
      );
      assert.ok(failed, "the attempt records the 429");
      const asked = new Date(row.updated_at).getTime() + 590_000;
      assert.ok(
        row.next_attempt_at.getTime() >= asked,
        `next attempt ${row.next_attempt_at.toISOString()} honours Retry-After`,
      );
      return orderId;
    },
    settled: oneServerAfter(),
  },
  {
    name:
      "panel loses the create's answer: the server is found by external id, one attempt",
    async run({ stack }) {
      failCreate(stack, { loseResponse: true });
      const { orderId } = await purchase(stack, PLAN);
      await assertOneServer(stack, orderId);
      return orderId;
    },
    settled: oneServerAfter(1),
  },
  {
    name:
      "panel down for a minute: errors while it is down, provisioned once it is back",
    async run({ stack, sweep }) {
      stack.panel.addFault({ path: /^\/api\//, status: 503 });
      const { orderId } = await purchase(stack, PLAN);
      await assertVisibleError(stack, orderId);
      sweep.clock.advance(60_000);
      await sweep.sweep();
      const row = await assertVisibleError(stack, orderId);
      assert.equal(row.attempt_count, 2);
      return orderId;
    },
    settled: oneServerAfter(),
  },
  {
    name:
      "Stripe down at checkout: 502, the order closed with its cause, nothing charged",
    async run({ stack }) {
      stack.stripe.addFault({ path: /^\/v1\//, status: 500 });
      const buyer = await stack.user();
      const res = await tryCheckout(buyer, "Stripe down");
      assert.equal(res.status, 502, JSON.stringify(res.body));
      assert.equal(errorCode(res.body), "stripe_error");
      const [row] = await stack.sql`select * from public.orders
        where user_id = ${buyer.id}`;
      assert.equal(row.status, "expired");
      assert.ok(row.error_message);
      await clearStripeFaults(stack);
      return await buyAgain(stack, buyer);
    },
    settled: oneServerAfter(),
  },
  {
    name:
      "Stripe down during the sweep, its webhook lost: the next sweep applies the payment",
    async run({ stack, sweep }) {
      const checkout = await openCheckout(stack, PLAN);
      await withoutWebhooks(
        stack,
        () => completeCheckout(stack, checkout.sessionId),
      );
      stack.stripe.addFault({ path: /^\/v1\//, status: 500 });
      sweep.clock.advance(120_000);
      const summary = await sweep.sweep();
      assert.ok(summary.outcomes["events.failed"], JSON.stringify(summary));
      assert.equal((await order(stack, checkout.orderId)).status, "pending");
      return checkout.orderId;
    },
    async settled({ stack }, orderId) {
      await assertOneServer(stack, orderId);
      const [paid] = await stack.sql`select received_via from
        public.stripe_events_log where order_id = ${orderId}
        and type = 'checkout.session.completed'`;
      assert.equal(paid.received_via, "poll");
    },
  },
  {
    name:
      "Postgres down at checkout: 503 temporarily_unavailable, nothing half-made",
    async run({ stack, pg }) {
      const buyer = await stack.user();
      const before = await footprint(stack);
      let refused: Invocation | undefined;
      await pg.restart({
        downMs: 0,
        whileDown: async () => {
          refused = await tryCheckout(buyer, "Database down");
        },
      });
      assert.equal(refused?.status, 503, JSON.stringify(refused?.body));
      assert.equal(errorCode(refused.body), "temporarily_unavailable");
      assert.deepEqual(await footprint(stack), before);
      return await buyAgain(stack, buyer);
    },
    settled: oneServerAfter(),
  },
  {
    name:
      "Postgres restarted in the middle of provisioning: the claim is taken over, the server attached",
    async run({ stack, pg }) {
      const checkout = await openCheckout(stack, PLAN);
      failCreate(stack, { latencyMs: 1_000 });
      const since = stack.panel.calls().length;
      await completeCheckout(stack, checkout.sessionId);
      await callsArrive(stack.panel, since, isCreate);
      await pg.restart({ downMs: 1_500 });
      await stack.idle();
      // The create went through while nothing could record it.
      assert.equal(serversFor(stack, checkout.orderId).length, 1);
      const row = await order(stack, checkout.orderId);
      assert.equal(row.status, "provisioning");
      assert.equal(row.pterodactyl_server_id, null);
      return checkout.orderId;
    },
    settled: oneServerAfter(2),
  },
  {
    name:
      "the worker stopped between the panel's create and the database's record",
    async run({ stack }) {
      const orderId = await failedPurchase(stack, { status: 500 });
      // A retry whose worker dies right after the panel made the server.
      const created = Promise.withResolvers<void>();
      const worker = provisioner(stack, {
        panel: (client) => ({
          ...client,
          async createServer(server) {
            await client.createServer(server);
            created.resolve();
            return await new Promise<never>(() => {});
          },
        }),
      });
      void worker.provision(orderId);
      await created.promise;
      await worker.close();
      const row = await order(stack, orderId);
      assert.equal(row.status, "provisioning");
      assert.equal(row.pterodactyl_server_id, null);
      assert.equal(serversFor(stack, orderId).length, 1);
      return orderId;
    },
    settled: oneServerAfter(3),
  },
  {
    name:
      "the webhook endpoint disabled: the sweep applies the payment from Stripe's list",
    async run({ stack }) {
      const checkout = await openCheckout(stack, PLAN);
      await withoutWebhooks(
        stack,
        () => completeCheckout(stack, checkout.sessionId),
      );
      assert.equal((await order(stack, checkout.orderId)).status, "pending");
      return checkout.orderId;
    },
    async settled({ stack }, orderId) {
      await assertOneServer(stack, orderId);
      const rows = await stack.sql`select received_via from
        public.stripe_events_log where order_id = ${orderId}`;
      assert.ok(rows.length > 0);
      assert.ok(rows.every((r) => r.received_via === "poll"));
    },
  },
  {
    name:
      "panel 500 at the suspension of a cancelled order: suspended by the sweep",
    async run({ stack }) {
      const { orderId } = await purchase(stack, PLAN);
      await assertOneServer(stack, orderId);
      stack.panel.addFault({
        method: "POST",
        path: /^\/api\/application\/servers\/\d+\/suspend$/,
        status: 500,
      });
      const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
      const { stripe_subscription_id } = await order(stack, orderId);
      await stripe.subscriptions.cancel(stripe_subscription_id);
      await stack.idle();
      const row = await order(stack, orderId);
      assert.equal(row.status, "canceled");
      assert.equal(serversFor(stack, orderId)[0].status, null);
      assert.ok(row.panel_action_due_at, "the suspension is still due");
      return orderId;
    },
    async settled({ stack }, orderId) {
      assert.equal(serversFor(stack, orderId)[0].status, "suspended");
      assert.equal((await order(stack, orderId)).panel_action_due_at, null);
    },
  },
];

Deno.test("fault matrix: every fault heals to the same invariants", async (t) => {
  const pg = await ownPostgres();
  const stack = await startTestStack({ database: pg });
  // The panel's own rate limit stays out of the way: its 429 is a row of its own.
  stack.panel.configure({ rateLimitPerMinute: 100_000 });
  const sweep = sweeper(stack, { panelTimeoutMs: 1_000 });
  const matrix: Matrix = { stack, pg, sweep };
  try {
    for (const row of ROWS) {
      await t.step(row.name, async () => {
        try {
          const orderId = await row.run(matrix);
          stack.panel.clearFaults();
          await clearStripeFaults(stack);
          await sweepUntilSettled(stack, sweep);
          await assertInvariants(stack);
          await row.settled?.(matrix, orderId);
        } finally {
          stack.panel.clearFaults();
          await clearStripeFaults(stack);
        }
      });
    }
  } finally {
    await sweep.close();
    await stack.close();
  }
});
