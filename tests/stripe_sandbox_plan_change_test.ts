/**
 * Plan changes in the Stripe sandbox, through the real SDK: price changes with
 * prorations and payment behaviours (pending updates paid, declined, expired, paid
 * later), the invoice preview against what the update then charges, and
 * subscription schedules for a change at the period's end.
 */
import assert from "node:assert/strict";
import Stripe from "stripe";
import { priceId } from "../local/catalogue.ts";
import {
  QUICK_SANDBOX,
  receivedEvents,
  sandboxControl,
  type SandboxEnv,
  subscribe,
  upgradeNow,
  withSandbox,
} from "../local/stripe-sandbox/testing.ts";

const SMALL = priceId("mc-java-2gb", "monthly");
const MEDIUM = priceId("mc-java-4gb", "monthly");
const LARGE = priceId("mc-java-8gb", "monthly");
const YEARLY = priceId("mc-java-8gb", "yearly");

function received(env: SandboxEnv, type: string, objectId: string) {
  return receivedEvents(env.receiver, type, objectId);
}

/** What Stripe prorates: the old price's unused time back, the new one's charged. */
async function expectedProration(
  stripe: Stripe,
  sub: Stripe.Subscription,
  to: string,
  at: number,
): Promise<[number, number]> {
  const item = sub.items.data[0];
  const share = (item.current_period_end - at) /
    (item.current_period_end - item.current_period_start);
  const next = await stripe.prices.retrieve(to);
  return [
    -Math.round(item.price.unit_amount! * share),
    Math.round(next.unit_amount! * share),
  ];
}

async function setCard(
  env: SandboxEnv,
  customer: string,
  outcome: "succeeds" | "declines",
) {
  await sandboxControl(
    env.sandbox,
    `/_sandbox/customers/${customer}/payment_method`,
    { outcome },
  );
}

/** A settled change: the item's price, no pending update, one `event` about it. */
async function assertSettled(
  env: SandboxEnv,
  subId: string,
  price: string,
  event: string,
) {
  const after = await env.stripe.subscriptions.retrieve(subId);
  assert.equal(after.items.data[0].price.id, price);
  assert.equal(after.pending_update, null);
  await env.sandbox.idle();
  assert.equal(received(env, event, subId).length, 1);
}

function upgrade(
  stripe: Stripe,
  sub: Stripe.Subscription,
  extra: Stripe.SubscriptionUpdateParams = {},
  idempotencyKey?: string,
) {
  return upgradeNow(stripe, sub, LARGE, extra, idempotencyKey);
}

