import assert from "node:assert/strict";
import type Stripe from "stripe";
import { HANDLED_EVENT_TYPES } from "../supabase/functions/_shared/manifest.ts";
import {
  type ConfigCheck,
  configChecks,
  configExitStatus,
  type ConfigFacts,
  type NodeFacts,
  nodeRoomFor,
  renderConfigJson,
  renderConfigText,
  REQUIRED_GRANTS,
} from "./config_checks.ts";

const NOW = new Date("2026-12-05T12:00:00Z");
const URL_ = "https://abc.supabase.co";

function price(patch: Partial<Stripe.Price> = {}): Stripe.Price {
  return {
    id: "price_1",
    active: true,
    unit_amount: 999,
    currency: "usd",
    recurring: { interval: "month", interval_count: 1 },
    ...patch,
  } as Stripe.Price;
}

function endpoint(
  patch: Partial<Stripe.WebhookEndpoint> = {},
): Stripe.WebhookEndpoint {
  return {
    id: "we_1",
    url: `${URL_}/functions/v1/stripe-webhook`,
    status: "enabled",
    livemode: false,
    enabled_events: [...HANDLED_EVENT_TYPES],
    ...patch,
  } as Stripe.WebhookEndpoint;
}

function node(patch: Partial<NodeFacts> = {}): NodeFacts {
  return {
    panel_node_id: 1,
    name: "node-1",
    region: "us-east",
    enabled: true,
    panel: {
      maintenance_mode: false,
      memory: 8192,
      memory_overallocate: 0,
      disk: 100_000,
      disk_overallocate: 0,
      allocated_resources: { memory: 0, disk: 0 },
    },
    freeAllocations: 10,
    ...patch,
  };
}

/** Facts of a healthy hosted project; each case changes what it names. */
function facts(patch: {
  env?: Record<string, string | undefined>;
  stripe?: Partial<Extract<ConfigFacts["stripe"], { prices: unknown }>> | {
    error: string;
  };
  panel?: ConfigFacts["panel"];
  db?: Partial<ConfigFacts["db"]>;
  local?: boolean;
} = {}): ConfigFacts {
  const base: ConfigFacts = {
    env: {
      SUPABASE_URL: URL_,
      SUPABASE_DB_URL: "postgres://postgres@db/postgres",
      SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({
        default: "sb_publishable_x",
      }),
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: "sb_secret_x" }),
      STRIPE_SECRET_KEY: "sk_test_abc",
      STRIPE_WEBHOOK_SECRET: "whsec_abc",
      SITE_URL: "https://shop.example.com",
      PTERODACTYL_URL: "https://panel.example.com",
      PTERODACTYL_API_KEY: "ptla_abc",
      ...patch.env,
    },
    now: NOW,
    local: patch.local ?? false,
    stripe: "error" in (patch.stripe ?? {})
      ? patch.stripe as { error: string }
      : {
        prices: new Map([["price_1", price()]]),
        endpoints: [endpoint()],
        failedEvents: 0,
        ...patch.stripe,
      },
    panel: patch.panel ?? {
      eggs: new Map([["1/2", {
        id: 2,
        name: "Paper",
        dockerImage: "img",
        startup: "java",
        variables: [{
          env_variable: "VERSION",
          default_value: "latest",
          rules: "required|string",
        }],
      }]]),
      nodes: [node()],
    },
    db: {
      plans: [{
        id: "mc-4gb",
        memory_mb: 4096,
        disk_mb: 10_000,
        allocations: 1,
        ptero_nest_id: 1,
        ptero_egg_id: 2,
        docker_image: null,
        startup: null,
        environment: {},
      }],
      prices: [{
        plan_id: "mc-4gb",
        term: "monthly",
        stripe_price_id: "price_1",
        amount_cents: 999,
        currency: "usd",
      }],
      regions: ["us-east"],
      migrationFiles: ["1", "2"],
      migrationsApplied: ["1", "2"],
      tablesWithoutRls: [],
      grants: [...REQUIRED_GRANTS],
      lastSweep: null,
      cron: {
        jobExists: true,
        recentRuns: ["succeeded", "succeeded"],
        answers: [200, 200],
      },
      vault: ["project_url", "sweep_secret_key"],
      ...patch.db,
    },
  };
  return base;
}

function byId(checks: ConfigCheck[], id: string): ConfigCheck {
  const found = checks.find((c) => c.id === id);
  assert.ok(found, id);
  return found;
}

