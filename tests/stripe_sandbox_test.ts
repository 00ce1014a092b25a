import assert from "node:assert/strict";
import Stripe from "stripe";
import {
  catalogPrices,
  loadCatalogue,
  priceId,
  productId,
} from "../local/catalogue.ts";
import {
  startStripeSandbox,
  type StripeSandbox,
} from "../local/stripe-sandbox/mod.ts";
import { parseForm } from "../local/stripe-sandbox/_form.ts";
import { sandboxClient } from "../local/stripe-sandbox/testing.ts";

const KEY = "sk_test_local_0123456789abcdef";
const WHSEC = "whsec_local_test_secret";

async function withSandbox(
  fn: (sandbox: StripeSandbox, stripe: Stripe) => Promise<void>,
): Promise<void> {
  const sandbox = await startStripeSandbox({
    catalogue: await loadCatalogue(),
    secretKey: KEY,
    webhookSecret: WHSEC,
  });
  try {
    await fn(sandbox, sandboxClient(sandbox, KEY));
  } finally {
    await sandbox.close();
  }
}

function sessionParams(
  overrides: Partial<Stripe.Checkout.SessionCreateParams> = {},
): Stripe.Checkout.SessionCreateParams {
  return {
    mode: "subscription",
    success_url: "https://shop.example/success?session={CHECKOUT_SESSION_ID}",
    cancel_url: "https://shop.example/cancel",
    line_items: [{ price: priceId("mc-java-4gb", "monthly"), quantity: 1 }],
    client_reference_id: "order-1",
    customer_email: "ada@example.com",
    metadata: { order_id: "order-1" },
    subscription_data: {
      metadata: { order_id: "order-1", plan_id: "mc-java-4gb" },
    },
    ...overrides,
  };
}

