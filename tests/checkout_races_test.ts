import assert from "node:assert/strict";
import Stripe from "stripe";
import { createUserVerifier } from "../supabase/functions/_shared/platform/user_auth.ts";
import {
  connect,
  type Sql,
} from "../supabase/functions/_shared/platform/db.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { createPanelClient } from "../supabase/functions/_shared/panel/client.ts";
import { createPanelUserHandler } from "../supabase/functions/create-pterodactyl-user/handler.ts";
import { createCheckoutHandler } from "../supabase/functions/create-checkout-session/handler.ts";
import { checkoutEnv } from "../supabase/functions/_shared/manifest.ts";
import { errorCode, invoke } from "./_fixtures.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  postEvent,
  purchase,
  serversFor,
} from "./_purchase.ts";
import { startTestStack, type TestStack, type TestUser } from "./_stack.ts";

const BODY = {
  plan_id: "among-us-1gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Race track",
};

/** Rounds of concurrent calls: one race in a round is enough to fail without the fix. */
const ROUNDS = 40;

function stripeFor(
  stack: TestStack,
  fetchFn: typeof fetch = fetch,
): Stripe {
  const base = new URL(stack.stripe.url);
  return new Stripe(stack.keys.stripeSecretKey, {
    host: base.hostname,
    port: Number(base.port),
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(fetchFn),
  });
}

/** The checkout handler in process, with its own Stripe client and clock. */
function checkoutInProcess(
  stack: TestStack,
  sql: Sql,
  options: {
    fetch?: typeof fetch;
    now?: () => Date;
    maxOpenCheckouts?: number;
  } = {},
) {
  const handler = createCheckoutHandler({
    sql,
    stripe: stripeFor(stack, options.fetch),
    verifyUser: createUserVerifier(stack.gateway.url, stack.keys.anonKey),
    siteUrl: "http://127.0.0.1:3000",
    log: createLogger({ fn: "create-checkout-session" }, {
      write: (line) => stack.logs.push(line),
    }),
    now: options.now,
    maxOpenCheckouts: options.maxOpenCheckouts,
  });
  return (user: TestUser, body: Record<string, string>) =>
    call(handler, user, body);
}

/** Calls a handler in process as the user, answering status and JSON body. */
async function call(
  handler: (req: Request) => Promise<Response>,
  user: TestUser,
  body: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await handler(
    new Request("http://functions.local/", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${user.token}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify(body),
    }),
  );
  return {
    status: res.status,
    body: await res.json() as Record<string, unknown>,
  };
}

/** A barrier: the `n`th caller releases everyone waiting. */
function barrier(n: number): () => Promise<void> {
  const all = Promise.withResolvers<void>();
  let arrived = 0;
  return () => {
    if (++arrived === n) all.resolve();
    return all.promise;
  };
}

