/**
 * `npm run doctor -- --config`: is the shop configured to take money? Plain check
 * functions over facts gathered read-only (`config_facts.ts`): the environment, Stripe,
 * the panel and the database. Each check answers ✓ (ok), ✗ (fails, with its fix) or
 * ! (unknown: a side it could not tell, e.g. pg_cron absent); only ✗ fails the run.
 *
 * @module
 */
import type Stripe from "stripe";
import {
  FUNCTIONS,
  HANDLED_EVENT_TYPES,
} from "../supabase/functions/_shared/manifest.ts";
import type { PanelEgg } from "../supabase/functions/_shared/panel/client.ts";
import { type Catalogue, type CataloguePlan, Term } from "./catalogue.ts";
import { panelFailures, stripeMode } from "./setup.ts";

/** One check's result; `ok` null is unknown (shown `!`, does not fail the run). */
export interface ConfigCheck {
  id: string;
  ok: boolean | null;
  detail: string;
  fix: string | null;
}

/** A plan row as the database has it. */
export interface PlanRow {
  id: string;
  memory_mb: number;
  disk_mb: number;
  allocations: number;
  ptero_nest_id: number;
  ptero_egg_id: number;
  docker_image: string | null;
  startup: string | null;
  environment: Record<string, string>;
}

/** An active `plan_prices` row of an active plan. */
export interface PriceRow {
  plan_id: string;
  term: string;
  stripe_price_id: string;
  amount_cents: number;
  currency: string;
}

/** A `ptero_nodes` row of a region, with what the panel says of that node. */
export interface NodeFacts {
  panel_node_id: number;
  name: string;
  region: string;
  enabled: boolean;
  /** `GET /nodes/{id}`, null when the panel has no such node. */
  panel: {
    maintenance_mode: boolean;
    memory: number;
    memory_overallocate: number;
    disk: number;
    disk_overallocate: number;
    allocated_resources: { memory: number; disk: number };
  } | null;
  freeAllocations: number;
}

/** What a failed panel call answered (status 0: no answer). */
export interface PanelAnswer {
  status: number;
  message: string;
}

/** Everything the checks read. */
export interface ConfigFacts {
  env: Record<string, string | undefined>;
  now: Date;
  /** The project is the local stack (SUPABASE_URL on localhost). */
  local: boolean;
  stripe:
    | { error: string }
    | {
      /** Price by id; null when Stripe has none. */
      prices: Map<string, Stripe.Price | null>;
      endpoints: Stripe.WebhookEndpoint[];
      failedEvents: number;
    };
  panel:
    | { error: PanelAnswer }
    | { eggs: Map<string, PanelEgg | null>; nodes: NodeFacts[] };
  db: {
    plans: PlanRow[];
    prices: PriceRow[];
    /** Active regions. */
    regions: string[];
    migrationFiles: string[];
    /** null when `supabase_migrations.schema_migrations` does not exist. */
    migrationsApplied: string[] | null;
    tablesWithoutRls: string[];
    /** `role privilege object` lines the API roles hold in `public` (see grantLines). */
    grants: string[];
    lastSweep: Date | null;
    /** null when the `cron` schema does not exist. */
    cron: {
      jobExists: boolean;
      recentRuns: string[];
      /** Last pg_net answers (null: no answer), when `net._http_response` exists. */
      answers: (number | null)[] | null;
    } | null;
    /** Vault secret names; null when the `vault` schema does not exist. */
    vault: string[] | null;
  };
}

/** Variables the platform sets itself; every other one is an own secret. */
export const PLATFORM_VARIABLES = new Set([
  "SUPABASE_URL",
  "SUPABASE_DB_URL",
  "SUPABASE_ANON_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_PUBLISHABLE_KEYS",
  "SUPABASE_SECRET_KEYS",
  "SUPABASE_JWKS",
]);

/** The term's Stripe interval, as the catalogue sells it. */
export const TERM_INTERVALS: Record<
  Term,
  { interval: string; interval_count: number }
