/**
 * The Stripe sandbox's customer portal through the real SDK and real HTTP: sessions
 * (unknown customer refused as Stripe does), the portal page, and its cancel and
 * resume actions under flexible billing (`cancel_at` at the period end).
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
  withSandbox,
} from "../local/stripe-sandbox/testing.ts";

const PRICE = priceId("mc-java-4gb", "monthly");
const RETURN_URL = "https://shop.example/account";

function updates(env: SandboxEnv, subId: string) {
  return receivedEvents(env.receiver, "customer.subscription.updated", subId);
}

Deno.test("stripe sandbox portal sessions", async (t) => {
  await withSandbox(QUICK_SANDBOX, async ({ stripe, sandbox }) => {
    await t.step("an unknown customer is 400 resource_missing", async () => {
      await assert.rejects(
        stripe.billingPortal.sessions.create({
          customer: "cus_nobody",
          return_url: RETURN_URL,
        }),
        (e: unknown) =>
          e instanceof Stripe.errors.StripeInvalidRequestError &&
          e.statusCode === 400 && e.code === "resource_missing" &&
          e.param === "customer" &&
          e.message === "No such customer: 'cus_nobody'",
      );
    });

    await t.step("a session points at the portal page", async () => {
      const sub = await subscribe(sandbox, stripe, PRICE);
      const session = await stripe.billingPortal.sessions.create({
        customer: String(sub.customer),
        return_url: RETURN_URL,
      });
      assert.equal(session.object, "billing_portal.session");
      assert.equal(session.return_url, RETURN_URL);
      assert.equal(session.url, `${sandbox.url}/_sandbox/portal/${session.id}`);
      const configuration = await stripe.billingPortal.configurations.retrieve(
        String(session.configuration),
      );
      assert.equal(configuration.is_default, true);
      const page = await fetch(session.url);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(html, /Minecraft Java 4 GB: 9\.99 USD \/ month/);
      assert.match(html, /Cancel plan/);
      assert.ok(html.includes(`href="${RETURN_URL}"`));
    });

    await t.step("the configuration decides what cancel does", async () => {
      const sub = await subscribe(sandbox, stripe, PRICE, "ki@example.com");
      const closed = await stripe.billingPortal.configurations.create({
        features: { subscription_cancel: { enabled: false } },
      });
      assert.equal(closed.features.subscription_cancel.enabled, false);
      const noCancel = await stripe.billingPortal.sessions.create({
        customer: String(sub.customer),
        configuration: closed.id,
      });
      assert.doesNotMatch(await (await fetch(noCancel.url)).text(), /Cancel/);
      const refused = await fetch(
        `${sandbox.url}/_sandbox/billing_portal/sessions/${noCancel.id}/cancel`,
        { method: "POST" },
      );
      await refused.body?.cancel();
      assert.equal(refused.status, 400);
      assert.equal(
        (await stripe.subscriptions.retrieve(sub.id)).cancel_at,
        null,
      );
      const now = await stripe.billingPortal.configurations.create({
        features: {
          subscription_cancel: {
            enabled: true,
            mode: "immediately",
            cancellation_reason: { enabled: true, options: ["too_expensive"] },
          },
        },
      });
      assert.deepEqual(now.features.subscription_cancel.cancellation_reason, {
        enabled: true,
        options: ["too_expensive"],
      });
      const immediate = await stripe.billingPortal.sessions.create({
        customer: String(sub.customer),
        configuration: now.id,
      });
      await sandboxControl(
        sandbox,
        `/_sandbox/billing_portal/sessions/${immediate.id}/cancel`,
      );
      assert.equal(
        (await stripe.subscriptions.retrieve(sub.id)).status,
        "canceled",
      );
    });

    await t.step(
      "a flow names one of the customer's subscriptions",
      async () => {
        const sub = await subscribe(sandbox, stripe, PRICE, "bo@example.com");
        const session = await stripe.billingPortal.sessions.create({
          customer: String(sub.customer),
          flow_data: {
            type: "subscription_cancel",
            subscription_cancel: { subscription: sub.id },
          },
        });
        assert.equal(session.flow?.type, "subscription_cancel");
        assert.equal(session.flow?.subscription_cancel?.subscription, sub.id);
        await assert.rejects(
          stripe.billingPortal.sessions.create({
            customer: String(sub.customer),
            flow_data: {
              type: "subscription_cancel",
              subscription_cancel: { subscription: "sub_other" },
            },
          }),
          (e: unknown) =>
            e instanceof Stripe.errors.StripeInvalidRequestError &&
            e.param === "flow_data[subscription_cancel][subscription]",
        );
      },
    );
  });
});

Deno.test("stripe sandbox portal cancels and resumes", async (t) => {
  await withSandbox(QUICK_SANDBOX, async (env) => {
    const { stripe, sandbox } = env;
    const sub = await subscribe(sandbox, stripe, PRICE);
    const end = sub.items.data[0].current_period_end;
    const session = await stripe.billingPortal.sessions.create({
      customer: String(sub.customer),
      return_url: RETURN_URL,
    });
    const base = `/_sandbox/billing_portal/sessions/${session.id}`;

    await t.step("cancel sets cancel_at to the period end", async () => {
      await sandboxControl(sandbox, `${base}/cancel`, {
        feedback: "too_expensive",
      });
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.cancel_at, end);
      assert.equal(now.cancel_at_period_end, false);
      assert.equal(now.status, "active");
      assert.equal(now.cancellation_details?.reason, "cancellation_requested");
      assert.equal(now.cancellation_details?.feedback, "too_expensive");
      await sandbox.idle();
      const event = updates(env, sub.id).at(-1)!;
      const object = event.data.object as Stripe.Subscription;
      assert.equal(object.cancel_at, end);
      assert.equal(
        (event.data.previous_attributes as Partial<Stripe.Subscription>)
          .cancel_at,
        null,
      );
      const html = await (await fetch(session.url)).text();
      assert.match(html, /resume/);
    });

    await t.step("resume clears cancel_at", async () => {
      await sandboxControl(sandbox, `${base}/resume`);
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.cancel_at, null);
      assert.equal(now.cancel_at_period_end, false);
      assert.equal(now.cancellation_details?.reason, null);
      await sandbox.idle();
      const event = updates(env, sub.id).at(-1)!;
      assert.equal(
        (event.data.previous_attributes as Partial<Stripe.Subscription>)
          .cancel_at,
        end,
      );
    });

    await t.step("the page's button cancels and comes back", async () => {
      const res = await fetch(`${sandbox.url}${base}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ subscription: sub.id }),
        redirect: "manual",
      });
      await res.body?.cancel();
      assert.equal(res.status, 303);
      assert.equal(
        res.headers.get("location"),
        `/_sandbox/portal/${session.id}`,
      );
      assert.equal(
        (await stripe.subscriptions.retrieve(sub.id)).cancel_at,
        end,
      );
    });

    await t.step("the period's end then deletes the subscription", async () => {
      await sandboxControl(
        sandbox,
        `/_sandbox/subscriptions/${sub.id}/advance`,
      );
      const now = await stripe.subscriptions.retrieve(sub.id);
      assert.equal(now.status, "canceled");
    });

    await t.step("several subscriptions need the one meant", async () => {
      const first = await subscribe(sandbox, stripe, PRICE, "cy@example.com");
      const checkout = await stripe.checkout.sessions.create({
        mode: "subscription",
        success_url: "https://shop.example/success",
        customer: String(first.customer),
        line_items: [{ price: PRICE, quantity: 1 }],
      });
      await sandboxControl(
        sandbox,
        `/_sandbox/checkout/sessions/${checkout.id}/complete`,
      );
      const portal = await stripe.billingPortal.sessions.create({
        customer: String(first.customer),
      });
      const cancel = (body: unknown) =>
        fetch(
          `${sandbox.url}/_sandbox/billing_portal/sessions/${portal.id}/cancel`,
          {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          },
        );
      const res = await cancel({});
      const body = await res.json();
      assert.equal(res.status, 400);
      assert.equal(body.error.param, "subscription");
      const chosen = await cancel({ subscription: first.id });
      await chosen.body?.cancel();
      assert.equal(chosen.status, 200);
      const subs = await stripe.subscriptions.list({
        customer: String(first.customer),
      });
      assert.deepEqual(
        subs.data.map((s) => [s.id, s.cancel_at !== null]).sort(),
        subs.data.map((s) => [s.id, s.id === first.id]).sort(),
      );
    });
  });
});