async function addStripeFault(
  stack: TestStack,
  fault: Record<string, unknown>,
): Promise<void> {
  const res = await fetch(`${stack.stripe.url}/_sandbox/faults`, {
    method: "POST",
    body: JSON.stringify(fault),
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
}

/** Closes every open checkout, so rounds do not use up capacity or the checkout limit. */
async function closeOpenCheckouts(stack: TestStack): Promise<void> {
  await stack
    .sql`update public.orders set status = 'expired' where status = 'pending'`;
}

Deno.test("checkout races, stale references and the open-checkout limit", async (t) => {
  const stack = await startTestStack();
  // Hundreds of calls in a few seconds: the panel's rate limit is not under test here.
  stack.panel.configure({ rateLimitPerMinute: 100_000 });
  const sql = connect(stack.databaseUrl, { max: 10 });
  try {
    await t.step(
      "10 concurrent create-pterodactyl-user calls for a new user: all 200, one link",
      async () => {
        for (let round = 0; round < ROUNDS; round++) {
          const user = await stack.user();
          // Each call writes its link right after learning the panel user; the barrier
          // makes the ten learn it at once, so the ten links are written together.
          const found = barrier(10);
          const panel = createPanelClient({
            url: stack.panel.url,
            apiKey: stack.keys.panelApiKey,
          });
          const handler = createPanelUserHandler({
            sql,
            panel: {
              ...panel,
              async getUserByExternalId(id) {
                const user = await panel.getUserByExternalId(id);
                if (user) await found();
                return user;
              },
              async createUser(user) {
                const made = await panel.createUser(user);
                await found();
                return made;
              },
            },
            verifyUser: createUserVerifier(
              stack.gateway.url,
              stack.keys.anonKey,
            ),
            log: createLogger({ fn: "create-pterodactyl-user" }, {
              write: (line) => stack.logs.push(line),
            }),
          });
          const results = await Promise.all(
            Array.from({ length: 10 }, () => call(handler, user, {})),
          );
          assert.deepEqual(
            results.map((r) => r.status),
            Array(10).fill(200),
            `round ${round}: ${JSON.stringify(results.map((r) => r.body))}`,
          );
          const [{ n }] = await stack.sql`
            select count(*)::int as n from public.external_accounts
            where user_id = ${user.id}`;
          assert.equal(n, 1);
          assert.equal(
            stack.panel.state().users.filter((u) => u.external_id === user.id)
              .length,
            1,
          );
        }
      },
    );

    await t.step(
      "10 concurrent checkouts by a new customer: no 5xx, one Stripe customer link",
      async () => {
        for (let round = 0; round < ROUNDS; round++) {
          const user = await stack.user();
          // The ten checkouts learn their (one, idempotent) new Stripe customer at
          // once, so their links are written together.
          const created = barrier(10);
          const together: typeof fetch = async (
            input: string | URL | Request,
            init?: RequestInit,
          ) => {
            const res = await fetch(input, init);
            const url = new URL(input instanceof Request ? input.url : input);
            if (init?.method === "POST" && url.pathname === "/v1/customers") {
              await created();
            }
            return res;
          };
          const submit = checkoutInProcess(stack, sql, {
            fetch: together,
            maxOpenCheckouts: 10,
          });
          const results = await Promise.all(
            Array.from(
              { length: 10 },
              (_, i) => submit(user, { ...BODY, server_name: `Racer ${i}` }),
            ),
          );
          const statuses = results.map((r) => r.status).sort();
          assert.deepEqual(
            statuses,
            Array(10).fill(200),
            `round ${round}: ${JSON.stringify(results.map((r) => r.body))}`,
          );
          const links = await stack.sql`
            select stripe_customer_id from public.stripe_customers
            where user_id = ${user.id}`;
          assert.equal(links.length, 1);
          const orders = await stack.sql`
            select distinct stripe_customer_id from public.orders
            where user_id = ${user.id} and status = 'pending'`;
          assert.deepEqual(orders.map((o) => o.stripe_customer_id), [
            links[0].stripe_customer_id,
          ]);
          await closeOpenCheckouts(stack);
        }
      },
    );

    await t.step(
      "a stored Stripe customer Stripe no longer knows is replaced, never a 5xx",
      async () => {
        const user = await stack.user();
        const first = await openCheckout(stack, BODY, user);
        await closeOpenCheckouts(stack);
        // As after switching test keys to live, or deleting the customer in the
        // dashboard: Stripe answers "No such customer" for the stored id.
        const gone = "cus_GoneFromStripe01";
        await stack.sql`update public.stripe_customers
          set stripe_customer_id = ${gone} where user_id = ${user.id}`;
        const res = await invoke(user.client, "create-checkout-session", {
          ...BODY,
          server_name: "After the switch",
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const [link] = await stack.sql`
          select stripe_customer_id from public.stripe_customers
          where user_id = ${user.id}`;
        assert.notEqual(link.stripe_customer_id, gone);
        const session = await stripeFor(stack).checkout.sessions.retrieve(
          String(res.body.session_id),
        );
        assert.equal(session.customer, link.stripe_customer_id);
        const customer = await stripeFor(stack).customers.retrieve(
          link.stripe_customer_id,
        );
        assert.equal(customer.deleted, undefined);
        const row = await order(stack, String(res.body.order_id));
        assert.equal(row.stripe_customer_id, link.stripe_customer_id);
        assert.notEqual(row.id, first.orderId);

        // The replacement sticks: the next checkout uses it without a new customer.
        const customersBefore = stack.stripe.requests().filter((r) =>
          r.path === "/v1/customers"
        ).length;
        await closeOpenCheckouts(stack);
        const again = await invoke(user.client, "create-checkout-session", {
          ...BODY,
          server_name: "Third world",
        });
        assert.equal(again.status, 200);
        assert.equal(
          stack.stripe.requests().filter((r) => r.path === "/v1/customers")
            .length,
          customersBefore,
        );
        await closeOpenCheckouts(stack);
      },
    );

    await t.step(
      "a panel account deleted on the panel by hand is re-created and relinked at provisioning",
      async () => {
        const user = await stack.user();
        const made = await invoke(user.client, "create-pterodactyl-user");
        assert.equal(made.status, 200);
        const goneId = Number(made.body.ptero_user_id);
        const deleted = await fetch(
          `${stack.panel.url}/api/application/users/${goneId}`,
          {
            method: "DELETE",
            headers: {
              Authorization: `Bearer ${stack.keys.panelApiKey}`,
              Accept: "application/json",
            },
          },
        );
        await deleted.body?.cancel();
        assert.equal(deleted.status, 204);

        const checkout = await openCheckout(
          stack,
          { ...BODY, server_name: "Relinked" },
          user,
        );
        await completeCheckout(stack, checkout.sessionId);
        await stack.idle();
        const row = await order(stack, checkout.orderId);
        assert.equal(row.status, "installing", row.error_message);
        const [link] = await stack.sql`
          select ptero_user_id from public.external_accounts where user_id = ${user.id}`;
        assert.notEqual(link.ptero_user_id, goneId);
        const owners = stack.panel.state().users.filter((u) =>
          u.external_id === user.id
        );
        assert.deepEqual(owners.map((u) => u.id), [link.ptero_user_id]);
        const [server] = serversFor(stack, checkout.orderId);
        assert.equal(server.owner_id, link.ptero_user_id);
      },
    );

    await t.step(
      "double submit with a Stripe error in between: the paid checkout is never on a closed order",
      async () => {
        // A customer who bought before (so the only Stripe call is the session).
        const user = (await purchase(stack, { ...BODY, server_name: "Before" }))
          .user;
        await addStripeFault(stack, {
          method: "POST",
          path: "/v1/checkout/sessions",
          status: 400,
          type: "invalid_request_error",
          message: "Something was wrong with the request",
          times: 1,
        });
        let sessionCalls = 0;
        const second = Promise.withResolvers<void>();
        const firstAnswered = Promise.withResolvers<void>();
        // The first session call (the failing one) waits until the other request is
        // either calling Stripe too or waiting on a database lock; later calls wait
        // until the first request has answered. No sleeps decide the interleaving.
        const gated: typeof fetch = async (
          input: string | URL | Request,
          init?: RequestInit,
        ) => {
          const url = new URL(input instanceof Request ? input.url : input);
          if (
            init?.method === "POST" && url.pathname === "/v1/checkout/sessions"
          ) {
            if (++sessionCalls === 1) {
              const stop = new AbortController();
              await Promise.race([
                second.promise,
                lockWaiter(stack, stop.signal),
              ]);
              stop.abort();
            } else {
              second.resolve();
              await firstAnswered.promise;
            }
          }
          return await fetch(input, init);
        };
        const submit = checkoutInProcess(stack, sql, { fetch: gated });
        const body = { ...BODY, server_name: "Double submit" };
        const calls = [submit(user, body), submit(user, body)];
        Promise.race(calls).then(() => firstAnswered.resolve());
        const results = await Promise.all(calls);
        assert.deepEqual(results.map((r) => r.status).sort(), [200, 502]);
        const ok = results.find((r) => r.status === 200)!;

        const orderId = String(ok.body.order_id);
        const open = await order(stack, orderId);
        assert.equal(open.status, "pending");
        assert.equal(open.stripe_checkout_session_id, ok.body.session_id);
        const closed = await stack.sql`
          select status, stripe_checkout_session_id from public.orders
          where user_id = ${user.id} and server_name = 'Double submit' and id <> ${orderId}`;
        assert.deepEqual(
          closed.map((o) => [o.status, o.stripe_checkout_session_id]),
          [["expired", null]],
        );

        await completeCheckout(stack, String(ok.body.session_id));
        await stack.idle();
        assert.equal((await order(stack, orderId)).status, "installing");
        const outcomes = await stack.sql`
          select outcome from public.stripe_events_log where order_id = ${orderId}`;
        assert.ok(outcomes.length > 0);
        assert.ok(outcomes.every((o) => o.outcome !== "mismatch"));
        assert.equal(serversFor(stack, orderId).length, 1);
      },
    );

    await t.step(
      "an order whose checkout time ran out is expired only after Stripe says it cannot be paid",
      async () => {
        const user = await stack.user();
        const body = { ...BODY, server_name: "Late again" };
        const first = await openCheckout(stack, body, user);
        const later = checkoutInProcess(stack, sql, {
          now: () => new Date(Date.now() + 2 * 60 * 60 * 1000),
        });

        // Still open at Stripe (its clock and ours disagree): Stripe closes it first.
        const res = await later(user, body);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.notEqual(res.body.order_id, first.orderId);
        assert.ok(
          stack.stripe.requests().some((r) =>
            r.method === "POST" &&
            r.path === `/v1/checkout/sessions/${first.sessionId}/expire`
          ),
          "the old session was expired at Stripe",
        );
        const old = await stripeFor(stack).checkout.sessions.retrieve(
          first.sessionId,
        );
        assert.equal(old.status, "expired");
        assert.equal((await order(stack, first.orderId)).status, "expired");
        await stack.idle();
        await closeOpenCheckouts(stack);

        // Completed at Stripe, the payment still processing: left for the webhook.
        const paying = await openCheckout(stack, {
          ...BODY,
          server_name: "Slow bank",
        }, user);
        await completeCheckout(stack, paying.sessionId, "async_pending");
        await stack.idle();
        const refused = await later(user, {
          ...BODY,
          server_name: "Slow bank",
        });
        assert.equal(refused.status, 409);
        assert.equal(errorCode(refused.body), "checkout_completed");
        assert.equal((await order(stack, paying.orderId)).status, "pending");
      },
    );

    await t.step(
      "at most MAX_OPEN_CHECKOUTS (default 5) open checkouts: then 429 too_many_open_checkouts",
      async () => {
        assert.equal(checkoutEnv.parse({}).MAX_OPEN_CHECKOUTS, 5);
        assert.equal(
          checkoutEnv.parse({ MAX_OPEN_CHECKOUTS: "2" }).MAX_OPEN_CHECKOUTS,
          2,
        );
        const user = await stack.user();
        const opened = [];
        for (let i = 0; i < 5; i++) {
          opened.push(
            await openCheckout(
              stack,
              { ...BODY, server_name: `Open ${i}` },
              user,
            ),
          );
        }
        const calls = stack.stripe.requests().length;
        const sixth = await invoke(user.client, "create-checkout-session", {
          ...BODY,
          server_name: "One too many",
        });
        assert.equal(sixth.status, 429);
        assert.equal(errorCode(sixth.body), "too_many_open_checkouts");
        assert.equal(stack.stripe.requests().length, calls);
        const [{ n }] = await stack.sql`select count(*)::int as n
          from public.orders where user_id = ${user.id}`;
        assert.equal(n, 5);
        // Asking again for one that is open still answers it.
        const same = await invoke(user.client, "create-checkout-session", {
          ...BODY,
          server_name: "Open 0",
        });
        assert.equal(same.status, 200);
        assert.equal(same.body.session_id, opened[0].sessionId);
        // Once one ends, another may open.
        await completeCheckout(stack, opened[1].sessionId, "expired");
        await stack.idle();
        const next = await invoke(user.client, "create-checkout-session", {
          ...BODY,
          server_name: "One too many",
        });
        assert.equal(next.status, 200);
      },
    );
  } finally {
    await sql.end();
    await stack.close();
  }
});

/** Resolves once some session of the test database waits on a lock (or on abort). */
async function lockWaiter(
  stack: TestStack,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    const [{ waiting }] = await stack.sql`
      select exists (
        select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where not l.granted and a.datname = current_database()
      ) as waiting`;
    if (waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("stripe-webhook: money that disagrees with the order is a mismatch", async (t) => {
  const stack = await startTestStack();
  try {
    /** Posts a signed event built from a real session or invoice, changed by `edit`. */
    const deliver = async (type: string, object: Record<string, unknown>) => {
      const { status, body } = await postEvent(stack, {
        id: `evt_money_${crypto.randomUUID().slice(0, 8)}`,
        object: "event",
        api_version: Stripe.API_VERSION,
        created: Math.floor(Date.now() / 1000),
        type,
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        data: { object },
      });
      assert.equal(status, 200, JSON.stringify(body));
      await stack.idle();
      return body as { outcome: string; order_id: string | null };
    };

    const completedSession = async (serverName: string) => {
      const checkout = await openCheckout(stack, {
        ...BODY,
        server_name: serverName,
      });
      const session = await stripeFor(stack).checkout.sessions.retrieve(
        checkout.sessionId,
      );
      return {
        checkout,
        session: {
          ...session,
          status: "complete",
          payment_status: "paid",
        } as unknown as Record<string, unknown>,
      };
    };

    const assertUnpaid = async (orderId: string) => {
      const row = await order(stack, orderId);
      assert.equal(row.status, "pending");
      assert.equal(serversFor(stack, orderId).length, 0);
      const [logged] = await stack.sql`
        select outcome from public.stripe_events_log where order_id = ${orderId}`;
      assert.equal(logged.outcome, "mismatch");
    };

    await t.step(
      "a completed session whose amount_total is null",
      async () => {
        const { checkout, session } = await completedSession("Null amount");
        const res = await deliver("checkout.session.completed", {
          ...session,
          amount_total: null,
        });
        assert.equal(res.outcome, "mismatch");
        await assertUnpaid(checkout.orderId);
      },
    );

    await t.step(
      "a completed session in another currency",
      async () => {
        const { checkout, session } = await completedSession("Wrong money");
        const res = await deliver("checkout.session.completed", {
          ...session,
          currency: "eur",
        });
        assert.equal(res.outcome, "mismatch");
        await assertUnpaid(checkout.orderId);
      },
    );

    await t.step(
      "a first invoice paid in another currency",
      async () => {
        const { checkout, session } = await completedSession("Wrong invoice");
        const metadata = session.metadata as Record<string, string>;
        const res = await deliver("invoice.paid", {
          id: "in_money_test",
          object: "invoice",
          billing_reason: "subscription_create",
          customer: session.customer,
          amount_due: 999,
          amount_paid: 999,
          total: 999,
          currency: "eur",
          lines: {
            object: "list",
            data: [],
            has_more: false,
            url: "/v1/invoices/in_money_test/lines",
          },
          parent: {
            type: "subscription_details",
            quote_details: null,
            subscription_details: {
              metadata,
              subscription: "sub_money_test",
            },
          },
        });
        assert.equal(res.outcome, "mismatch");
        await assertUnpaid(checkout.orderId);
      },
    );
  } finally {
    await stack.close();
  }
});