> = {
  monthly: { interval: "month", interval_count: 1 },
  quarterly: { interval: "month", interval_count: 3 },
  yearly: { interval: "year", interval_count: 1 },
};

/**
 * The grants the API roles need, and the only ones they may hold: `role privilege
 * object` (a column grant reads `table(column)`).
 */
export const REQUIRED_GRANTS = [
  "anon SELECT regions",
  "anon SELECT plans",
  "anon SELECT plan_prices",
  "anon EXECUTE plan_availability",
  "anon SELECT plan_region_availability",
  "authenticated SELECT regions",
  "authenticated SELECT plans",
  "authenticated SELECT plan_prices",
  "authenticated EXECUTE plan_availability",
  "authenticated SELECT plan_region_availability",
  "authenticated SELECT orders(id)",
  "authenticated SELECT orders(status)",
  "authenticated SELECT orders(plan_id)",
  "authenticated SELECT orders(server_name)",
];
/** Grants allowed beyond the required ones (the customer's own rows, column by column). */
export const ALLOWED_GRANT =
  /^authenticated SELECT (external_accounts|orders\(\w+\)|order_events\(\w+\)|plan_changes\(\w+\))$/;

const ok = (id: string, detail: string): ConfigCheck => ({
  id,
  ok: true,
  detail,
  fix: null,
});
const fail = (id: string, detail: string, fix: string): ConfigCheck => ({
  id,
  ok: false,
  detail,
  fix,
});
const unknown = (id: string, detail: string, fix: string | null = null) => ({
  id,
  ok: null,
  detail,
  fix,
});

/** The webhook's URL for a project. */
export function webhookUrl(supabaseUrl: string): string {
  return `${supabaseUrl.replace(/\/$/, "")}/functions/v1/stripe-webhook`;
}

function endpointOf(facts: ConfigFacts): Stripe.WebhookEndpoint | undefined {
  if ("error" in facts.stripe || !facts.env.SUPABASE_URL) return undefined;
  const url = webhookUrl(facts.env.SUPABASE_URL);
  const mine = facts.stripe.endpoints.filter((e) => e.url === url);
  return mine.find((e) => e.status === "enabled") ?? mine[0];
}

