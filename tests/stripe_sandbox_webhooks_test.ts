import assert from "node:assert/strict";
import Stripe from "stripe";
import { loadCatalogue, priceId } from "../local/catalogue.ts";
import {
  type Delivery,
  signPayload,
  startStripeSandbox,
  type StripeSandbox,
} from "../local/stripe-sandbox/mod.ts";
import {
  sandboxClient,
  type SandboxEnv,
  type WebhookReceiver,
  withSandbox,
} from "../local/stripe-sandbox/testing.ts";

const KEY = "sk_test_local_0123456789abcdef";
const WHSEC = "whsec_local_test_secret";

type Env = SandboxEnv;

function withEnv(
  statuses: number[],
  fn: (env: Env) => Promise<void>,
): Promise<void> {
  return withSandbox({
    secretKey: KEY,
    webhookSecret: WHSEC,
    statuses,
    retryDelaysMs: [20, 40, 80],
  }, fn);
}

async function newSession(stripe: Stripe, customer?: string) {
  return await stripe.checkout.sessions.create({
    mode: "subscription",
    success_url: "https://shop.example/success",
    line_items: [{ price: priceId("mc-java-4gb", "quarterly"), quantity: 1 }],
    ...(customer ? { customer } : { customer_email: "ada@example.com" }),
    client_reference_id: "order-1",
    metadata: { order_id: "order-1" },
    subscription_data: {
      metadata: { order_id: "order-1", plan_id: "mc-java-4gb" },
    },
  });
}