Deno.test("stripe sandbox upgrades with pending_if_incomplete", async (t) => {
  await withSandbox(QUICK_SANDBOX, async (env) => {
    const { stripe, sandbox } = env;

    await t.step("paid at once: applied, invoiced and announced", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM);
      // Not a whole day: Stripe prorates by the second
      const at = sub.items.data[0].current_period_start + 3 * 86_400 + 4321;
      const updated = await upgrade(stripe, sub, { proration_date: at });
      assert.equal(updated.items.data.length, 1);
      assert.equal(updated.items.data[0].id, sub.items.data[0].id);
      assert.equal(updated.items.data[0].price.id, LARGE);
      assert.equal(updated.pending_update, null);
      const invoice = await stripe.invoices.retrieve(
        String(updated.latest_invoice),
      );
      assert.equal(invoice.billing_reason, "subscription_update");
      assert.equal(invoice.status, "paid");
      assert.equal(invoice.parent?.subscription_details?.subscription, sub.id);
      const [credit, debit] = await expectedProration(stripe, sub, LARGE, at);
      assert.deepEqual(
        invoice.lines.data.map((l) => [
          l.amount,
          l.parent?.subscription_item_details?.proration,
          l.pricing?.price_details?.price,
        ]),
        [[credit, true, MEDIUM], [debit, true, LARGE]],
      );
      assert.equal(invoice.amount_paid, credit + debit);
      await sandbox.idle();
      const change = received(env, "customer.subscription.updated", sub.id)
        .at(-1)!;
      const before = change.data.previous_attributes as {
        items: Stripe.ApiList<Stripe.SubscriptionItem>;
      };
      assert.deepEqual(
        before.items.data.map((i) => i.price.id),
        [MEDIUM],
      );
      assert.equal(
        received(env, "customer.subscription.pending_update_applied", sub.id)
          .length,
        1,
      );
    });

    await t.step(
      "declined: the old price stays, the change waits, then expires",
      async () => {
        const sub = await subscribe(sandbox, stripe, MEDIUM, "bo@example.com");
        await setCard(env, String(sub.customer), "declines");
        const started = Math.floor(Date.now() / 1000);
        const updated = await upgrade(stripe, sub);
        assert.equal(updated.items.data[0].price.id, MEDIUM);
        assert.equal(updated.status, "active");
        const pending = updated.pending_update!;
        assert.deepEqual(
          pending.subscription_items?.map((i) => i.price.id),
          [LARGE],
        );
        assert.ok(pending.expires_at > started);
        assert.ok(pending.expires_at <= started + 23 * 3600 + 5);
        const invoice = await stripe.invoices.retrieve(
          String(updated.latest_invoice),
        );
        assert.equal(invoice.status, "open");
        assert.equal(invoice.billing_reason, "subscription_update");
        await sandbox.idle();
        assert.equal(
          received(env, "invoice.payment_failed", invoice.id!).length,
          1,
        );
        assert.equal(
          received(env, "customer.subscription.pending_update_applied", sub.id)
            .length,
          0,
        );
        await sandboxControl(
          sandbox,
          `/_sandbox/subscriptions/${sub.id}/expire_pending_update`,
        );
        await assertSettled(
          env,
          sub.id,
          MEDIUM,
          "customer.subscription.pending_update_expired",
        );
      },
    );

    await t.step("declined, then paid before expiry: applied", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "cy@example.com");
      await setCard(env, String(sub.customer), "declines");
      const updated = await upgrade(stripe, sub);
      const invoiceId = String(updated.latest_invoice);
      await assert.rejects(
        stripe.invoices.pay(invoiceId),
        (e: unknown) =>
          e instanceof Stripe.errors.StripeCardError &&
          e.code === "card_declined",
      );
      await setCard(env, String(sub.customer), "succeeds");
      const paid = await stripe.invoices.pay(invoiceId);
      assert.equal(paid.status, "paid");
      await assertSettled(
        env,
        sub.id,
        LARGE,
        "customer.subscription.pending_update_applied",
      );
    });

    await t.step("only Stripe's parameters go beside it", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "di@example.com");
      await assert.rejects(
        upgrade(stripe, sub, { metadata: { plan: "large" } }),
        (e: unknown) =>
          e instanceof Stripe.errors.StripeInvalidRequestError &&
          e.statusCode === 400 && e.param === "metadata",
      );
      const after = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(after.items.data[0].price.id, MEDIUM);
      assert.equal(after.latest_invoice, sub.latest_invoice);
    });
  });
});