/** The checks that fail: exactly `id`, whose detail matches. */
function onlyFails(f: ConfigFacts, id: string, detail: RegExp): ConfigCheck {
  const checks = configChecks(f);
  assert.deepEqual(checks.filter((c) => c.ok === false).map((c) => c.id), [id]);
  const check = byId(checks, id);
  assert.match(check.detail, detail);
  assert.ok(check.fix);
  assert.equal(configExitStatus(checks), 1);
  return check;
}

Deno.test("a healthy hosted project passes every check", () => {
  const checks = configChecks(facts());
  assert.deepEqual(checks.filter((c) => c.ok !== true), []);
  assert.equal(configExitStatus(checks), 0);
  assert.match(
    byId(checks, "panel.region.us-east").detail,
    /room for 2× mc-4gb/,
  );
});

Deno.test("env checks", async (t) => {
  await t.step("a missing secret names the function and the variable", () => {
    onlyFails(
      facts({ env: { SITE_URL: undefined } }),
      "env.secrets",
      /create-checkout-session: SITE_URL: missing/,
    );
  });
  await t.step("a publishable Stripe key", () => {
    const checks = configChecks(
      facts({ env: { STRIPE_SECRET_KEY: "pk_test_x" } }),
    );
    assert.match(byId(checks, "env.stripe_key").detail, /publishable/);
    assert.equal(byId(checks, "env.stripe_key").ok, false);
  });
  await t.step("a restricted key passes", () => {
    const checks = configChecks(
      facts({ env: { STRIPE_SECRET_KEY: "rk_test_x" } }),
    );
    assert.equal(byId(checks, "env.stripe_key").ok, true);
  });
  await t.step("a live key and a test-mode endpoint", () => {
    onlyFails(
      facts({ env: { STRIPE_SECRET_KEY: "sk_live_x" } }),
      "env.stripe_mode",
      /live mode but the webhook endpoint we_1 is test mode/,
    );
  });
  await t.step("a client panel key", () => {
    const checks = configChecks(
      facts({ env: { PTERODACTYL_API_KEY: "ptlc_x" } }),
    );
    assert.match(byId(checks, "env.panel_key").detail, /client key/);
    assert.match(byId(checks, "panel.key").detail, /client key/);
  });
  await t.step("an own secret starting with SUPABASE_", () => {
    onlyFails(
      facts({ env: { SUPABASE_SWEEP_KEY: "x" } }),
      "env.own_secrets",
      /SUPABASE_SWEEP_KEY/,
    );
  });
});

Deno.test("Stripe checks", async (t) => {
  await t.step("a key Stripe refuses", () => {
    onlyFails(
      facts({ stripe: { error: "Invalid API Key" } }),
      "stripe.key",
      /Invalid API Key/,
    );
  });
  for (
    const [name, p, detail] of [
      ["missing", null, /no such price/],
      ["archived", price({ active: false }), /archived/],
      [
        "wrong interval",
        price(
          { recurring: { interval: "year", interval_count: 1 } } as Partial<
            Stripe.Price
          >,
        ),
        /every 1 year, the term is every 1 month/,
      ],
      [
        "wrong amount",
        price({ unit_amount: 1000 }),
        /1000 usd in Stripe, 999 usd/,
      ],
      ["wrong currency", price({ currency: "eur" }), /999 eur in Stripe/],
    ] as const
  ) {
    await t.step(`a ${name} price`, () => {
      onlyFails(
        facts({ stripe: { prices: new Map([["price_1", p]]) } }),
        "stripe.prices",
        detail,
      );
    });
  }
  await t.step("an endpoint missing types names them; * counts as all", () => {
    onlyFails(
      facts({
        stripe: {
          endpoints: [
            endpoint({
              enabled_events: [
                "invoice.paid",
              ] as Stripe.WebhookEndpoint["enabled_events"],
            }),
          ],
        },
      }),
      "stripe.webhook_endpoint",
      /does not subscribe to checkout\.session\.completed, .*charge\.refunded$/,
    );
    const all = configChecks(facts({
      stripe: {
        endpoints: [
          endpoint({
            enabled_events: ["*"] as Stripe.WebhookEndpoint["enabled_events"],
          }),
        ],
      },
    }));
    assert.equal(byId(all, "stripe.webhook_endpoint").ok, true);
  });
  await t.step("a disabled endpoint; none for the project's URL", () => {
    onlyFails(
      facts({ stripe: { endpoints: [endpoint({ status: "disabled" })] } }),
      "stripe.webhook_endpoint",
      /is disabled/,
    );
    const none = configChecks(facts({
      stripe: {
        endpoints: [
          endpoint({ url: "https://other/functions/v1/stripe-webhook" }),
        ],
      },
    }));
    assert.match(
      byId(none, "stripe.webhook_endpoint").detail,
      /no webhook endpoint for https:\/\/abc/,
    );
    assert.equal(byId(none, "env.stripe_mode").ok, null);
  });
  await t.step("failed deliveries are counted", () => {
    onlyFails(
      facts({ stripe: { failedEvents: 3 } }),
      "stripe.failed_deliveries",
      /^3 event/,
    );
  });
});