/** env.*: secrets set and well-formed. */
export function envChecks(facts: ConfigFacts): ConfigCheck[] {
  const env = Object.fromEntries(
    Object.entries(facts.env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const checks: ConfigCheck[] = [];
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(FUNCTIONS)) {
    const parsed = spec.env.safeParse(env);
    if (parsed.success) continue;
    for (const issue of parsed.error.issues) {
      const variable = issue.path.join(".");
      problems.push(
        `${name}: ${variable ? `${variable}: ` : ""}${
          issue.code === "invalid_type" && issue.input === undefined
            ? "missing"
            : issue.message
        }`,
      );
    }
  }
  checks.push(
    problems.length === 0
      ? ok(
        "env.secrets",
        `every function's environment is set and well-formed (${
          Object.keys(FUNCTIONS).length
        } functions)`,
      )
      : fail(
        "env.secrets",
        problems.join("; "),
        "set each variable named: `supabase secrets set NAME=value` (locally: `npm start` writes .env.local)",
      ),
  );
  const key = env.STRIPE_SECRET_KEY ?? "";
  const kind = /^sk_/.test(key)
    ? "a secret key"
    : /^rk_/.test(key)
    ? "a restricted key"
    : null;
  checks.push(
    kind
      ? ok(
        "env.stripe_key",
        `STRIPE_SECRET_KEY is ${kind} (${stripeMode(key)} mode)`,
      )
      : fail(
        "env.stripe_key",
        key
          ? `STRIPE_SECRET_KEY starts with "${
            key.slice(0, 3)
          }", not sk_ or rk_${
            key.startsWith("pk_") ? " (a publishable key)" : ""
          }`
          : "STRIPE_SECRET_KEY is not set",
        "set STRIPE_SECRET_KEY to the sk_… or rk_… key of Stripe's Developers → API keys",
      ),
  );
  const endpoint = endpointOf(facts);
  if (!kind || !endpoint) {
    checks.push(
      unknown(
        "env.stripe_mode",
        "no webhook endpoint to compare the key's mode with",
      ),
    );
  } else {
    const keyLive = stripeMode(key) === "live";
    checks.push(
      keyLive === endpoint.livemode
        ? ok(
          "env.stripe_mode",
          `the key and the webhook endpoint are both ${stripeMode(key)} mode`,
        )
        : fail(
          "env.stripe_mode",
          `STRIPE_SECRET_KEY is ${
            stripeMode(key)
          } mode but the webhook endpoint ${endpoint.id} is ${
            endpoint.livemode ? "live" : "test"
          } mode`,
          "use the key and the endpoint (and its STRIPE_WEBHOOK_SECRET) of the same mode: run `npm run setup` with the intended key",
        ),
    );
  }
  const panelKey = env.PTERODACTYL_API_KEY ?? "";
  checks.push(
    /^ptla_/.test(panelKey)
      ? ok("env.panel_key", "PTERODACTYL_API_KEY is an application key (ptla_)")
      : fail(
        "env.panel_key",
        panelKey.startsWith("ptlc_")
          ? "PTERODACTYL_API_KEY is a client key (ptlc_), not an application key"
          : panelKey
          ? `PTERODACTYL_API_KEY starts with "${
            panelKey.slice(0, 5)
          }", not ptla_`
          : "PTERODACTYL_API_KEY is not set",
        "create an application key (Admin → Application API, read and write on servers, users, nodes, allocations, locations, nests) and set PTERODACTYL_API_KEY",
      ),
  );
  const reserved = Object.keys(env).filter((name) =>
    name.startsWith("SUPABASE_") && !PLATFORM_VARIABLES.has(name)
  );
  checks.push(
    reserved.length === 0
      ? ok(
        "env.own_secrets",
        "no own secret uses the reserved SUPABASE_ prefix",
      )
      : fail(
        "env.own_secrets",
        `${reserved.join(", ")}: own secrets may not start with SUPABASE_`,
        "rename them (Supabase refuses to set SUPABASE_… secrets and the functions do not read them)",
      ),
  );
  return checks;
}

/** stripe.*: the key, the prices, the webhook endpoint, failed deliveries. */
export function stripeChecks(facts: ConfigFacts): ConfigCheck[] {
  if ("error" in facts.stripe) {
    return [
      fail(
        "stripe.key",
        `Stripe refused or did not answer: ${facts.stripe.error}`,
        "check STRIPE_SECRET_KEY (and STRIPE_API_BASE if set): Stripe's Developers → API keys",
      ),
    ];
  }
  const { prices, endpoints, failedEvents } = facts.stripe;
  const checks = [ok("stripe.key", "the key works")];
  const problems: string[] = [];
  for (const row of facts.db.prices) {
    const price = prices.get(row.stripe_price_id);
    const name = `${row.plan_id} ${row.term} (${row.stripe_price_id})`;
    const want = TERM_INTERVALS[row.term as Term];
    if (!price) problems.push(`${name}: no such price`);
    else if (!price.active) problems.push(`${name}: archived`);
    else if (!price.recurring) problems.push(`${name}: not recurring`);
    else if (
      want && (price.recurring.interval !== want.interval ||
        price.recurring.interval_count !== want.interval_count)
    ) {
      problems.push(
        `${name}: bills every ${price.recurring.interval_count} ${price.recurring.interval}, the term is every ${want.interval_count} ${want.interval}`,
      );
    } else if (
      price.unit_amount !== row.amount_cents || price.currency !== row.currency
    ) {
      problems.push(
        `${name}: ${price.unit_amount} ${price.currency} in Stripe, ${row.amount_cents} ${row.currency} in the database`,
      );
    }
  }
  checks.push(
    problems.length === 0
      ? ok(
        "stripe.prices",
        `${facts.db.prices.length} prices of active plans exist, are active and match the database`,
      )
      : fail(
        "stripe.prices",
        problems.join("; "),
        "run `npm run setup`: it replaces archived or missing prices and writes their ids to plan_prices",
      ),
  );
  const url = webhookUrl(facts.env.SUPABASE_URL ?? "");
  const mine = endpoints.filter((e) => e.url === url);
  const enabled = mine.filter((e) => e.status === "enabled");
  const setupFix =
    "run `npm run setup` (it creates or repairs the endpoint), or fix it in Stripe's Developers → Webhooks";
  if (mine.length === 0) {
    checks.push(
      fail(
        "stripe.webhook_endpoint",
        `no webhook endpoint for ${url}`,
        setupFix,
      ),
    );
  } else if (enabled.length === 0) {
    checks.push(
      fail(
        "stripe.webhook_endpoint",
        `the endpoint for ${url} (${mine[0].id}) is disabled`,
        setupFix,
      ),
    );
  } else {
    const best = enabled.map((e) => ({
      e,
      missing: e.enabled_events.includes("*")
        ? []
        : HANDLED_EVENT_TYPES.filter((t) => !e.enabled_events.includes(t)),
    })).sort((a, b) => a.missing.length - b.missing.length)[0];
    checks.push(
      best.missing.length === 0
        ? ok(
          "stripe.webhook_endpoint",
          `${best.e.id} is enabled for ${url} with every handled event type`,
        )
        : fail(
          "stripe.webhook_endpoint",
          `${best.e.id} does not subscribe to ${best.missing.join(", ")}`,
          setupFix,
        ),
    );
  }
  checks.push(
    failedEvents === 0
      ? ok(
        "stripe.failed_deliveries",
        "no event failed to deliver in the last 3 days",
      )
      : fail(
        "stripe.failed_deliveries",
        `${failedEvents} event(s) of the last 3 days were not delivered to an endpoint`,
        "read the stripe-webhook function's logs (a wrong STRIPE_WEBHOOK_SECRET answers 400); the sweep applies the missed events once the webhook answers",
      ),
  );
  return checks;
}

/** The plan as setup's panel checks read it. */
function asCataloguePlan(plan: PlanRow): CataloguePlan {
  return {
    id: plan.id,
    game: "",
    display_name: plan.id,
    memory_mb: plan.memory_mb,
    disk_mb: plan.disk_mb,
    cpu_percent: 0,
    swap_mb: 0,
    io_weight: 500,
    databases: 0,
    backups: 0,
    allocations: plan.allocations,
    nest_id: plan.ptero_nest_id,
    egg_id: plan.ptero_egg_id,
    docker_image: plan.docker_image,
    startup: plan.startup,
    environment: plan.environment,
    active: true,
    prices: {},
  };
}

/** How many more of `plan` one node can take (0 when it cannot take any). */
export function nodeRoomFor(
  node: NodeFacts,
  plan: Pick<PlanRow, "memory_mb" | "disk_mb" | "allocations">,
): number {
  const p = node.panel;
  if (!node.enabled || !p || p.maintenance_mode) return 0;
  // A negative overallocate turns the panel's check off.
  const fits = (total: number, over: number, used: number, need: number) =>
    over < 0 ? Infinity : Math.floor((total * (1 + over / 100) - used) / need);
  return Math.max(
    0,
    Math.min(
      fits(
        p.memory,
        p.memory_overallocate,
        p.allocated_resources.memory,
        plan.memory_mb,
      ),
      fits(
        p.disk,
        p.disk_overallocate,
        p.allocated_resources.disk,
        plan.disk_mb,
      ),
      Math.floor(node.freeAllocations / Math.max(1, plan.allocations)),
    ),
  );
}

/** How many more of each active plan a region can take, summed over its nodes. */
export function regionRoom(
  region: string,
  nodes: NodeFacts[],
  plans: PlanRow[],
): Record<string, number> {
  const mine = nodes.filter((n) => n.region === region);
  return Object.fromEntries(
    plans.map((plan) => [
      plan.id,
      mine.reduce((sum, node) => sum + nodeRoomFor(node, plan), 0),
    ]),
  );
}

/** The region's largest plan (memory, then disk). */
export function largestPlan(plans: PlanRow[]): PlanRow | undefined {
  return [...plans].sort((a, b) =>
    b.memory_mb - a.memory_mb || b.disk_mb - a.disk_mb
  )[0];
}

/** panel.*: the key, the eggs, each region's room. */
export function panelChecks(facts: ConfigFacts): ConfigCheck[] {
  const keyFix =
    "create an application key as a root admin (Admin → Application API) and set PTERODACTYL_API_KEY";
  if ("error" in facts.panel) {
    const { status, message } = facts.panel.error;
    if (status === 0) {
      return [
        fail(
          "panel.reachable",
          `the panel did not answer: ${message}`,
          "check PTERODACTYL_URL (the panel's address, https://…) and that the panel is up",
        ),
      ];
    }
    const reachable = ok("panel.reachable", `the panel answered ${status}`);
    if (status === 401) {
      return [
        reachable,
        fail(
          "panel.key",
          `the panel rejected the key (401: ${message})`,
          `the key is wrong or was deleted: ${keyFix}`,
        ),
      ];
    }
    if (
      status === 403 &&
      /does not have permission to access the API/i.test(message)
    ) {
      return [
        reachable,
        fail(
          "panel.key",
          `the key's user is not a root admin (403: ${message})`,
          `make the key's user a root admin, or ${keyFix[0].toLowerCase()}${
            keyFix.slice(1)
          }`,
        ),
      ];
    }
    if (status === 403) {
      return [
        reachable,
        fail(
          "panel.key",
          `the key may not read nodes (403: ${message})`,
          "give the application key read and write on servers, users, nodes, allocations, locations and nests, and allow this IP",
        ),
      ];
    }
    return [
      fail(
        "panel.reachable",
        `the panel answered ${status}: ${message}`,
        "check PTERODACTYL_URL and the panel's logs",
      ),
    ];
  }
  const checks: ConfigCheck[] = [
    ok("panel.reachable", "the panel answers"),
    /^ptlc_/.test(facts.env.PTERODACTYL_API_KEY ?? "")
      ? fail(
        "panel.key",
        "the key is a client key (ptlc_): it passes the Application API only as a root admin's own key",
        keyFix,
      )
      : ok("panel.key", "the application key is accepted (root admin)"),
  ];
  const plans = facts.db.plans;
  const eggFailures = panelFailures({
    currency: "usd",
    terms: TERM_INTERVALS as Catalogue["terms"],
    regions: [],
    plans: plans.map(asCataloguePlan),
  }, { eggs: facts.panel.eggs, nodes: [] });
  checks.push(
    eggFailures.length === 0
      ? ok(
        "panel.eggs",
        `every active plan's egg exists and its required variables get valid values (${plans.length} plans)`,
      )
      : fail(
        "panel.eggs",
        eggFailures.join("; "),
        "fix ptero_nest_id / ptero_egg_id / environment in catalogue.json and run `npm run setup`, or import the egg on the panel",
      ),
  );
  const largest = largestPlan(plans);
  for (const region of facts.db.regions) {
    const id = `panel.region.${region}`;
    const nodes = facts.panel.nodes.filter((n) => n.region === region);
    const enabled = nodes.filter((n) => n.enabled && n.panel);
    const room = regionRoom(region, facts.panel.nodes, plans);
    const counts = plans.map((p) => `${room[p.id]}× ${p.id}`).join(", ");
    const nodeFix =
      "add a node in the region's panel location and run `npm run setup` (or enable one in ptero_nodes)";
    if (!largest) {
      checks.push(unknown(id, "no active plan to place"));
    } else if (enabled.length === 0) {
      checks.push(
        fail(
          id,
          nodes.length === 0
            ? `region ${region} has no node`
            : `region ${region} has no enabled node the panel knows (${
              nodes.map((n) =>
                `${n.name}: ${!n.enabled ? "disabled" : "missing on the panel"}`
              ).join(", ")
            })`,
          nodeFix,
        ),
      );
    } else if (room[largest.id] > 0) {
      checks.push(ok(id, `room for ${counts}`));
    } else {
      const why = enabled.map((n) =>
        `${n.name}: ${
          n.panel!.maintenance_mode
            ? "in maintenance"
            : n.freeAllocations === 0
            ? "no free allocation"
            : `no room for ${largest.id}`
        }`
      ).join(", ");
      checks.push(
        fail(
          id,
          `region ${region} cannot take its largest plan ${largest.id} (${why}); room for ${counts}`,
          "end the node's maintenance, add allocations, or add a node in the region's location and run `npm run setup`",
        ),
      );
    }
  }
  return checks;
}

/** db.*: migrations, RLS, grants, the sweep's schedule, the Vault secrets. */
export function databaseChecks(facts: ConfigFacts): ConfigCheck[] {
  const { db } = facts;
  const checks: ConfigCheck[] = [];
  if (db.migrationsApplied === null) {
    checks.push(
      unknown(
        "db.migrations",
        "supabase_migrations.schema_migrations does not exist: cannot tell which migrations ran",
        "apply the migrations with `supabase db push`",
      ),
    );
  } else {
    const applied = new Set(db.migrationsApplied);
    const missing = db.migrationFiles.filter((v) => !applied.has(v));
    checks.push(
      missing.length === 0
        ? ok(
          "db.migrations",
          `all ${db.migrationFiles.length} migrations applied`,
        )
        : fail(
          "db.migrations",
          `not applied: ${missing.join(", ")}`,
          "run `supabase db push` (locally: restart `npm start`)",
        ),
    );
  }
  checks.push(
    db.tablesWithoutRls.length === 0
      ? ok("db.rls", "row level security is on for every table in public")
      : fail(
        "db.rls",
        `row level security is off on ${db.tablesWithoutRls.join(", ")}`,
        "`alter table public.<name> enable row level security;` in a new migration",
      ),
  );
  const held = new Set(db.grants);
  const missing = REQUIRED_GRANTS.filter((g) => !held.has(g));
  const extra = db.grants.filter((g) =>
    !REQUIRED_GRANTS.includes(g) && !ALLOWED_GRANT.test(g)
  );
  checks.push(
    missing.length === 0 && extra.length === 0
      ? ok(
        "db.grants",
        "anon and authenticated hold exactly the grants the shop needs",
      )
      : fail(
        "db.grants",
        [
          missing.length ? `missing: ${missing.join(", ")}` : "",
          extra.length ? `not expected: ${extra.join(", ")}` : "",
        ].filter(Boolean).join("; "),
        "apply the migrations as they are (`supabase db push`); revoke grants made by hand",
      ),
  );
  if (db.cron) {
    const failed = db.cron.recentRuns.filter((s) => s !== "succeeded");
    const refused = (db.cron.answers ?? []).filter((s) =>
      s === null || s < 200 || s > 299
    );
    checks.push(
      !db.cron.jobExists
        ? fail(
          "db.sweep",
          "the cron job sync-server-status-sweep does not exist",
          "enable pg_cron and pg_net, then re-run the schedule migration (20261130000600_schedule.sql)",
        )
        : db.cron.recentRuns.length === 0
        ? unknown("db.sweep", "the cron job exists but has not run yet")
        : failed.length > 0
        ? fail(
          "db.sweep",
          `${failed.length} of the last ${db.cron.recentRuns.length} sweep runs did not succeed`,
          "read cron.job_run_details and net._http_response; check the Vault secrets project_url and sweep_secret_key",
        )
        : refused.length > 0
        ? fail(
          "db.sweep",
          `the sweep function did not answer 2xx to ${refused.length} of the last ${
            db.cron.answers!.length
          } calls (${refused.map((s) => s ?? "no answer").join(", ")})`,
          "401: the Vault secret sweep_secret_key is not a secret API key of the project; 404: project_url is wrong or sync-server-status is not deployed (`select * from net._http_response order by created desc limit 5`)",
        )
        : ok(
          "db.sweep",
          `the cron job ran ${db.cron.recentRuns.length} times recently, all succeeded${
            db.cron.answers?.length ? " and the function answered 2xx" : ""
          }`,
        ),
    );
  } else if (facts.local) {
    const age = db.lastSweep
      ? Math.round((facts.now.getTime() - db.lastSweep.getTime()) / 1000)
      : null;
    checks.push(
      age !== null && age <= 120
        ? ok("db.sweep", `the sweep ran ${age} s ago`)
        : fail(
          "db.sweep",
          age === null
            ? "the sweep never ran"
            : `the sweep last ran ${age} s ago`,
          "keep `npm start` running: its timer runs the sweep every SWEEP_INTERVAL_SECONDS",
        ),
    );
  } else {
    checks.push(
      unknown(
        "db.sweep",
        "pg_cron is not installed: cannot tell whether the sweep is scheduled",
        "enable pg_cron and pg_net (Database → Extensions), then `supabase db push`",
      ),
    );
  }
  if (db.vault === null) {
    checks.push(
      facts.local
        ? unknown(
          "db.vault",
          "no Vault here (the local stack runs the sweep from a timer)",
        )
        : unknown(
          "db.vault",
          "the vault schema does not exist",
          "enable Vault (Database → Extensions)",
        ),
    );
  } else {
    const absent = ["project_url", "sweep_secret_key"].filter((n) =>
      !db.vault!.includes(n)
    );
    checks.push(
      absent.length === 0
        ? ok(
          "db.vault",
          "the Vault secrets project_url and sweep_secret_key exist",
        )
        : fail(
          "db.vault",
          `Vault secret(s) missing: ${absent.join(", ")}`,
          absent.map((n) =>
            `select vault.create_secret('${
              n === "project_url"
                ? "https://<project-ref>.supabase.co"
                : "sb_secret_…"
            }', '${n}');`
          ).join(" "),
        ),
    );
  }
  return checks;
}

/** Every check, in report order. */
export function configChecks(facts: ConfigFacts): ConfigCheck[] {
  return [
    ...envChecks(facts),
    ...stripeChecks(facts),
    ...panelChecks(facts),
    ...databaseChecks(facts),
  ];
}

/** Exit status: 1 when a check fails, else 0 (unknowns do not fail). */
export function configExitStatus(checks: ConfigCheck[]): 0 | 1 {
  return checks.some((c) => c.ok === false) ? 1 : 0;
}

/** `{"ok", "checks": [{"id", "ok", "detail", "fix"}]}`. */
export function renderConfigJson(checks: ConfigCheck[]): string {
  return JSON.stringify(
    {
      ok: configExitStatus(checks) === 0,
      checks: checks.map(({ id, ok, detail, fix }) => ({
        id,
        ok,
        detail,
        fix,
      })),
    },
    null,
    2,
  );
}

const CODES = { green: 32, red: 31, yellow: 33, bold: 1 } as const;

/** One line per check (✓ / ✗ / !), each failure with its fix; colour on a terminal. */
export function renderConfigText(
  checks: ConfigCheck[],
  options: { color: boolean },
): string {
  const paint = (name: keyof typeof CODES, text: string) =>
    options.color ? `\x1b[${CODES[name]}m${text}\x1b[0m` : text;
  const width = Math.max(...checks.map((c) => c.id.length));
  const lines = checks.flatMap((c) => {
    const [symbol, colour] = c.ok === true
      ? ["✓", "green"] as const
      : c.ok === false
      ? ["✗", "red"] as const
      : ["!", "yellow"] as const;
    const line = `${paint(colour, symbol)} ${c.id.padEnd(width)}  ${c.detail}`;
    return c.ok !== true && c.fix
      ? [line, `  ${" ".repeat(width)}  ${paint("bold", "fix:")} ${c.fix}`]
      : [line];
  });
  const failed = checks.filter((c) => c.ok === false).length;
  const unknowns = checks.filter((c) => c.ok === null).length;
  const note = unknowns ? ` (${unknowns} unknown: !)` : "";
  lines.push(
    "",
    failed === 0
      ? paint("green", `all ${checks.length} checks pass${note}`)
      : paint("red", `${failed} of ${checks.length} checks fail${note}`),
  );
  return lines.join("\n");
}