Deno.test("stripe sandbox price changes follow payment and proration behaviour", async (t) => {
  await withSandbox(QUICK_SANDBOX, async (env) => {
    const { stripe, sandbox } = env;

    await t.step(
      "error_if_incomplete declined: 402, nothing changes",
      async () => {
        const sub = await subscribe(sandbox, stripe, MEDIUM);
        await setCard(env, String(sub.customer), "declines");
        const invoices =
          (await stripe.invoices.list({ limit: 100 })).data.length;
        await assert.rejects(
          upgrade(stripe, sub, { payment_behavior: "error_if_incomplete" }),
          (e: unknown) =>
            e instanceof Stripe.errors.StripeCardError && e.statusCode === 402,
        );
        const after = await stripe.subscriptions.retrieve(sub.id);
        assert.equal(after.items.data[0].price.id, MEDIUM);
        assert.equal(
          (await stripe.invoices.list({ limit: 100 })).data.length,
          invoices,
        );
      },
    );

    await t.step(
      "create_prorations: the lines wait for the renewal",
      async () => {
        const sub = await subscribe(sandbox, stripe, MEDIUM, "ed@example.com");
        const at = sub.items.data[0].current_period_start + 86_400;
        const updated = await stripe.subscriptions.update(sub.id, {
          items: [{ id: sub.items.data[0].id, price: LARGE }],
          proration_date: at,
        });
        assert.equal(updated.latest_invoice, sub.latest_invoice);
        assert.equal(updated.items.data[0].price.id, LARGE);
        const renewed = await sandboxControl(
          sandbox,
          `/_sandbox/subscriptions/${sub.id}/renew`,
        );
        const invoice = renewed.invoice as Stripe.Invoice;
        const [credit, debit] = await expectedProration(stripe, sub, LARGE, at);
        const large = await stripe.prices.retrieve(LARGE);
        assert.deepEqual(
          invoice.lines.data.map((l) => [
            l.amount,
            l.parent?.subscription_item_details?.proration,
          ]),
          [[credit, true], [debit, true], [large.unit_amount, false]],
        );
      },
    );

    await t.step("an Idempotency-Key replays the change once", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "ib@example.com");
      const key = crypto.randomUUID();
      const first = await upgrade(stripe, sub, {}, key);
      const again = await upgrade(stripe, sub, {}, key);
      assert.equal(again.latest_invoice, first.latest_invoice);
      // The replay answers the first request's response, request id included.
      assert.equal(again.lastResponse.requestId, first.lastResponse.requestId);
      const invoices = await stripe.invoices.list({
        customer: String(sub.customer),
      });
      assert.equal(
        invoices.data.filter((i) => i.billing_reason === "subscription_update")
          .length,
        1,
      );
    });

    await t.step("what the sandbox does not model is refused", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "jo@example.com");
      for (
        const [params, param] of [
          [
            { items: [{ id: sub.items.data[0].id, price: YEARLY }] },
            "items[0][price]",
          ],
          [{ trial_end: sub.items.data[0].current_period_end }, "trial_end"],
        ] as [Stripe.SubscriptionUpdateParams, string][]
      ) {
        await assert.rejects(
          stripe.subscriptions.update(sub.id, params),
          (e: unknown) =>
            e instanceof Stripe.errors.StripeInvalidRequestError &&
            e.statusCode === 400 && e.param === param,
        );
      }
      const after = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(after.items.data[0].price.id, MEDIUM);
    });

    await t.step("without the item's id a second item is added", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "fa@example.com");
      const updated = await stripe.subscriptions.update(sub.id, {
        items: [{ price: LARGE }],
        proration_behavior: "none",
      });
      assert.deepEqual(
        updated.items.data.map((i) => i.price.id),
        [MEDIUM, LARGE],
      );
    });

    await t.step("the preview shows what the update charges", async () => {
      const sub = await subscribe(sandbox, stripe, MEDIUM, "gu@example.com");
      const at = sub.items.data[0].current_period_start + 10 * 86_400;
      const details = {
        items: [{ id: sub.items.data[0].id, price: LARGE }],
        proration_behavior: "always_invoice" as const,
        proration_date: at,
      };
      const preview = await stripe.invoices.createPreview({
        customer: String(sub.customer),
        subscription: sub.id,
        subscription_details: details,
      });
      assert.equal(preview.id, undefined);
      const prorations = preview.lines.data.filter((l) =>
        l.parent?.subscription_item_details?.proration
      );
      assert.equal(prorations.length, 2);
      const untouched = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(untouched.items.data[0].price.id, MEDIUM);
      const updated = await upgrade(stripe, sub, {
        proration_date: at,
        payment_behavior: "allow_incomplete",
      });
      const invoice = await stripe.invoices.retrieve(
        String(updated.latest_invoice),
      );
      assert.deepEqual(
        invoice.lines.data.map((l) => l.amount),
        prorations.map((l) => l.amount),
      );
      assert.equal(invoice.amount_paid, preview.amount_due);
      const next = await stripe.invoices.createPreview({
        customer: String(sub.customer),
        subscription: sub.id,
        subscription_details: {
          items: [{ id: sub.items.data[0].id, price: SMALL }],
          proration_behavior: "none",
        },
      });
      const small = await stripe.prices.retrieve(SMALL);
      assert.deepEqual(next.lines.data.map((l) => l.amount), [
        small.unit_amount,
      ]);
      // The next renewal bills the period after the current one.
      assert.equal(
        next.lines.data[0].period.start,
        sub.items.data[0].current_period_end,
      );
    });
  });
});

