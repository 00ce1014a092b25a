/**
 * `npm run setup` against the local sandboxes: from an empty Stripe account and empty
 * catalogue tables to a shop that sells the catalogue, then idempotent; a changed
 * amount, a price archived by hand, `--dry-run`, and a plan whose egg is missing.
 */
import assert from "node:assert/strict";
import Stripe from "stripe";
import { type Catalogue, loadCatalogue } from "../setup/catalogue.ts";
import { runSetup, type SetupResult } from "../setup/setup.ts";
import { HANDLED_EVENT_TYPES } from "../supabase/functions/_shared/manifest.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

function stripeOf(stack: TestStack): Stripe {
  return new Stripe(stack.keys.stripeSecretKey, {
    host: "127.0.0.1",
    port: stack.stripe.port,
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
  });
}

async function setup(
  stack: TestStack,
  catalogue: Catalogue,
  options: { dryRun?: boolean } = {},
): Promise<SetupResult & { lines: string[] }> {
  const lines: string[] = [];
  const result = await runSetup({
    catalogue,
    env: stack.env,
    dryRun: options.dryRun,
    out: (line) => lines.push(line),
  });
  return { ...result, lines };
}

/** Everything setup may write, counted (Stripe objects and catalogue rows). */
async function census(stack: TestStack) {
  const stripe = stripeOf(stack);
  const count = async <T>(list: AsyncIterable<T>) => {
    let n = 0;
    for await (const _ of list) n++;
    return n;
  };
  const [rows] = await stack.sql`select
    (select count(*)::int from public.regions) as regions,
    (select count(*)::int from public.plans) as plans,
    (select count(*)::int from public.plan_prices) as plan_prices,
    (select count(*)::int from public.ptero_nodes) as nodes,
    (select json_agg(p order by plan_id, term) from public.plan_prices p) as prices,
    (select json_agg(o order by id) from public.orders o) as orders`;
  return {
    products: await count(stripe.products.list({ limit: 100 })),
    prices: await count(stripe.prices.list({ limit: 100 })),
    endpoints: await count(stripe.webhookEndpoints.list({ limit: 100 })),
    rows,
  };
}

function posts(stack: TestStack, since: number): string[] {
  return stack.stripe.requests().slice(since).filter((r) => r.method !== "GET")
    .map((r) => `${r.method} ${r.path}`);
}

function withAmount(
  catalogue: Catalogue,
  planId: string,
  amount: number,
): Catalogue {
  const copy = structuredClone(catalogue);
  copy.plans.find((p) => p.id === planId)!.prices.monthly = amount;
  return copy;
}