async function control(
  sandbox: StripeSandbox,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${sandbox.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

interface Completion {
  session: Stripe.Checkout.Session;
  event_ids: string[];
}

async function complete(
  sandbox: StripeSandbox,
  id: string,
  body: Record<string, string> = {},
): Promise<Completion> {
  const res = await control(
    sandbox,
    "POST",
    `/_sandbox/checkout/sessions/${id}/complete`,
    body,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as Completion;
}

async function deliveries(sandbox: StripeSandbox): Promise<Delivery[]> {
  return (await control(sandbox, "GET", "/_sandbox/deliveries"))
    .body as Delivery[];
}

function types(receiver: WebhookReceiver): string[] {
  return receiver.received.map((r) => r.event?.type ?? "unverified");
}

Deno.test("stripe sandbox completes a paid checkout", async (t) => {
  await withEnv([], async ({ sandbox, stripe, receiver }) => {
    const session = await newSession(stripe);
    const done = await complete(sandbox, session.id);

    await t.step("the session is complete and paid", async () => {
      const s = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(s.status, "complete");
      assert.equal(s.payment_status, "paid");
      assert.match(String(s.customer), /^cus_/);
      assert.match(String(s.subscription), /^sub_/);
      assert.match(String(s.invoice), /^in_/);
      assert.deepEqual(done.session, JSON.parse(JSON.stringify(s)));
      const customer = await stripe.customers.retrieve(String(s.customer));
      assert.equal((customer as Stripe.Customer).email, "ada@example.com");
    });

    await t.step(
      "the subscription carries items with the billing period",
      async () => {
        const s = await stripe.checkout.sessions.retrieve(session.id, {
          expand: ["subscription"],
        });
        const sub = s.subscription as Stripe.Subscription;
        assert.equal(sub.status, "active");
        assert.equal(sub.customer, s.customer);
        assert.deepEqual(sub.metadata, {
          order_id: "order-1",
          plan_id: "mc-java-4gb",
        });
        assert.equal(sub.latest_invoice, s.invoice);
        assert.equal(sub.cancel_at_period_end, false);
        assert.equal(sub.canceled_at, null);
        assert.ok(
          !("current_period_end" in sub),
          "not on the subscription since basil",
        );
        const item = sub.items.data[0];
        assert.equal(item.price.id, "price_mc_java_4gb_quarterly");
        assert.equal(item.price.unit_amount, 2799);
        assert.equal(item.quantity, 1);
        const start = new Date(item.current_period_start * 1000);
        const end = new Date(item.current_period_end * 1000);
        start.setUTCMonth(start.getUTCMonth() + 3);
        assert.equal(end.getTime(), start.getTime(), "a quarter later");
      },
    );

    await t.step("the invoice is paid with subscription details", async () => {
      const sub = await stripe.subscriptions.retrieve(
        String(done.session.subscription),
      );
      const invoice = await stripe.invoices.retrieve(
        String(sub.latest_invoice),
      );
      assert.equal(invoice.status, "paid");
      assert.equal(invoice.amount_paid, 2799);
      assert.equal(invoice.amount_due, 2799);
      assert.equal(invoice.billing_reason, "subscription_create");
      assert.equal(invoice.customer, sub.customer);
      assert.equal(invoice.parent?.type, "subscription_details");
      assert.equal(invoice.parent?.subscription_details?.subscription, sub.id);
      assert.deepEqual(
        invoice.parent?.subscription_details?.metadata,
        sub.metadata,
      );
      assert.equal(invoice.lines.data[0].amount, 2799);
      assert.ok(!("subscription" in invoice));
    });

    await t.step("events are delivered in Stripe's order, signed", async () => {
      assert.deepEqual(types(receiver), [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
      ]);
      assert.deepEqual(
        receiver.received.map((r) => r.event?.id),
        done.event_ids,
      );
      for (const r of receiver.received) {
        assert.equal(r.status, 200);
        assert.equal(
          r.userAgent,
          "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        );
        assert.equal(r.contentType, "application/json; charset=utf-8");
        assert.match(r.signature, /^t=\d+,v1=[0-9a-f]{64}$/);
        assert.equal(r.event?.api_version, Stripe.API_VERSION);
        assert.equal(r.event?.livemode, false);
      }
      const completed = receiver.received[2].event?.data
        .object as Stripe.Checkout.Session;
      assert.equal(completed.payment_status, "paid");
      assert.equal(completed.client_reference_id, "order-1");
      assert.deepEqual(completed.metadata, { order_id: "order-1" });
      const created = receiver.received[0].event?.data
        .object as Stripe.Subscription;
      assert.equal(created.metadata.order_id, "order-1");
      assert.equal(
        (await stripe.events.retrieve(done.event_ids[0])).type,
        "customer.subscription.created",
      );
    });

    await t.step(
      "a tampered body or another secret fails verification",
      async () => {
        const { body, signature } = receiver.received[2];
        const tampered = body.replace('"paid"', '"unpaid"');
        assert.notEqual(tampered, body);
        const verify = (payload: string, secret: string) =>
          stripe.webhooks.constructEventAsync(
            payload,
            signature,
            secret,
            undefined,
            Stripe.createSubtleCryptoProvider(),
          );
        assert.equal((await verify(body, WHSEC)).id, done.event_ids[2]);
        await assert.rejects(
          verify(tampered, WHSEC),
          Stripe.errors.StripeSignatureVerificationError,
        );
        await assert.rejects(
          verify(body, "whsec_other"),
          Stripe.errors.StripeSignatureVerificationError,
        );
        const header = await signPayload(WHSEC, body, 1_700_000_000);
        assert.equal(
          header,
          await stripe.webhooks.generateTestHeaderStringAsync({
            payload: body,
            secret: WHSEC,
            timestamp: 1_700_000_000,
            cryptoProvider: Stripe.createSubtleCryptoProvider(),
          }),
        );
      },
    );

    await t.step("completing twice is a Stripe-shaped 400", async () => {
      const res = await control(
        sandbox,
        "POST",
        `/_sandbox/checkout/sessions/${session.id}/complete`,
        {},
      );
      assert.equal(res.status, 400);
      const body = res.body as { error: { type: string; message: string } };
      assert.equal(body.error.type, "invalid_request_error");
      assert.match(body.error.message, /status is 'complete'/);
      assert.equal(receiver.received.length, 3);
    });

    await t.step("an existing customer is kept", async () => {
      const customer = await stripe.customers.create({
        email: "k@example.com",
      });
      const second = await complete(
        sandbox,
        (await newSession(stripe, customer.id)).id,
      );
      assert.equal(second.session.customer, customer.id);
      assert.equal((await stripe.customers.list()).data.length, 2);
    });
  });
});

Deno.test("stripe sandbox retries failed deliveries", async (t) => {
  await withEnv([500, 500], async ({ sandbox, stripe, receiver }) => {
    const session = await newSession(stripe);
    const { event_ids } = await control(
      sandbox,
      "POST",
      "/_sandbox/checkout/sessions/" + session.id + "/complete",
      {},
    ).then((r) => r.body as Completion);

    await t.step("the call returns after each event's first attempt", () => {
      assert.deepEqual(types(receiver).slice(0, 3), [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
      ]);
      assert.deepEqual(receiver.received.slice(0, 2).map((r) => r.status), [
        500,
        500,
      ]);
    });

    await t.step("retries continue in the background until idle", async () => {
      await sandbox.idle();
      const log = await deliveries(sandbox);
      for (const id of event_ids.slice(0, 2)) {
        assert.deepEqual(
          log.filter((d) => d.event_id === id).map((
            d,
          ) => [d.attempt, d.status]),
          [[1, 500], [2, 200]],
        );
      }
      assert.equal(receiver.received.length, 5);
      assert.ok(receiver.received.every((r) => r.event !== undefined));
    });
  });

  await withEnv([500, 500], async ({ sandbox, stripe, receiver }) => {
    await t.step("500 twice then 200 makes 3 attempts", async () => {
      const session = await newSession(stripe);
      await stripe.checkout.sessions.expire(session.id);
      await sandbox.idle();
      const log = await deliveries(sandbox);
      assert.deepEqual(log.map((d) => [d.attempt, d.status]), [[1, 500], [
        2,
        500,
      ], [3, 200]]);
      assert.ok(log.every((d) => d.type === "checkout.session.expired"));
      assert.equal(receiver.received.length, 3);
      assert.ok(
        receiver.received.every((r) =>
          r.event?.type === "checkout.session.expired"
        ),
      );
    });
  });

  await withEnv([503, 500, 502, 500], async ({ sandbox, stripe, receiver }) => {
    const session = await newSession(stripe);
    await stripe.checkout.sessions.expire(session.id);
    await sandbox.idle();
    await t.step("retries stop when the delays are exhausted", async () => {
      const log = await deliveries(sandbox);
      assert.deepEqual(log.map((d) => d.status), [503, 500, 502, 500]);
      assert.deepEqual(log.map((d) => d.attempt), [1, 2, 3, 4]);
      assert.equal(receiver.received.length, 4);
    });
  });

  await withEnv([], async ({ sandbox, stripe }) => {
    await t.step("a network error is status 0 and retried", async () => {
      sandbox.setWebhookUrl("http://127.0.0.1:9/unreachable");
      const session = await newSession(stripe);
      await stripe.checkout.sessions.expire(session.id);
      await sandbox.idle();
      const log = await deliveries(sandbox);
      assert.deepEqual(log.map((d) => d.status), [0, 0, 0, 0]);
    });
  });
});

Deno.test("stripe sandbox delivers duplicates and out of order", async (t) => {
  await withEnv([], async ({ sandbox, stripe, receiver }) => {
    await t.step("duplicate delivers every event twice", async () => {
      const done = await complete(sandbox, (await newSession(stripe)).id, {
        delivery: "duplicate",
      });
      const ids = receiver.received.map((r) => r.event?.id);
      assert.equal(ids.length, 6);
      for (const id of done.event_ids) {
        assert.equal(ids.filter((x) => x === id).length, 2);
      }
    });

    await t.step("reverse delivers the last event first", async () => {
      receiver.received.length = 0;
      await complete(sandbox, (await newSession(stripe)).id, {
        delivery: "reverse",
      });
      assert.deepEqual(types(receiver), [
        "checkout.session.completed",
        "invoice.paid",
        "customer.subscription.created",
      ]);
    });

    await t.step(
      "an event can be re-delivered in concurrent copies",
      async () => {
        receiver.received.length = 0;
        const [event] =
          (await stripe.events.list({ type: "invoice.paid", limit: 1 })).data;
        const res = await control(
          sandbox,
          "POST",
          `/_sandbox/events/${event.id}/deliver`,
          {
            copies: 10,
            concurrent: true,
          },
        );
        assert.equal(res.status, 200);
        assert.deepEqual(
          (res.body as { statuses: number[] }).statuses,
          Array(10).fill(200),
        );
        assert.equal(receiver.received.length, 10);
        assert.ok(receiver.received.every((r) => r.event?.id === event.id));
        const unknown = await control(
          sandbox,
          "POST",
          "/_sandbox/events/evt_nope/deliver",
          {},
        );
        assert.equal(unknown.status, 404);
      },
    );

    await t.step("events and deliveries are listed", async () => {
      const events = (await control(sandbox, "GET", "/_sandbox/events"))
        .body as Stripe.Event[];
      assert.equal(events.length, 6);
      const log = await deliveries(sandbox);
      assert.equal(log.length, 6 + 3 + 10);
    });
  });
});

Deno.test("stripe sandbox async payment outcomes", async (t) => {
  await withEnv([], async ({ sandbox, stripe, receiver }) => {
    await t.step(
      "pending: complete, unpaid, incomplete subscription",
      async () => {
        const session = await newSession(stripe);
        const done = await complete(sandbox, session.id, {
          outcome: "async_pending",
        });
        assert.equal(done.session.status, "complete");
        assert.equal(done.session.payment_status, "unpaid");
        assert.deepEqual(types(receiver), ["checkout.session.completed"]);
        const sub = await stripe.subscriptions.retrieve(
          String(done.session.subscription),
        );
        assert.equal(sub.status, "incomplete");
        const invoice = await stripe.invoices.retrieve(
          String(done.session.invoice),
        );
        assert.equal(invoice.status, "open");
        assert.equal(invoice.amount_paid, 0);

        receiver.received.length = 0;
        const paid = await complete(sandbox, session.id, {
          outcome: "async_succeeded",
        });
        assert.equal(paid.session.payment_status, "paid");
        assert.deepEqual(types(receiver), [
          "invoice.paid",
          "checkout.session.async_payment_succeeded",
        ]);
        assert.equal(
          (await stripe.subscriptions.retrieve(sub.id)).status,
          "active",
        );
        assert.equal(
          (await stripe.invoices.retrieve(invoice.id)).status,
          "paid",
        );

        const again = await control(
          sandbox,
          "POST",
          `/_sandbox/checkout/sessions/${session.id}/complete`,
          { outcome: "async_failed" },
        );
        assert.equal(again.status, 400);
      },
    );

    await t.step(
      "failed: async_payment_failed, incomplete_expired",
      async () => {
        receiver.received.length = 0;
        const done = await complete(sandbox, (await newSession(stripe)).id, {
          outcome: "async_failed",
        });
        assert.deepEqual(types(receiver), [
          "checkout.session.completed",
          "checkout.session.async_payment_failed",
        ]);
        assert.equal(done.session.payment_status, "unpaid");
        const sub = await stripe.subscriptions.retrieve(
          String(done.session.subscription),
        );
        assert.equal(sub.status, "incomplete_expired");
      },
    );

    await t.step("expired: only from open", async () => {
      receiver.received.length = 0;
      const session = await newSession(stripe);
      const done = await complete(sandbox, session.id, { outcome: "expired" });
      assert.equal(done.session.status, "expired");
      assert.deepEqual(types(receiver), ["checkout.session.expired"]);
      const again = await control(
        sandbox,
        "POST",
        `/_sandbox/checkout/sessions/${session.id}/complete`,
        { outcome: "paid" },
      );
      assert.equal(again.status, 400);
      const bad = await control(
        sandbox,
        "POST",
        `/_sandbox/checkout/sessions/${session.id}/complete`,
        { outcome: "maybe" },
      );
      assert.equal(bad.status, 400);
      assert.equal(
        (bad.body as { error: { param: string } }).error.param,
        "outcome",
      );
    });

    await t.step("the checkout page completes and redirects", async () => {
      const session = await newSession(stripe);
      const res = await fetch(
        `${sandbox.url}/_sandbox/checkout/sessions/${session.id}/complete`,
        {
          method: "POST",
          body: new URLSearchParams({ outcome: "paid" }),
          redirect: "manual",
        },
      );
      await res.body?.cancel();
      assert.equal(res.status, 303);
      assert.equal(res.headers.get("location"), "https://shop.example/success");
      assert.equal(
        (await stripe.checkout.sessions.retrieve(session.id)).payment_status,
        "paid",
      );
    });
  });
});

Deno.test("stripe sandbox subscription update and cancel", async (t) => {
  await withEnv([], async ({ sandbox, stripe, receiver }) => {
    const done = await complete(sandbox, (await newSession(stripe)).id);
    const subId = String(done.session.subscription);
    receiver.received.length = 0;

    await t.step("update emits customer.subscription.updated", async () => {
      const sub = await stripe.subscriptions.update(subId, {
        cancel_at_period_end: true,
        metadata: { note: "x" },
      });
      assert.equal(sub.cancel_at_period_end, true);
      assert.equal(sub.cancel_at, sub.items.data[0].current_period_end);
      assert.deepEqual(sub.metadata, {
        order_id: "order-1",
        plan_id: "mc-java-4gb",
        note: "x",
      });
      await sandbox.idle();
      assert.deepEqual(types(receiver), ["customer.subscription.updated"]);
      const event = receiver.received[0].event!;
      assert.deepEqual(
        (event.data.previous_attributes as Partial<Stripe.Subscription>)
          .metadata,
        {
          order_id: "order-1",
          plan_id: "mc-java-4gb",
        },
      );
      assert.equal(event.request?.id !== null, true);
    });

    await t.step(
      "cancel ends it and emits customer.subscription.deleted",
      async () => {
        const sub = await stripe.subscriptions.cancel(subId);
        assert.equal(sub.status, "canceled");
        assert.ok(sub.canceled_at !== null);
        await sandbox.idle();
        assert.deepEqual(types(receiver), [
          "customer.subscription.updated",
          "customer.subscription.deleted",
        ]);
        const err = await stripe.subscriptions.cancel(subId).catch((e) => e);
        assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
        assert.equal((await stripe.subscriptions.list()).data.length, 0);
        assert.equal(
          (await stripe.subscriptions.list({ status: "all" })).data.length,
          1,
        );
      },
    );
  });
});

Deno.test("stripe sandbox injects API faults", async (t) => {
  await withEnv([], async ({ sandbox, stripe }) => {
    await t.step(
      "a 500 surfaces as StripeAPIError and is used up",
      async () => {
        const res = await control(sandbox, "POST", "/_sandbox/faults", {
          method: "POST",
          path: "/v1/checkout/sessions",
          status: 500,
          times: 1,
        });
        assert.equal(res.status, 200);
        const err = await newSession(stripe).catch((e) => e);
        assert.ok(err instanceof Stripe.errors.StripeAPIError);
        assert.equal(err.statusCode, 500);
        assert.equal((await stripe.checkout.sessions.list()).data.length, 0);
        assert.equal((await newSession(stripe)).status, "open");
      },
    );

    await t.step(
      "the SDK's own retries get through a single fault",
      async () => {
        await control(sandbox, "POST", "/_sandbox/faults", {
          method: "POST",
          path: "/v1/checkout/sessions",
          status: 503,
          times: 1,
        });
        const retrying = sandboxClient(sandbox, KEY, { maxNetworkRetries: 1 });
        const before = sandbox.requests().length;
        const session = await newSession(retrying);
        assert.equal(session.status, "open");
        const tries = sandbox.requests().slice(before);
        assert.equal(tries.length, 2);
        assert.equal(tries[0].idempotencyKey, tries[1].idempotencyKey);
      },
    );

    await t.step("429, 402 and a type/message of choice", async () => {
      await control(sandbox, "POST", "/_sandbox/faults", {
        method: "GET",
        path: "^/v1/prices/",
        status: 429,
        times: 2,
      });
      const limited = await stripe.prices.retrieve(
        priceId("mc-java-4gb", "monthly"),
      ).catch((e) => e);
      assert.ok(limited instanceof Stripe.errors.StripeRateLimitError);
      assert.ok(
        (await stripe.prices.retrieve("price_mc_java_2gb_monthly").catch((e) =>
          e
        )) instanceof Stripe.errors.StripeRateLimitError,
      );
      assert.equal(
        (await stripe.prices.retrieve("price_mc_java_2gb_monthly")).unit_amount,
        499,
      );
      await control(sandbox, "POST", "/_sandbox/faults", {
        method: "POST",
        path: "/v1/customers",
        status: 402,
        message: "Your card was declined.",
        code: "card_declined",
        times: 1,
      });
      const card = await stripe.customers.create({}).catch((e) => e);
      assert.ok(card instanceof Stripe.errors.StripeCardError);
      assert.equal(card.message, "Your card was declined.");
      assert.equal(card.code, "card_declined");
    });

    await t.step("DELETE clears faults", async () => {
      await control(sandbox, "POST", "/_sandbox/faults", {
        path: "/v1/customers",
        status: 500,
        times: 5,
      });
      const cleared = await control(sandbox, "DELETE", "/_sandbox/faults");
      assert.deepEqual(cleared.body, []);
      assert.match((await stripe.customers.create({})).id, /^cus_/);
    });

    await t.step(
      "a lost response does the work; calls are recorded with a masked key",
      async () => {
        const reset = await fetch(`${sandbox.url}/_sandbox/calls`, {
          method: "DELETE",
        });
        assert.equal(reset.status, 204);
        await control(sandbox, "POST", "/_sandbox/faults", {
          method: "POST",
          path: "/v1/customers",
          loseResponse: true,
          times: 1,
        });
        const lost = await stripe.customers.create({ email: "lost@x.test" })
          .catch((e) => e);
        assert.ok(lost instanceof Stripe.errors.StripeError);
        const found = await stripe.customers.list({ email: "lost@x.test" });
        assert.equal(found.data.length, 1);
        const calls = (await control(sandbox, "GET", "/_sandbox/calls"))
          .body as {
            method: string;
            path: string;
            status: number;
            key: string;
          }[];
        assert.deepEqual(
          calls.map((c) => [c.method, c.path, c.status]),
          [["POST", "/v1/customers", 504], ["GET", "/v1/customers", 200]],
        );
        assert.equal(calls[0].key, `sk_test_…${KEY.slice(-4)}`);
        const counts = await control(sandbox, "GET", "/_sandbox/calls/counts");
        assert.deepEqual(counts.body, {
          "POST /v1/customers": 1,
          "GET /v1/customers": 1,
        });
      },
    );
  });
});

Deno.test("stripe sandbox without a webhook URL records events only", async () => {
  const sandbox = await startStripeSandbox({
    catalogue: await loadCatalogue(),
    secretKey: KEY,
    webhookSecret: WHSEC,
  });
  try {
    const stripe = sandboxClient(sandbox, KEY);
    const done = await complete(sandbox, (await newSession(stripe)).id);
    await sandbox.idle();
    assert.equal(done.event_ids.length, 3);
    assert.deepEqual(await deliveries(sandbox), []);
    const set = await control(sandbox, "POST", "/_sandbox/webhook", {
      url: "http://127.0.0.1:9/x",
    });
    assert.deepEqual(set.body, { url: "http://127.0.0.1:9/x" });
  } finally {
    await sandbox.close();
  }
});