Deno.test("stripe sandbox schedules a downgrade for the period's end", async (t) => {
  await withSandbox(QUICK_SANDBOX, async (env) => {
    const { stripe, sandbox } = env;
    const sub = await subscribe(sandbox, stripe, MEDIUM);
    const item = sub.items.data[0];
    let schedule = await stripe.subscriptionSchedules.create({
      from_subscription: sub.id,
    });

    await t.step("nothing changes until the period ends", async () => {
      schedule = await stripe.subscriptionSchedules.update(schedule.id, {
        phases: [
          {
            items: [{ price: MEDIUM, quantity: 1 }],
            start_date: item.current_period_start,
            end_date: item.current_period_end,
          },
          {
            items: [{ price: SMALL, quantity: 1 }],
            duration: { interval: "month", interval_count: 1 },
            proration_behavior: "none",
          },
        ],
        end_behavior: "release",
      });
      assert.equal(schedule.phases.length, 2);
      assert.equal(schedule.phases[1].start_date, item.current_period_end);
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.schedule, schedule.id);
      assert.equal(now.items.data[0].price.id, MEDIUM);
      assert.equal(now.latest_invoice, sub.latest_invoice);
    });

    await t.step("cancellation changes are refused until release", async () => {
      for (
        const params of [
          { cancel_at_period_end: true },
          { cancel_at: item.current_period_end },
        ]
      ) {
        await assert.rejects(
          stripe.subscriptions.update(sub.id, params),
          (e: unknown) =>
            e instanceof Stripe.errors.StripeInvalidRequestError &&
            e.statusCode === 400 &&
            e.message.includes(`subscription schedule \`${schedule.id}\``),
        );
      }
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.cancel_at, null);
      assert.equal(now.cancel_at_period_end, false);
    });

    await t.step("the renewal bills the new price", async () => {
      const renewed = await sandboxControl(
        sandbox,
        `/_sandbox/subscriptions/${sub.id}/renew`,
      );
      const invoice = renewed.invoice as Stripe.Invoice;
      const small = await stripe.prices.retrieve(SMALL);
      assert.equal(invoice.amount_due, small.unit_amount);
      assert.deepEqual(
        invoice.lines.data.map((l) => l.pricing?.price_details?.price),
        [SMALL],
      );
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.items.data[0].price.id, SMALL);
      assert.equal(now.schedule, schedule.id);
      await sandbox.idle();
      const change = received(env, "customer.subscription.updated", sub.id)
        .at(-1)!;
      const before = change.data.previous_attributes as {
        items: Stripe.ApiList<Stripe.SubscriptionItem>;
      };
      assert.deepEqual(before.items.data.map((i) => i.price.id), [MEDIUM]);
      assert.equal(
        received(env, "subscription_schedule.updated", schedule.id).length,
        2,
      );
    });

    await t.step("after the last phase the schedule is released", async () => {
      await sandboxControl(sandbox, `/_sandbox/subscriptions/${sub.id}/renew`);
      const released = await stripe.subscriptionSchedules.retrieve(
        schedule.id,
      );
      assert.equal(released.status, "released");
      assert.equal(released.released_subscription, sub.id);
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.schedule, null);
      assert.equal(now.items.data[0].price.id, SMALL);
      await sandbox.idle();
      assert.equal(
        received(env, "subscription_schedule.released", schedule.id).length,
        1,
      );
      const canceling = await stripe.subscriptions.update(sub.id, {
        cancel_at_period_end: true,
      });
      assert.equal(canceling.cancel_at_period_end, true);
    });

    await t.step("release lets cancellation through at once", async () => {
      const other = await subscribe(sandbox, stripe, MEDIUM, "ha@example.com");
      const made = await stripe.subscriptionSchedules.create({
        from_subscription: other.id,
      });
      await stripe.subscriptionSchedules.release(made.id);
      const now = await stripe.subscriptions.update(other.id, {
        cancel_at_period_end: true,
      });
      assert.equal(now.schedule, null);
      assert.equal(now.cancel_at_period_end, true);
    });
  });
});