Deno.test("panel checks", async (t) => {
  await t.step("no answer", () => {
    onlyFails(
      facts({ panel: { error: { status: 0, message: "Connection refused" } } }),
      "panel.reachable",
      /did not answer: Connection refused/,
    );
  });
  await t.step("401, 403 non-admin and 403 unauthorized are told apart", () => {
    const k401 = onlyFails(
      facts({ panel: { error: { status: 401, message: "Unauthenticated." } } }),
      "panel.key",
      /rejected the key \(401: Unauthenticated\.\)/,
    );
    const admin = onlyFails(
      facts({
        panel: {
          error: {
            status: 403,
            message: "This account does not have permission to access the API.",
          },
        },
      }),
      "panel.key",
      /not a root admin \(403/,
    );
    const perm = onlyFails(
      facts({
        panel: {
          error: { status: 403, message: "This action is unauthorized." },
        },
      }),
      "panel.key",
      /may not read nodes \(403: This action is unauthorized\.\)/,
    );
    assert.equal(new Set([k401.fix, admin.fix, perm.fix]).size, 3);
  });
  await t.step("a missing egg; a required variable without a value", () => {
    const f = facts();
    (f.panel as { eggs: Map<string, unknown> }).eggs.set("1/2", null);
    onlyFails(f, "panel.eggs", /egg 2 of nest 1 does not exist/);
    const g = facts();
    const egg = (g.panel as Extract<ConfigFacts["panel"], { eggs: unknown }>)
      .eggs.get("1/2")!;
    egg.variables[0].default_value = null;
    onlyFails(g, "panel.eggs", /VERSION .* fails its rule "required"/);
  });
  await t.step("a region without nodes, disabled, in maintenance, full", () => {
    const region = "panel.region.us-east";
    const withNodes = (nodes: NodeFacts[]) =>
      facts({
        panel: {
          eggs: (facts().panel as { eggs: Map<string, null> }).eggs,
          nodes,
        },
      });
    onlyFails(withNodes([]), region, /has no node/);
    onlyFails(
      withNodes([node({ enabled: false })]),
      region,
      /no enabled node .*node-1: disabled/,
    );
    onlyFails(
      withNodes([node({ panel: null })]),
      region,
      /missing on the panel/,
    );
    onlyFails(
      withNodes([
        node({ panel: { ...node().panel!, maintenance_mode: true } }),
      ]),
      region,
      /node-1: in maintenance/,
    );
    onlyFails(
      withNodes([node({ freeAllocations: 0 })]),
      region,
      /no free allocation/,
    );
    onlyFails(
      withNodes([
        node({
          panel: {
            ...node().panel!,
            allocated_resources: { memory: 6000, disk: 0 },
          },
        }),
      ]),
      region,
      /no room for mc-4gb.*room for 0× mc-4gb/,
    );
  });
});

Deno.test("nodeRoomFor follows the panel's room rule", () => {
  const plan = { memory_mb: 1024, disk_mb: 1000, allocations: 1 };
  const p = node().panel!;
  // 8192 * 1.5 = 12288 MB; 2048 used: 10 more.
  assert.equal(
    nodeRoomFor(
      node({
        panel: {
          ...p,
          memory_overallocate: 50,
          allocated_resources: { memory: 2048, disk: 0 },
        },
        freeAllocations: 99,
      }),
      plan,
    ),
    10,
  );
  // Disk bounds it: 100000 - 97000 = 3 plans.
  assert.equal(
    nodeRoomFor(
      node({
        panel: { ...p, allocated_resources: { memory: 0, disk: 97_000 } },
      }),
      plan,
    ),
    3,
  );
  // Allocations bound it.
  assert.equal(
    nodeRoomFor(node({ freeAllocations: 2 }), { ...plan, allocations: 2 }),
    1,
  );
  // Exactly full: allocated + plan <= total.
  assert.equal(
    nodeRoomFor(
      node({ panel: { ...p, allocated_resources: { memory: 7168, disk: 0 } } }),
      plan,
    ),
    1,
  );
  assert.equal(nodeRoomFor(node({ enabled: false }), plan), 0);
});

Deno.test("database checks", async (t) => {
  await t.step("a migration not applied; no migrations table", () => {
    onlyFails(
      facts({ db: { migrationsApplied: ["1"] } }),
      "db.migrations",
      /not applied: 2/,
    );
    assert.equal(
      byId(
        configChecks(facts({ db: { migrationsApplied: null } })),
        "db.migrations",
      ).ok,
      null,
    );
  });
  await t.step("a table without RLS", () => {
    onlyFails(
      facts({ db: { tablesWithoutRls: ["notes"] } }),
      "db.rls",
      /notes/,
    );
  });
  await t.step(
    "a grant missing, a grant too many; column grants on orders allowed",
    () => {
      onlyFails(
        facts({
          db: {
            grants: REQUIRED_GRANTS.filter((g) => g !== "anon SELECT plans"),
          },
        }),
        "db.grants",
        /missing: anon SELECT plans/,
      );
      onlyFails(
        facts({
          db: {
            grants: [
              ...REQUIRED_GRANTS,
              "anon INSERT orders",
              "authenticated SELECT orders",
            ],
          },
        }),
        "db.grants",
        /not expected: anon INSERT orders, authenticated SELECT orders$/,
      );
      const allowed = configChecks(facts({
        db: {
          grants: [...REQUIRED_GRANTS, "authenticated SELECT orders(paid_at)"],
        },
      }));
      assert.equal(byId(allowed, "db.grants").ok, true);
    },
  );
  await t.step("hosted: the cron job missing, failing, refused, absent", () => {
    onlyFails(
      facts({
        db: { cron: { jobExists: false, recentRuns: [], answers: null } },
      }),
      "db.sweep",
      /does not exist/,
    );
    onlyFails(
      facts({
        db: {
          cron: {
            jobExists: true,
            recentRuns: ["succeeded", "failed"],
            answers: null,
          },
        },
      }),
      "db.sweep",
      /1 of the last 2/,
    );
    // The runs succeed (the SQL ran) while the function refuses the key.
    onlyFails(
      facts({
        db: {
          cron: {
            jobExists: true,
            recentRuns: ["succeeded", "succeeded"],
            answers: [401, 200, null],
          },
        },
      }),
      "db.sweep",
      /did not answer 2xx to 2 of the last 3 calls \(401, no answer\)/,
    );
    assert.equal(
      byId(configChecks(facts({ db: { cron: null } })), "db.sweep").ok,
      null,
    );
  });
  await t.step("locally: the timer ran within 2 minutes", () => {
    const local = (lastSweep: Date | null) =>
      byId(
        configChecks(facts({ local: true, db: { cron: null, lastSweep } })),
        "db.sweep",
      );
    assert.equal(local(new Date(NOW.getTime() - 60_000)).ok, true);
    assert.match(local(new Date(NOW.getTime() - 180_000)).detail, /180 s ago/);
    assert.equal(local(null).ok, false);
  });
  await t.step("the Vault secrets", () => {
    onlyFails(
      facts({ db: { vault: ["project_url"] } }),
      "db.vault",
      /sweep_secret_key/,
    );
    assert.equal(
      byId(configChecks(facts({ db: { vault: null } })), "db.vault").ok,
      null,
    );
  });
});

Deno.test("the report: JSON shape, text lines, unknowns do not fail", () => {
  const checks = configChecks(facts({ db: { vault: null } }));
  assert.equal(configExitStatus(checks), 0);
  const json = JSON.parse(renderConfigJson(checks));
  assert.deepEqual(Object.keys(json), ["ok", "checks"]);
  assert.equal(json.ok, true);
  assert.deepEqual(Object.keys(json.checks[0]), ["id", "ok", "detail", "fix"]);
  const failing = configChecks(facts({ db: { tablesWithoutRls: ["notes"] } }));
  const text = renderConfigText(failing, { color: false });
  assert.match(text, /^✗ db\.rls +row level security is off on notes$/m);
  assert.match(text, /^ +fix: `alter table/m);
  assert.match(text, /^✓ env\.secrets /m);
  assert.match(text, /1 of \d+ checks fail/);
  assert.match(renderConfigText(checks, { color: false }), /^! db\.vault /m);
  assert.ok(renderConfigText(checks, { color: true }).includes("\x1b[32m✓"));
});
