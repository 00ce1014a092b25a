import assert from "node:assert/strict";
import Stripe from "stripe";
import { loadCatalogue, priceId } from "../local/catalogue.ts";
import {
  startStripeSandbox,
  type StripeSandbox,
} from "../local/stripe-sandbox/mod.ts";
import {
  sandboxClient,
  type SandboxEnv,
  startWebhookReceiver,
  withSandbox,
} from "../local/stripe-sandbox/testing.ts";

const KEY = "sk_test_local_0123456789abcdef";
const WHSEC = "whsec_local_test_secret";

type Env = SandboxEnv;

function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  return withSandbox(
    { secretKey: KEY, webhookSecret: WHSEC, retryDelaysMs: [20] },
    fn,
  );
}

async function control(
  sandbox: StripeSandbox,
  path: string,
  body: unknown = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${sandbox.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** What a lifecycle control call answers. */
interface Life {
  subscription: Stripe.Subscription;
  invoice?: Stripe.Invoice;
  charge?: Stripe.Charge;
  dispute?: Stripe.Dispute;
  refund?: Stripe.Refund;
  event_ids: string[];
}

async function life(
  sandbox: StripeSandbox,
  subId: string,
  action: string,
  body: unknown = {},
): Promise<Life> {
  const res = await control(
    sandbox,
    `/_sandbox/subscriptions/${subId}/${action}`,
    body,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as unknown as Life;
}

/** A paid checkout's subscription id; the receiver is emptied afterwards. */
async function purchase(
  { sandbox, stripe, receiver }: Env,
  customer?: string,
): Promise<string> {
  const session = await stripe.checkout.sessions.create({
    mode: "subscription",
    success_url: "https://shop.example/success",
    line_items: [{ price: priceId("mc-java-4gb", "monthly"), quantity: 1 }],
    ...(customer ? { customer } : { customer_email: "ada@example.com" }),
    subscription_data: { metadata: { order_id: "order-1" } },
  });
  const res = await control(
    sandbox,
    `/_sandbox/checkout/sessions/${session.id}/complete`,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await sandbox.idle();
  receiver.received.length = 0;
  return String((res.body.session as Stripe.Checkout.Session).subscription);
}

/** The verified events the receiver got, as `type`s, then forgets them. */
async function received(env: Env): Promise<Stripe.Event[]> {
  await env.sandbox.idle();
  const events = env.receiver.received.map((r) => {
    assert.ok(r.event, "every delivery verifies with the SDK");
    return r.event;
  });
  env.receiver.received.length = 0;
  return events;
}

function types(events: Stripe.Event[]): string[] {
  return events.map((e) => e.type);
}

function period(sub: Stripe.Subscription) {
  const item = sub.items.data[0];
  return { start: item.current_period_start, end: item.current_period_end };
}

Deno.test("stripe sandbox renews a subscription", async (t) => {
  await withEnv(async (env) => {
    const { sandbox, stripe } = env;
    const subId = await purchase(env);
    const first = period(await stripe.subscriptions.retrieve(subId));

    await t.step("a paid renewal sends Stripe's events in order", async () => {
      const done = await life(sandbox, subId, "renew", { outcome: "paid" });
      const events = await received(env);
      assert.deepEqual(types(events), [
        "invoice.created",
        "invoice.finalized",
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
      ]);
      assert.deepEqual(events.map((e) => e.id), done.event_ids);
      const created = events[0].data.object as Stripe.Invoice;
      assert.equal(created.status, "draft");
      assert.equal(created.number, null);
      assert.equal(created.billing_reason, "subscription_cycle");
      assert.equal(created.parent?.subscription_details?.subscription, subId);
      assert.equal((events[1].data.object as Stripe.Invoice).status, "open");
      const updated = events[2].data.object as Stripe.Subscription;
      assert.deepEqual(period(updated), {
        start: first.end,
        end: period(updated).end,
      });
      assert.ok(period(updated).end > first.end);
      const previous = events[2].data.previous_attributes as Partial<
        Stripe.Subscription
      >;
      assert.equal(
        previous.items?.data[0].current_period_end,
        first.end,
        "previous_attributes carry the old period",
      );
      const paid = events[3].data.object as Stripe.Invoice;
      assert.equal(paid.status, "paid");
      assert.equal(paid.amount_paid, paid.amount_due);
      assert.equal(paid.id, done.invoice?.id);
    });

    await t.step("retrieve answers the current state", async () => {
      const sub = await stripe.subscriptions.retrieve(subId);
      assert.equal(sub.status, "active");
      assert.equal(period(sub).start, first.end);
      const invoice = await stripe.invoices.retrieve(
        String(sub.latest_invoice),
      );
      assert.equal(invoice.billing_reason, "subscription_cycle");
      assert.equal(invoice.status, "paid");
      assert.equal(invoice.period_end, first.end, "the period just ended");
      assert.deepEqual(invoice.lines.data[0].period, period(sub));
      assert.equal(invoice.amount_due, 999);
    });

    await t.step(
      "a failed renewal makes the subscription past_due",
      async () => {
        const done = await life(sandbox, subId, "renew", { outcome: "failed" });
        const events = await received(env);
        assert.deepEqual(types(events), [
          "invoice.created",
          "invoice.finalized",
          "customer.subscription.updated",
          "invoice.payment_failed",
          "customer.subscription.updated",
        ]);
        const failed = events[3].data.object as Stripe.Invoice;
        assert.equal(failed.status, "open");
        assert.equal(failed.attempt_count, 1);
        assert.ok(failed.next_payment_attempt !== null);
        const last = events[4];
        assert.equal(
          (last.data.object as Stripe.Subscription).status,
          "past_due",
        );
        assert.deepEqual(last.data.previous_attributes, { status: "active" });
        const sub = await stripe.subscriptions.retrieve(subId);
        assert.equal(sub.status, "past_due");
        assert.equal(sub.latest_invoice, done.invoice?.id);
        assert.equal(done.charge?.status, "failed");
        assert.equal(done.charge?.failure_code, "card_declined");
      },
    );

    await t.step("recover pays the open invoice and reactivates", async () => {
      const done = await life(sandbox, subId, "recover");
      const events = await received(env);
      assert.deepEqual(types(events), [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
      ]);
      assert.deepEqual(events[2].data.previous_attributes, {
        status: "past_due",
      });
      const invoice = await stripe.invoices.retrieve(String(done.invoice?.id));
      assert.equal(invoice.status, "paid");
      assert.equal(invoice.attempt_count, 2);
      assert.equal(
        (await stripe.subscriptions.retrieve(subId)).status,
        "active",
      );
      const again = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/recover`,
      );
      assert.equal(again.status, 400, "nothing left to recover");
    });

    await t.step("advance without cancellation renews", async () => {
      const before = period(await stripe.subscriptions.retrieve(subId));
      await life(sandbox, subId, "advance");
      assert.deepEqual(types(await received(env)), [
        "invoice.created",
        "invoice.finalized",
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
      ]);
      const after = period(await stripe.subscriptions.retrieve(subId));
      assert.equal(after.start, before.end);
    });

    await t.step("bad input is a Stripe-shaped 400 or 404", async () => {
      const bad = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/renew`,
        { outcome: "maybe" },
      );
      assert.equal(bad.status, 400);
      assert.match(
        String((bad.body.error as { message: string }).message),
        /outcome/,
      );
      const missing = await control(
        sandbox,
        "/_sandbox/subscriptions/sub_nope/renew",
      );
      assert.equal(missing.status, 404);
      assert.equal(
        (missing.body.error as { code: string }).code,
        "resource_missing",
      );
    });
  });
});

Deno.test("stripe sandbox ends dunning", async (t) => {
  await withEnv(async (env) => {
    const { sandbox, stripe } = env;
    for (
      const [result, expected] of [
        ["canceled", ["customer.subscription.deleted"]],
        ["unpaid", ["customer.subscription.updated"]],
        ["paused", [
          "customer.subscription.updated",
          "customer.subscription.paused",
        ]],
      ] as const
    ) {
      await t.step(`dunning ends as ${result}`, async () => {
        const subId = await purchase(env);
        const early = await control(
          sandbox,
          `/_sandbox/subscriptions/${subId}/dunning_exhausted`,
          { result },
        );
        assert.equal(early.status, 400, "only a past_due subscription");
        await life(sandbox, subId, "renew", { outcome: "failed" });
        await received(env);
        await life(sandbox, subId, "dunning_exhausted", { result });
        assert.deepEqual(types(await received(env)), expected);
        const sub = await stripe.subscriptions.retrieve(subId);
        assert.equal(sub.status, result);
        if (result === "canceled") {
          assert.equal(sub.cancellation_details?.reason, "payment_failed");
          assert.ok(sub.ended_at !== null);
        }
        const invoice = await stripe.invoices.retrieve(
          String(sub.latest_invoice),
        );
        assert.equal(invoice.status, "open");
        assert.equal(invoice.next_payment_attempt, null);
      });
    }

    await t.step("an unpaid subscription recovers to active", async () => {
      const [sub] = (await stripe.subscriptions.list({ status: "unpaid" }))
        .data;
      await life(sandbox, sub.id, "recover");
      assert.equal(
        (await stripe.subscriptions.retrieve(sub.id)).status,
        "active",
      );
    });
  });
});

Deno.test("stripe sandbox cancels through the API", async (t) => {
  await withEnv(async (env) => {
    const { sandbox, stripe } = env;

    await t.step("cancel at period end, then the period ends", async () => {
      const subId = await purchase(env);
      const sub = await stripe.subscriptions.update(subId, {
        cancel_at_period_end: true,
      });
      assert.equal(sub.cancel_at, period(sub).end);
      assert.equal(sub.cancellation_details?.reason, "cancellation_requested");
      assert.deepEqual(types(await received(env)), [
        "customer.subscription.updated",
      ]);
      const kept = await stripe.subscriptions.retrieve(subId);
      assert.equal(kept.status, "active", "runs until the period ends");
      assert.equal(kept.cancel_at_period_end, true);
      await life(sandbox, subId, "advance");
      const events = await received(env);
      assert.deepEqual(types(events), ["customer.subscription.deleted"]);
      const ended = await stripe.subscriptions.retrieve(subId);
      assert.equal(ended.status, "canceled");
      assert.ok(ended.ended_at !== null);
      const again = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/advance`,
      );
      assert.equal(again.status, 400, "a canceled subscription stays canceled");
    });

    await t.step("cancel now sends .deleted at once", async () => {
      const subId = await purchase(env);
      const sub = await stripe.subscriptions.cancel(subId);
      assert.equal(sub.status, "canceled");
      assert.deepEqual(types(await received(env)), [
        "customer.subscription.deleted",
      ]);
      const renew = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/renew`,
      );
      assert.equal(renew.status, 400);
    });
  });
});

Deno.test("stripe sandbox disputes and refunds charges", async (t) => {
  await withEnv(async (env) => {
    const { sandbox, stripe } = env;

    await t.step("a refund's charge leads back to its invoice", async () => {
      const subId = await purchase(env);
      const done = await life(sandbox, subId, "refund");
      const events = await received(env);
      assert.deepEqual(types(events), ["charge.refunded", "refund.created"]);
      const charge = events[0].data.object as Stripe.Charge;
      assert.equal(charge.refunded, true);
      assert.equal(charge.amount_refunded, charge.amount);
      assert.ok(!("invoice" in charge), "a charge has no invoice since basil");
      const payments = await stripe.invoicePayments.list({
        payment: {
          type: "payment_intent",
          payment_intent: String(charge.payment_intent),
        },
      });
      assert.equal(payments.data.length, 1);
      const invoice = await stripe.invoices.retrieve(
        String(payments.data[0].invoice),
      );
      assert.equal(invoice.parent?.subscription_details?.subscription, subId);
      assert.equal(invoice.id, done.invoice?.id);
      assert.equal(invoice.status, "paid", "a refund leaves the invoice paid");
      const refund = await stripe.refunds.retrieve(String(done.refund?.id));
      assert.equal(refund.amount, charge.amount);
      assert.equal(
        (await stripe.subscriptions.retrieve(subId)).status,
        "active",
        "a refund alone does not change the subscription",
      );
      const twice = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/refund`,
      );
      assert.equal(twice.status, 400);
    });

    await t.step("a dispute on the latest paid invoice's charge", async () => {
      const subId = await purchase(env);
      await life(sandbox, subId, "renew", { outcome: "paid" });
      const renewal = (await stripe.subscriptions.retrieve(subId))
        .latest_invoice;
      await received(env);
      const done = await life(sandbox, subId, "dispute");
      const events = await received(env);
      assert.deepEqual(types(events), ["charge.dispute.created"]);
      const dispute = events[0].data.object as Stripe.Dispute;
      assert.equal(dispute.status, "needs_response");
      assert.equal(dispute.amount, 999);
      assert.equal(done.invoice?.id, renewal, "the newest paid invoice");
      const charge = await stripe.charges.retrieve(String(dispute.charge));
      assert.equal(charge.disputed, true);
      assert.equal(charge.status, "succeeded");
      const intent = await stripe.paymentIntents.retrieve(
        String(dispute.payment_intent),
      );
      assert.equal(intent.latest_charge, charge.id);
      assert.equal(intent.status, "succeeded");
      assert.equal(
        (await stripe.disputes.retrieve(dispute.id)).charge,
        charge.id,
      );
      assert.equal(
        (await stripe.subscriptions.retrieve(subId)).status,
        "active",
      );
      const refund = await control(
        sandbox,
        `/_sandbox/subscriptions/${subId}/refund`,
      );
      assert.equal(refund.status, 400);
      assert.equal(
        (refund.body.error as { code: string }).code,
        "charge_disputed",
      );
    });
  });
});

Deno.test("stripe sandbox deletes a customer", async (t) => {
  await withEnv(async (env) => {
    const { stripe } = env;
    const customer = await stripe.customers.create({ email: "gone@x.test" });
    const subId = await purchase(env, customer.id);

    await t.step("delete cancels its subscriptions", async () => {
      const deleted = await stripe.customers.del(customer.id);
      assert.deepEqual(deleted, {
        id: customer.id,
        object: "customer",
        deleted: true,
      });
      assert.deepEqual(types(await received(env)), [
        "customer.subscription.deleted",
        "customer.deleted",
      ]);
      assert.equal(
        (await stripe.subscriptions.retrieve(subId)).status,
        "canceled",
      );
    });

    await t.step("retrieve answers the deleted stub", async () => {
      const found = await stripe.customers.retrieve(customer.id);
      assert.equal(found.deleted, true);
    });

    await t.step("any other use is Stripe's No such customer", async () => {
      const update = await stripe.customers.update(customer.id, { name: "x" })
        .catch((e) => e);
      assert.ok(update instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(update.statusCode, 404);
      assert.equal(update.code, "resource_missing");
      assert.equal(update.message, `No such customer: '${customer.id}'`);
      const checkout = await stripe.checkout.sessions.create({
        mode: "subscription",
        success_url: "https://shop.example/success",
        customer: customer.id,
        line_items: [{ price: priceId("mc-java-4gb", "monthly"), quantity: 1 }],
      }).catch((e) => e);
      assert.ok(checkout instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(checkout.code, "resource_missing");
      assert.equal(checkout.param, "customer");
      const again = await stripe.customers.del(customer.id).catch((e) => e);
      assert.equal(again.statusCode, 404);
      assert.equal((await stripe.customers.list()).data.length, 0);
    });
  });
});

Deno.test("stripe sandbox embedded list URLs answer", async (t) => {
  await withEnv(async (env) => {
    const { sandbox, stripe } = env;
    const subId = await purchase(env);
    const sub = await stripe.subscriptions.retrieve(subId);
    const invoice = await stripe.invoices.retrieve(String(sub.latest_invoice));
    const get = async (url: string) => {
      const res = await fetch(`${sandbox.url}${url}`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      assert.equal(res.status, 200, url);
      return await res.json() as Stripe.ApiList<{ id: string }>;
    };

    await t.step("subscription items", async () => {
      const list = await get(sub.items.url);
      assert.deepEqual(list.data.map((i) => i.id), [sub.items.data[0].id]);
      assert.equal(list.url, sub.items.url);
      const item = await stripe.subscriptionItems.retrieve(
        sub.items.data[0].id,
      );
      assert.equal(item.subscription, subId);
    });

    await t.step("invoice lines", async () => {
      const list = await get(invoice.lines.url);
      assert.deepEqual(
        list.data,
        JSON.parse(JSON.stringify(invoice.lines.data)),
      );
      const lines = await stripe.invoices.listLineItems(invoice.id);
      assert.equal(lines.data[0].id, invoice.lines.data[0].id);
    });
  });
});

Deno.test("stripe sandbox state survives a restart", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "stripe-state-" });
  const stateFile = `${dir}/stripe-state.json`;
  const receiver = await startWebhookReceiver(WHSEC);
  const start = async () =>
    await startStripeSandbox({
      catalogue: await loadCatalogue(),
      secretKey: KEY,
      webhookSecret: WHSEC,
      webhookUrl: receiver.url,
      retryDelaysMs: [20],
      stateFile,
    });
  try {
    let sandbox = await start();
    let stripe = sandboxClient(sandbox, KEY);
    const env = () => ({ sandbox, stripe, receiver });
    const kept = await stripe.customers.create({ email: "kept@x.test" });
    const gone = await stripe.customers.create({ email: "gone@x.test" });
    await stripe.customers.del(gone.id);
    const subId = await purchase(env(), kept.id);
    const failed = await life(sandbox, subId, "renew", { outcome: "failed" });
    const created = await stripe.customers.create(
      { email: "idem@x.test" },
      { idempotencyKey: "restart-key" },
    );
    const eventsBefore = (await stripe.events.list({ limit: 100 })).data;
    await sandbox.close();

    await t.step("the file is private", async () => {
      assert.equal((await Deno.stat(stateFile)).mode! & 0o777, 0o600);
    });

    sandbox = await start();
    stripe = sandboxClient(sandbox, KEY);

    await t.step("customers and deletions are kept", async () => {
      const customer = await stripe.customers.retrieve(kept.id);
      assert.equal((customer as Stripe.Customer).email, "kept@x.test");
      assert.equal((await stripe.customers.retrieve(gone.id)).deleted, true);
    });

    await t.step("the subscription and its invoices are kept", async () => {
      const sub = await stripe.subscriptions.retrieve(subId);
      assert.equal(sub.status, "past_due");
      assert.equal(sub.latest_invoice, failed.invoice?.id);
      const payments = await stripe.invoicePayments.list({
        invoice: String(sub.latest_invoice),
      });
      assert.equal(payments.data.length, 1);
    });

    await t.step("events and idempotency records are kept", async () => {
      const events = (await stripe.events.list({ limit: 100 })).data;
      assert.deepEqual(events.map((e) => e.id), eventsBefore.map((e) => e.id));
      const again = await stripe.customers.create(
        { email: "idem@x.test" },
        { idempotencyKey: "restart-key" },
      );
      assert.equal(again.id, created.id);
      assert.deepEqual(
        (await stripe.customers.list()).data.map((c) => c.id).sort(),
        [kept.id, created.id].sort(),
        "the replay made no new customer",
      );
    });

    await t.step("the life goes on after the restart", async () => {
      await life(sandbox, subId, "recover");
      const renewed = await life(sandbox, subId, "renew", { outcome: "paid" });
      assert.equal(
        (await stripe.subscriptions.retrieve(subId)).status,
        "active",
      );
      const numbers = (await stripe.invoices.list({ customer: kept.id })).data
        .map((i) => i.number);
      assert.equal(new Set(numbers).size, 3, "invoice numbers never repeat");
      assert.equal(renewed.invoice?.number?.endsWith("-0003"), true);
    });
    await sandbox.close();

    await t.step("a damaged file stops the start with its path", async () => {
      await Deno.writeTextFile(stateFile, "{not json");
      await assert.rejects(
        start(),
        (e: Error) => e.message.includes(stateFile),
      );
    });
  } finally {
    await receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