Deno.test("npm run setup", async (t) => {
  const stack = await startTestStack({ emptyStripeCatalogue: true });
  const catalogue = await loadCatalogue();
  const stripe = stripeOf(stack);
  try {
    // An empty shop: no catalogue rows, no products or prices, no endpoint.
    await stack.sql`delete from public.plan_prices`;
    await stack.sql`delete from public.ptero_nodes`;
    await stack.sql`delete from public.plans`;
    await stack.sql`delete from public.regions`;
    for await (const e of stripe.webhookEndpoints.list()) {
      await stripe.webhookEndpoints.del(e.id);
    }
    const priceCount = catalogue.plans.reduce(
      (n, p) => n + Object.keys(p.prices).length,
      0,
    );

    await t.step("--dry-run on an empty shop writes nothing", async () => {
      const before = await census(stack);
      const since = stack.stripe.requests().length;
      const result = await setup(stack, catalogue, { dryRun: true });
      assert.equal(result.exitCode, 0, result.lines.join("\n"));
      assert.deepEqual(posts(stack, since), []);
      assert.deepEqual(await census(stack), before);
      assert.match(result.lines.join("\n"), /\+ price mc-java-4gb_monthly/);
    });

    await t.step("sets up Stripe, the database and the endpoint", async () => {
      const result = await setup(stack, catalogue);
      assert.equal(result.exitCode, 0, result.lines.join("\n"));
      assert.match(result.lines[0], /TEST mode/);
      assert.equal(result.summary.products.created, catalogue.plans.length);
      assert.equal(result.summary.prices.created, priceCount);
      assert.equal(result.summary.plans.created, catalogue.plans.length);
      assert.equal(result.summary.plan_prices.created, priceCount);
      assert.equal(result.summary.regions.created, catalogue.regions.length);
      assert.equal(result.summary.ptero_nodes.created, 4);
      assert.equal(result.summary.webhook_endpoints.created, 1);
      assert.match(result.webhookSecret ?? "", /^whsec_/);
      // The portal opens without plan switches, under a configuration setup made.
      assert.equal(result.summary.portal_configurations.created, 1);
      const portal = (await stripe.billingPortal.configurations.list()).data
        .filter((c) => c.metadata?.registered_by === "npm run setup");
      assert.equal(portal.length, 1);
      assert.ok(
        result.lines.includes(
          `  supabase secrets set STRIPE_PORTAL_CONFIGURATION=${portal[0].id}`,
        ),
      );
      assert.ok(
        result.lines.includes(
          `  supabase secrets set STRIPE_WEBHOOK_SECRET=${result.webhookSecret}`,
        ),
      );
      const [endpoint] = (await stripe.webhookEndpoints.list()).data;
      assert.equal(
        endpoint.url,
        `${stack.env.SUPABASE_URL}/functions/v1/stripe-webhook`,
      );
      assert.deepEqual(
        [...endpoint.enabled_events].sort(),
        [...HANDLED_EVENT_TYPES].sort(),
      );
      const [row] = await stack.sql`select p.stripe_price_id, p.amount_cents
        from public.plan_prices p where plan_id = 'mc-java-4gb' and term = 'monthly'`;
      const price = await stripe.prices.retrieve(row.stripe_price_id);
      assert.equal(price.lookup_key, "mc-java-4gb_monthly");
      assert.equal(price.unit_amount, row.amount_cents);
      assert.deepEqual(price.recurring?.interval, "month");
    });

    await t.step("a second run changes nothing", async () => {
      const before = await census(stack);
      const since = stack.stripe.requests().length;
      const result = await setup(stack, catalogue);
      assert.equal(result.exitCode, 0, result.lines.join("\n"));
      assert.deepEqual(posts(stack, since), []);
      assert.deepEqual(await census(stack), before);
      for (const [kind, counts] of Object.entries(result.summary)) {
        assert.deepEqual(
          [counts.created, counts.updated, counts.archived],
          [0, 0, 0],
          kind,
        );
      }
      assert.equal(result.summary.prices.unchanged, priceCount);
    });

    await t.step(
      "a changed amount makes a new price, moves the key, archives the old one, leaves orders alone",
      async () => {
        const [old] = await stack
          .sql`select stripe_price_id from public.plan_prices
          where plan_id = 'mc-java-4gb' and term = 'monthly'`;
        const user = await stack.user();
        await stack
          .sql`insert into public.orders (user_id, plan_id, term, region,
          server_name, stripe_price_id, amount_cents, currency, memory_mb, disk_mb)
          values (${user.id}, 'mc-java-4gb', 'monthly', 'eu-west', 'Kept',
          ${old.stripe_price_id}, 999, 'usd', 4096, 20480)`;
        const ordersBefore = (await census(stack)).rows.orders;
        const result = await setup(
          stack,
          withAmount(catalogue, "mc-java-4gb", 1099),
        );
        assert.equal(result.exitCode, 0, result.lines.join("\n"));
        assert.equal(result.summary.prices.created, 1);
        assert.equal(result.summary.prices.archived, 1);
        assert.equal(result.summary.plan_prices.updated, 1);
        const [now] = await stack.sql`select stripe_price_id, amount_cents
          from public.plan_prices where plan_id = 'mc-java-4gb' and term = 'monthly'`;
        assert.notEqual(now.stripe_price_id, old.stripe_price_id);
        assert.equal(now.amount_cents, 1099);
        const fresh = await stripe.prices.retrieve(now.stripe_price_id);
        assert.equal(fresh.lookup_key, "mc-java-4gb_monthly");
        assert.equal(fresh.unit_amount, 1099);
        const archived = await stripe.prices.retrieve(old.stripe_price_id);
        assert.equal(archived.active, false);
        assert.equal(archived.lookup_key, null);
        assert.deepEqual((await census(stack)).rows.orders, ordersBefore);
      },
    );

    await t.step("a price archived by hand is replaced", async () => {
      const changed = withAmount(catalogue, "mc-java-4gb", 1099);
      const [row] = await stack
        .sql`select stripe_price_id from public.plan_prices
        where plan_id = 'mc-java-2gb' and term = 'yearly'`;
      await stripe.prices.update(row.stripe_price_id, { active: false });
      const result = await setup(stack, changed);
      assert.equal(result.exitCode, 0, result.lines.join("\n"));
      assert.equal(result.summary.prices.created, 1);
      const [now] = await stack
        .sql`select stripe_price_id, active from public.plan_prices
        where plan_id = 'mc-java-2gb' and term = 'yearly'`;
      assert.notEqual(now.stripe_price_id, row.stripe_price_id);
      const fresh = await stripe.prices.retrieve(now.stripe_price_id);
      assert.equal(fresh.active, true);
      assert.equal(fresh.lookup_key, "mc-java-2gb_yearly");
      const again = await setup(stack, changed);
      assert.equal(again.summary.prices.created, 0);
    });

    await t.step("--dry-run of a change writes nothing", async () => {
      const before = await census(stack);
      const since = stack.stripe.requests().length;
      const result = await setup(
        stack,
        withAmount(catalogue, "mc-java-2gb", 555),
        { dryRun: true },
      );
      assert.equal(result.exitCode, 0, result.lines.join("\n"));
      assert.match(result.lines.join("\n"), /price mc-java-2gb_monthly/);
      assert.deepEqual(posts(stack, since), []);
      assert.deepEqual(await census(stack), before);
    });

    await t.step(
      "the Stripe sandbox refuses what Stripe refuses: a taken lookup key, a new amount",
      async () => {
        const [row] = await stack
          .sql`select stripe_price_id from public.plan_prices
          where plan_id = 'mc-java-8gb' and term = 'monthly'`;
        const taken = await stripe.prices.create({
          product: "prod_mc_java_8gb",
          unit_amount: 1,
          currency: "usd",
          lookup_key: "mc-java-8gb_monthly",
        }).then(() => null, (error) => error);
        assert.equal(taken?.statusCode, 400);
        assert.equal(taken?.param, "lookup_key");
        assert.match(taken?.message, new RegExp(row.stripe_price_id));
        const amount = await stripe.prices.update(
          row.stripe_price_id,
          { unit_amount: 1 } as Stripe.PriceUpdateParams,
        ).then(() => null, (error) => error);
        assert.equal(amount?.statusCode, 400);
        assert.equal(amount?.code, "parameter_unknown");
        const found = await stripe.prices.list({
          lookup_keys: ["mc-java-8gb_monthly", "nobody_monthly"],
          active: true,
        });
        assert.deepEqual(found.data.map((p) => p.id), [row.stripe_price_id]);
      },
    );

    await t.step(
      "a plan whose egg is missing is named, exit 1, nothing written",
      async () => {
        const broken = structuredClone(catalogue);
        broken.plans.find((p) => p.id === "among-us-1gb")!.egg_id = 99;
        const before = await census(stack);
        const since = stack.stripe.requests().length;
        const result = await setup(stack, broken);
        assert.equal(result.exitCode, 1);
        assert.deepEqual(result.failures, [
          'plan "among-us-1gb": egg 99 of nest 2 does not exist on the panel (fix nest_id/egg_id in catalogue.json, or import the egg)',
        ]);
        assert.deepEqual(posts(stack, since), []);
        assert.deepEqual(await census(stack), before);
      },
    );
  } finally {
    await stack.close();
  }
});