/** Runs `fn`, expects the SDK to throw `type`, and returns the error. */
async function rejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, nothing was thrown`);
}

function manyKeys(n: number): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`k${i}`, "v"]),
  );
}

Deno.test("stripe sandbox form parser reads Stripe's encoding", () => {
  assert.deepEqual(
    parseForm(
      "mode=subscription&line_items[0][price]=p1&line_items[1][price]=p2&line_items[0][quantity]=2" +
        "&metadata[a%20b]=x%26y&expand[]=customer&expand[]=invoice&subscription_data[metadata][k]=v",
    ),
    {
      mode: "subscription",
      line_items: [{ price: "p1", quantity: "2" }, { price: "p2" }],
      metadata: { "a b": "x&y" },
      expand: ["customer", "invoice"],
      subscription_data: { metadata: { k: "v" } },
    },
  );
  assert.deepEqual(parseForm("line_items%5B0%5D%5Bprice%5D=p"), {
    line_items: [{ price: "p" }],
  });
  assert.equal(
    Object.getPrototypeOf(parseForm("__proto__[x]=1")),
    Object.prototype,
  );
});

Deno.test("stripe sandbox serves the catalogue", async (t) => {
  const catalogue = await loadCatalogue();
  await withSandbox(async (_sandbox, stripe) => {
    await t.step(
      "every catalogue price is retrievable with its amount",
      async () => {
        for (
          const { plan, term, amount, priceId: id } of catalogPrices(catalogue)
        ) {
          const price = await stripe.prices.retrieve(id);
          assert.equal(price.id, id);
          assert.equal(price.object, "price");
          assert.equal(price.unit_amount, amount);
          assert.equal(price.currency, catalogue.currency);
          assert.equal(price.type, "recurring");
          assert.equal(price.product, productId(plan.id));
          assert.equal(price.active, plan.active);
          assert.deepEqual(
            {
              interval: price.recurring?.interval,
              count: price.recurring?.interval_count,
            },
            {
              interval: catalogue.terms[term].interval,
              count: catalogue.terms[term].interval_count,
            },
          );
          assert.equal(price.livemode, false);
        }
      },
    );

    await t.step(
      "an inactive plan has an inactive product and prices",
      async () => {
        const retired = catalogue.plans.find((p) => !p.active);
        assert.ok(retired);
        const product = await stripe.products.retrieve(productId(retired.id));
        assert.equal(product.active, false);
        const prices = await stripe.prices.list({
          product: product.id,
          limit: 100,
        });
        assert.ok(prices.data.length > 0);
        assert.ok(prices.data.every((p) => !p.active));
      },
    );

    await t.step("lists filter by product and active", async () => {
      const total = catalogPrices(catalogue).length;
      const all = await stripe.prices.list({ limit: 100 });
      assert.equal(all.data.length, total);
      const active = await stripe.prices.list({ active: true, limit: 100 });
      assert.equal(
        active.data.length,
        catalogPrices(catalogue).filter((p) => p.plan.active).length,
      );
      const one = await stripe.prices.list({
        product: productId("mc-java-4gb"),
      });
      assert.deepEqual(
        one.data.map((p) => p.id).sort(),
        ["monthly", "quarterly", "yearly"].map((t) => `price_mc_java_4gb_${t}`)
          .sort(),
      );
      const page1 = await stripe.prices.list({ limit: 2 });
      assert.equal(page1.data.length, 2);
      assert.equal(page1.has_more, true);
      const page2 = await stripe.prices.list({
        limit: 100,
        starting_after: page1.data[1].id,
      });
      assert.equal(page2.data.length, total - 2);
      assert.equal(page2.has_more, false);
    });

    await t.step("auto-pagination walks every page", async () => {
      const ids: string[] = [];
      for await (const price of stripe.prices.list({ limit: 3 })) {
        ids.push(price.id);
      }
      assert.equal(new Set(ids).size, catalogPrices(catalogue).length);
    });

    await t.step("prices and products can be created", async () => {
      const product = await stripe.products.create({
        name: "Add-on",
        metadata: { a: "b" },
      });
      assert.match(product.id, /^prod_/);
      const once = await stripe.prices.create({
        product: product.id,
        unit_amount: 500,
        currency: "usd",
      });
      assert.equal(once.type, "one_time");
      assert.equal(once.recurring, null);
      const weekly = await stripe.prices.create({
        product: product.id,
        unit_amount: 100,
        currency: "usd",
        recurring: { interval: "week", interval_count: 2 },
      });
      assert.equal(weekly.type, "recurring");
      assert.equal(weekly.recurring?.interval_count, 2);
      const err = await rejects(
        () =>
          stripe.prices.create({
            product: "prod_nope",
            unit_amount: 1,
            currency: "usd",
          }),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.code, "resource_missing");
      assert.equal(err.param, "product");
    });
  });
});

Deno.test("stripe sandbox customers", async (t) => {
  await withSandbox(async (_sandbox, stripe) => {
    const created = await stripe.customers.create({
      email: "ada@example.com",
      name: "Ada",
      metadata: { user_id: "u1" },
    });
    await t.step("create echoes the fields", () => {
      assert.match(created.id, /^cus_/);
      assert.equal(created.object, "customer");
      assert.equal(created.email, "ada@example.com");
      assert.equal(created.name, "Ada");
      assert.deepEqual(created.metadata, { user_id: "u1" });
    });

    await t.step("retrieve, update and list by email", async () => {
      assert.deepEqual(await stripe.customers.retrieve(created.id), created);
      const updated = await stripe.customers.update(created.id, {
        name: "Ada L.",
        metadata: { user_id: "", plan: "x" },
      });
      assert.equal(updated.name, "Ada L.");
      assert.deepEqual(updated.metadata, { plan: "x" });
      await stripe.customers.create({ email: "bob@example.com" });
      const list = await stripe.customers.list({ email: "ada@example.com" });
      assert.deepEqual(list.data.map((c) => c.id), [created.id]);
      const all = await stripe.customers.list({ limit: 1 });
      assert.equal(all.data.length, 1);
      assert.equal(all.has_more, true);
      assert.equal(all.data[0].email, "bob@example.com", "newest first");
    });

    await t.step("search by email and metadata", async () => {
      const found = await stripe.customers.search({
        query: "email:'ada@example.com' AND metadata['plan']:'x'",
      });
      assert.deepEqual(found.data.map((c) => c.id), [created.id]);
      const none = await stripe.customers.search({
        query: "metadata['plan']:'y'",
      });
      assert.equal(none.data.length, 0);
    });

    await t.step("an unknown id is Stripe's 404", async () => {
      const err = await rejects(
        () => stripe.customers.retrieve("cus_x"),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.statusCode, 404);
      assert.equal(err.code, "resource_missing");
      assert.equal(err.param, "id");
      assert.equal(err.message, "No such customer: 'cus_x'");
    });

    await t.step("an unknown parameter is rejected", async () => {
      const err = await rejects(
        () =>
          stripe.customers.create(
            { emial: "x" } as Stripe.CustomerCreateParams,
          ),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.code, "parameter_unknown");
      assert.equal(err.param, "emial");
    });
  });
});

Deno.test("stripe sandbox checkout session create", async (t) => {
  await withSandbox(async (sandbox, stripe) => {
    await t.step("happy path echoes the fields", async () => {
      const session = await stripe.checkout.sessions.create(sessionParams());
      assert.match(session.id, /^cs_test_/);
      assert.equal(session.object, "checkout.session");
      assert.equal(session.mode, "subscription");
      assert.equal(session.status, "open");
      assert.equal(session.payment_status, "unpaid");
      assert.equal(session.customer, null);
      assert.equal(session.customer_email, "ada@example.com");
      assert.equal(session.client_reference_id, "order-1");
      assert.deepEqual(session.metadata, { order_id: "order-1" });
      assert.equal(session.subscription, null);
      assert.equal(session.invoice, null);
      assert.equal(session.amount_total, 999);
      assert.equal(session.currency, "usd");
      assert.equal(session.url, `${sandbox.url}/_sandbox/pay/${session.id}`);
      assert.ok(session.expires_at > session.created + 3600);
      assert.equal(session.livemode, false);
      assert.deepEqual(
        await stripe.checkout.sessions.retrieve(session.id),
        session,
      );
      const items = await stripe.checkout.sessions.listLineItems(session.id);
      assert.equal(items.data.length, 1);
      assert.equal(items.data[0].price?.id, "price_mc_java_4gb_monthly");
      assert.equal(items.data[0].quantity, 1);
      const page = await fetch(session.url!);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /value="paid"/);
    });

    await t.step("an existing customer can be given", async () => {
      const customer = await stripe.customers.create({
        email: "c@example.com",
      });
      const session = await stripe.checkout.sessions.create(
        sessionParams({ customer: customer.id, customer_email: undefined }),
      );
      assert.equal(session.customer, customer.id);
      const expanded = await stripe.checkout.sessions.retrieve(session.id, {
        expand: ["customer", "line_items"],
      });
      assert.equal(
        (expanded.customer as Stripe.Customer).email,
        "c@example.com",
      );
      assert.equal(expanded.line_items?.data[0].price?.unit_amount, 999);
    });

    const rejections: [
      string,
      Partial<Stripe.Checkout.SessionCreateParams>,
      string,
      string | undefined,
    ][] = [
      [
        "unknown price",
        { line_items: [{ price: "price_nope", quantity: 1 }] },
        "line_items[0][price]",
        "resource_missing",
      ],
      [
        "inactive price",
        {
          line_items: [{
            price: priceId("mc-java-1gb-legacy", "monthly"),
            quantity: 1,
          }],
        },
        "line_items[0][price]",
        undefined,
      ],
      [
        "missing success_url",
        { success_url: undefined },
        "success_url",
        "parameter_missing",
      ],
      ["missing mode", { mode: undefined }, "mode", "parameter_missing"],
      [
        "ui_mode hosted (not an endive value)",
        { ui_mode: "hosted" as "hosted_page" },
        "ui_mode",
        undefined,
      ],
      [
        "missing line_items",
        { line_items: undefined },
        "line_items",
        "parameter_missing",
      ],
      [
        "missing quantity",
        { line_items: [{ price: priceId("mc-java-4gb", "monthly") }] },
        "line_items[0][quantity]",
        "parameter_missing",
      ],
      [
        "unknown customer",
        { customer: "cus_nope", customer_email: undefined },
        "customer",
        "resource_missing",
      ],
      [
        "201-char client_reference_id",
        { client_reference_id: "x".repeat(201) },
        "client_reference_id",
        undefined,
      ],
      ["51 metadata keys", { metadata: manyKeys(51) }, "metadata", undefined],
      [
        "41-char metadata key",
        { metadata: { ["k".repeat(41)]: "v" } },
        "metadata",
        undefined,
      ],
      [
        "501-char metadata value",
        { metadata: { k: "v".repeat(501) } },
        "metadata[k]",
        undefined,
      ],
      [
        "51 subscription metadata keys",
        { subscription_data: { metadata: manyKeys(51) } },
        "subscription_data[metadata]",
        undefined,
      ],
      [
        "41-char subscription metadata key",
        { subscription_data: { metadata: { ["k".repeat(41)]: "v" } } },
        "subscription_data[metadata]",
        undefined,
      ],
      [
        "501-char subscription metadata value",
        { subscription_data: { metadata: { k: "v".repeat(501) } } },
        "subscription_data[metadata][k]",
        undefined,
      ],
    ]; // deno-fmt-ignore
    for (const [name, overrides, param, code] of rejections) {
      await t.step(`rejects ${name}`, async () => {
        const before = sandbox.requests().length;
        const err = await rejects(
          () => stripe.checkout.sessions.create(sessionParams(overrides)),
          Stripe.errors.StripeInvalidRequestError,
        );
        assert.equal(err.statusCode, 400);
        assert.equal(err.type, "StripeInvalidRequestError");
        assert.equal(err.param, param);
        assert.equal(err.code, code);
        assert.equal(sandbox.requests().length, before + 1);
      });
    }

    await t.step("at most 50 keys and 40/500 characters pass", async () => {
      const session = await stripe.checkout.sessions.create(sessionParams({
        metadata: { ...manyKeys(49), ["k".repeat(40)]: "v".repeat(500) },
      }));
      assert.equal(Object.keys(session.metadata ?? {}).length, 50);
    });

    await t.step(
      "a one-time price alone in subscription mode is rejected",
      async () => {
        const product = await stripe.products.create({ name: "Setup fee" });
        const once = await stripe.prices.create({
          product: product.id,
          unit_amount: 500,
          currency: "usd",
        });
        const err = await rejects(
          () =>
            stripe.checkout.sessions.create(
              sessionParams({ line_items: [{ price: once.id, quantity: 1 }] }),
            ),
          Stripe.errors.StripeInvalidRequestError,
        );
        assert.equal(err.param, "line_items");
        assert.match(
          err.message,
          /at least one recurring price in `subscription` mode/,
        );
      },
    );

    await t.step("rejections created nothing", async () => {
      const sessions = await stripe.checkout.sessions.list({ limit: 100 });
      assert.equal(sessions.data.length, 3);
    });
  });
});

Deno.test("stripe sandbox authentication", async (t) => {
  await withSandbox(async (sandbox) => {
    await t.step(
      "a wrong key is StripeAuthenticationError without the key",
      async () => {
        const wrong = sandboxClient(sandbox, "sk_test_wrong_key_abcdef123456");
        const err = await rejects(
          () => wrong.prices.retrieve(priceId("mc-java-4gb", "monthly")),
          Stripe.errors.StripeAuthenticationError,
        );
        assert.equal(err.statusCode, 401);
        assert.match(
          err.message,
          /^Invalid API Key provided: sk_test_\*+3456$/,
        );
        assert.ok(!err.message.includes("wrong_key"));
      },
    );

    await t.step("no key and basic auth", async () => {
      const none = await fetch(`${sandbox.url}/v1/customers`);
      assert.equal(none.status, 401);
      const body = await none.json();
      assert.equal(body.error.type, "invalid_request_error");
      assert.match(body.error.message, /You did not provide an API key/);
      const basic = await fetch(`${sandbox.url}/v1/customers`, {
        headers: { authorization: `Basic ${btoa(`${KEY}:`)}` },
      });
      assert.equal(basic.status, 200);
      assert.equal((await basic.json()).object, "list");
    });

    await t.step("an unknown URL is Stripe's 404", async () => {
      const res = await fetch(`${sandbox.url}/v1/nothing`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      assert.equal(res.status, 404);
      const body = await res.json();
      assert.equal(body.error.type, "invalid_request_error");
      assert.match(
        body.error.message,
        /^Unrecognized request URL \(GET: \/v1\/nothing\)/,
      );
    });
  });
});

Deno.test("stripe sandbox idempotency keys", async (t) => {
  await withSandbox(async (sandbox, stripe) => {
    const first = await stripe.checkout.sessions.create(sessionParams(), {
      idempotencyKey: "order-1-checkout",
    });

    await t.step("same key and parameters replay the response", async () => {
      const again = await stripe.checkout.sessions.create(sessionParams(), {
        idempotencyKey: "order-1-checkout",
      });
      assert.deepEqual(again, first);
      assert.equal((await stripe.checkout.sessions.list()).data.length, 1);
      const recorded = sandbox.requests().filter((r) =>
        r.idempotencyKey === "order-1-checkout"
      );
      assert.equal(recorded.length, 2);
      assert.equal(recorded[0].body.client_reference_id, "order-1");
    });

    await t.step(
      "same key with other parameters is an idempotency error",
      async () => {
        const err = await rejects(
          () =>
            stripe.checkout.sessions.create(
              sessionParams({ client_reference_id: "order-2" }),
              { idempotencyKey: "order-1-checkout" },
            ),
          Stripe.errors.StripeIdempotencyError,
        );
        assert.equal(err.statusCode, 400);
        assert.match(
          err.message,
          /^Keys for idempotent requests can only be used with the same parameters/,
        );
        assert.equal((await stripe.checkout.sessions.list()).data.length, 1);
      },
    );

    await t.step("a key over 255 characters is rejected", async () => {
      const err = await rejects(
        () => stripe.customers.create({}, { idempotencyKey: "k".repeat(256) }),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.statusCode, 400);
      assert.equal((await stripe.customers.list()).data.length, 0);
      await stripe.customers.create({}, { idempotencyKey: "k".repeat(255) });
      assert.equal((await stripe.customers.list()).data.length, 1);
    });

    await t.step("a failed request is not stored under its key", async () => {
      await rejects(
        () =>
          stripe.checkout.sessions.create(sessionParams({ mode: undefined }), {
            idempotencyKey: "retry-me",
          }),
        Stripe.errors.StripeInvalidRequestError,
      );
      const ok = await stripe.checkout.sessions.create(sessionParams(), {
        idempotencyKey: "retry-me",
      });
      assert.equal(ok.status, "open");
    });
  });
});

Deno.test("stripe sandbox checkout session expire", async (t) => {
  await withSandbox(async (_sandbox, stripe) => {
    const session = await stripe.checkout.sessions.create(sessionParams());
    await t.step("an open session expires", async () => {
      const expired = await stripe.checkout.sessions.expire(session.id);
      assert.equal(expired.status, "expired");
      assert.equal(expired.url, null);
      assert.equal(
        (await stripe.checkout.sessions.retrieve(session.id)).status,
        "expired",
      );
      const events = await stripe.events.list({
        type: "checkout.session.expired",
      });
      assert.equal(events.data.length, 1);
      const object = events.data[0].data.object as Stripe.Checkout.Session;
      assert.equal(object.id, session.id);
      assert.equal(object.status, "expired");
      assert.equal(events.data[0].api_version, Stripe.API_VERSION);
      assert.notEqual(events.data[0].request?.id, null);
    });

    await t.step("expiring again is a 400", async () => {
      const err = await rejects(
        () => stripe.checkout.sessions.expire(session.id),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.statusCode, 400);
      assert.equal((await stripe.events.list()).data.length, 1);
    });

    await t.step("an unknown session is a 404 naming it", async () => {
      const err = await rejects(
        () => stripe.checkout.sessions.retrieve("cs_test_nope"),
        Stripe.errors.StripeInvalidRequestError,
      );
      assert.equal(err.statusCode, 404);
      assert.equal(err.message, "No such checkout.session: 'cs_test_nope'");
    });
  });
});
