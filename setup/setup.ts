/**
 * `npm run setup`: makes Stripe, the database and the panel's side of the shop match
 * the operator's catalogue (`catalogue.json`), the same code against the local
 * sandboxes and against real Stripe and a real panel. Idempotent: it reads first
 * (panel, Stripe, database), decides every change in plain functions, and writes only
 * the differences: Stripe products and prices (found by `lookup_key`, never
 * duplicated; a new amount is a new price that takes the key over), then the
 * catalogue tables in one transaction with no network call inside, then the webhook
 * endpoint. Orders are never touched. `dryRun` prints the plan and writes nothing.
 *
 * @module
 */
import postgres from "postgres";
import type Stripe from "stripe";
import { z } from "zod";
import { HANDLED_EVENT_TYPES } from "../supabase/functions/_shared/manifest.ts";
import {
  createPanelClient,
  type PanelEgg,
} from "../supabase/functions/_shared/panel/client.ts";
import { eggEnvironment } from "../supabase/functions/_shared/panel/server_spec.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
// The panel's own Laravel rules, as the sandbox panel implements them (pure code).
import { validate } from "./laravel_validation.ts";
import {
  type Catalogue,
  type CataloguePlan,
  cataloguePrices,
  lookupKey,
  productId,
  type Term,
} from "./catalogue.ts";

/** The kinds of object setup owns, as the summary lists them. */
export const KINDS = [
  "products",
  "prices",
  "regions",
  "plans",
  "plan_prices",
  "ptero_nodes",
  "webhook_endpoints",
  "portal_configurations",
] as const;
/** A kind of object setup owns. */
export type Kind = typeof KINDS[number];
/** What happened to the objects of one kind. */
export type Counts = Record<
  "created" | "updated" | "archived" | "unchanged",
  number
>;
/** Counts per kind. */
export type Summary = Record<Kind, Counts>;

/** The environment setup needs: the target's, as the functions get it. */
export const setupEnv = z.object({
  STRIPE_SECRET_KEY: z.string().regex(
    /^(sk|rk)_(test|live)_/,
    "must be a Stripe secret or restricted key (sk_test_, sk_live_, rk_…)",
  ),
  STRIPE_API_BASE: z.url().optional(),
  PTERODACTYL_URL: z.url(),
  PTERODACTYL_API_KEY: z.string().min(1),
  SUPABASE_URL: z.url(),
  DB_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
});
/** The parsed environment. */
export type SetupEnv = z.infer<typeof setupEnv>;

/** Reads the environment (DB from SUPABASE_DB_URL or DATABASE_URL), naming every problem. */
export function parseSetupEnv(
  env: Record<string, string | undefined>,
): SetupEnv {
  const clean = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const parsed = setupEnv.safeParse({
    ...clean,
    DB_URL: clean.SUPABASE_DB_URL ?? clean.DATABASE_URL,
  });
  if (parsed.success) return parsed.data;
  throw new SetupConfigError(
    `Invalid environment: ${
      parsed.error.issues.map((i) =>
        `${
          i.path[0] === "DB_URL"
            ? "SUPABASE_DB_URL or DATABASE_URL"
            : i.path.join(".")
        }: ${i.input === undefined ? "missing" : i.message}`
      ).join("; ")
    }`,
  );
}

/** Setup cannot run (configuration): exit 2. */
export class SetupConfigError extends Error {
  override name = "SetupConfigError";
}

/** `test` or `live`, from the key's prefix. */
export function stripeMode(key: string): "test" | "live" {
  return /^(sk|rk)_live_/.test(key) ? "live" : "test";
}

/** Options of `runSetup`. */
export interface SetupOptions {
  catalogue: Catalogue;
  env: Record<string, string | undefined>;
  /** Print the plan, change nothing. */
  dryRun?: boolean;
  /** Skip the live-mode confirmation. */
  yes?: boolean;
  /** Asked before a live-mode run changes anything (default: refuse). */
  confirm?: (question: string) => boolean | Promise<boolean>;
  /** Where lines go (default console.log). */
  out?: (line: string) => void;
}

/** What a run did. */
export interface SetupResult {
  exitCode: 0 | 1 | 2;
  mode?: "test" | "live";
  summary: Summary;
  /** Named failures (a missing egg, a region without nodes…). */
  failures: string[];
  /** The new endpoint's signing secret (only when setup created it). */
  webhookSecret?: string;
}

// ---------------------------------------------------------------- panel

/** A panel node as setup needs it. */
export interface PanelNodeFacts {
  id: number;
  name: string;
  location_id: number;
  memory: number;
  disk: number;
}

const NodePage = z.object({
  data: z.array(z.object({
    attributes: z.object({
      id: z.number().int(),
      name: z.string(),
      location_id: z.number().int(),
      memory: z.number().int(),
      disk: z.number().int(),
    }).loose(),
  })),
  meta: z.object({
    pagination: z.object({ total_pages: z.number() }).loose(),
  }).loose(),
});

/** Every node of the panel (`GET /api/application/nodes`, all pages). */
export async function listPanelNodes(
  url: string,
  apiKey: string,
): Promise<PanelNodeFacts[]> {
  const nodes: PanelNodeFacts[] = [];
  for (let page = 1;; page++) {
    const res = await fetch(
      `${
        url.replace(/\/$/, "")
      }/api/application/nodes?page=${page}&per_page=100`,
      {
        headers: {
          Accept: "application/json",
          Authorization: `Bearer ${apiKey}`,
        },
        signal: AbortSignal.timeout(20_000),
      },
    );
    const text = await res.text();
    if (!res.ok) {
      throw new Error(
        `GET /api/application/nodes: panel answered ${res.status}: ${
          text.slice(0, 200)
        }`,
      );
    }
    const body = NodePage.parse(JSON.parse(text));
    nodes.push(...body.data.map((d) => d.attributes));
    if (page >= body.meta.pagination.total_pages) return nodes;
  }
}

/** What the panel has that the catalogue names. */
export interface PanelFacts {
  /** By `nest/egg`; null when the panel has no such egg. */
  eggs: Map<string, PanelEgg | null>;
  nodes: PanelNodeFacts[];
}

function eggKey(plan: Pick<CataloguePlan, "nest_id" | "egg_id">): string {
  return `${plan.nest_id}/${plan.egg_id}`;
}

/**
 * The catalogue's panel faults: an active plan whose egg is missing, whose
 * environment names a variable the egg lacks or gives a required variable no valid
 * value (plan's environment, else the egg's default, checked against its rules); a
 * region with no node in its location.
 */
export function panelFailures(
  catalogue: Catalogue,
  panel: PanelFacts,
): string[] {
  const failures: string[] = [];
  for (const plan of catalogue.plans.filter((p) => p.active)) {
    const egg = panel.eggs.get(eggKey(plan));
    if (!egg) {
      failures.push(
        `plan "${plan.id}": egg ${plan.egg_id} of nest ${plan.nest_id} does not exist on the panel (fix nest_id/egg_id in catalogue.json, or import the egg)`,
      );
      continue;
    }
    let environment: Record<string, string>;
    try {
      environment = eggEnvironment(plan, egg);
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
      continue;
    }
    for (const variable of egg.variables) {
      const value = environment[variable.env_variable];
      // The panel turns empty strings into null before it validates.
      const data = { [variable.env_variable]: value === "" ? null : value };
      for (
        const f of validate(data, { [variable.env_variable]: variable.rules })
      ) {
        failures.push(
          `plan "${plan.id}": variable ${variable.env_variable} of egg "${egg.name}" gets ${
            JSON.stringify(value)
          }, which fails its rule "${f.rule}" (${variable.rules}): set it in the plan's environment`,
        );
      }
    }
  }
  for (const region of catalogue.regions) {
    if (!panel.nodes.some((n) => n.location_id === region.panel_location_id)) {
      failures.push(
        `region "${region.id}": the panel has no node in location ${region.panel_location_id}`,
      );
    }
  }
  return failures;
}

// ---------------------------------------------------------------- Stripe

/** What Stripe has that setup owns. */
export interface StripeFacts {
  products: Map<string, Stripe.Product | null>;
  /** Prices by lookup key. */
  prices: Map<string, Stripe.Price>;
  endpoints: Stripe.WebhookEndpoint[];
  /** The portal configuration setup made (null: none yet). */
  portal?: Stripe.BillingPortal.Configuration | null;
}

/** One Stripe write. */
export type StripeAction =
  | {
    kind: "product";
    op: "create" | "update";
    id: string;
    params: {
      id?: string;
      name: string;
      active: boolean;
      metadata: Record<string, string>;
    };
  }
  | {
    kind: "price";
    op: "create";
    key: string;
    params: Stripe.PriceCreateParams;
    /** the price the key moves from, archived after (when still active) */
    replaces?: Stripe.Price;
    why: string;
  }
  | { kind: "price"; op: "archive"; key: string; id: string; why: string }; // deno-fmt-ignore

/** A plan × term and the price id it will have (null until a planned create runs). */
export interface PlannedPrice {
  planId: string;
  term: Term;
  key: string;
  amount: number;
  priceId: string | null;
}

/** The Stripe writes that make Stripe match the catalogue. */
export function planStripe(
  catalogue: Catalogue,
  facts: StripeFacts,
): {
  actions: StripeAction[];
  prices: PlannedPrice[];
  unchanged: Record<"products" | "prices", number>;
} {
  const actions: StripeAction[] = [];
  const unchanged = { products: 0, prices: 0 };
  for (const plan of catalogue.plans) {
    const id = productId(plan.id);
    const want = {
      name: plan.display_name,
      active: plan.active,
      metadata: { plan_id: plan.id, game: plan.game },
    };
    const have = facts.products.get(id);
    if (!have) {
      actions.push({
        kind: "product",
        op: "create",
        id,
        params: { id, ...want },
      });
    } else if (
      have.name !== want.name || have.active !== want.active ||
      have.metadata?.plan_id !== plan.id || have.metadata?.game !== plan.game
    ) {
      actions.push({ kind: "product", op: "update", id, params: want });
    } else unchanged.products++;
  }
  const prices: PlannedPrice[] = [];
  for (const { plan, term, amount } of cataloguePrices(catalogue)) {
    const key = lookupKey(plan.id, term);
    const recurring = catalogue.terms[term];
    const have = facts.prices.get(key);
    const planned: PlannedPrice = {
      planId: plan.id,
      term,
      key,
      amount,
      priceId: null,
    };
    prices.push(planned);
    const create = (why: string, replaces?: Stripe.Price) =>
      actions.push({
        kind: "price",
        op: "create",
        key,
        why,
        replaces,
        params: {
          product: productId(plan.id),
          unit_amount: amount,
          currency: catalogue.currency,
          recurring: {
            interval: recurring.interval,
            interval_count: recurring.interval_count,
          },
          lookup_key: key,
          ...(have ? { transfer_lookup_key: true } : {}),
          nickname: `${plan.display_name} (${term})`,
          metadata: { plan_id: plan.id, term },
          ...(plan.active ? {} : { active: false }),
        },
      });
    if (!have) {
      create(
        `new: ${money(amount, catalogue.currency)} every ${every(recurring)}`,
      );
      continue;
    }
    const same = have.unit_amount === amount &&
      have.currency === catalogue.currency &&
      have.product === productId(plan.id) &&
      have.recurring?.interval === recurring.interval &&
      have.recurring?.interval_count === recurring.interval_count;
    if (!same) {
      create(
        `${money(have.unit_amount ?? 0, have.currency)} every ${
          every(have.recurring ?? { interval: "?", interval_count: 1 })
        } → ${money(amount, catalogue.currency)} every ${
          every(recurring)
        }: a new price takes the lookup key${
          have.active ? ", the old one is archived" : ""
        }`,
        have,
      );
    } else if (have.active === plan.active) {
      planned.priceId = have.id;
      unchanged.prices++;
    } else if (plan.active) {
      create(`${have.id} was archived in Stripe: replaced`, have);
    } else {
      planned.priceId = have.id;
      actions.push({
        kind: "price",
        op: "archive",
        key,
        id: have.id,
        why: `plan "${plan.id}" is retired`,
      });
    }
  }
  return { actions, prices, unchanged };
} // deno-fmt-ignore

function money(amount: number, currency: string): string {
  return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
}

function every(r: { interval: string; interval_count: number }): string {
  return r.interval_count === 1
    ? r.interval
    : `${r.interval_count} ${r.interval}s`;
}

async function readStripe(
  stripe: Stripe,
  catalogue: Catalogue,
): Promise<StripeFacts> {
  const products = new Map<string, Stripe.Product | null>();
  for (const plan of catalogue.plans) {
    const id = productId(plan.id);
    try {
      products.set(id, await stripe.products.retrieve(id));
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      products.set(id, null);
    }
  }
  const keys = cataloguePrices(catalogue).map((p) =>
    lookupKey(p.plan.id, p.term)
  );
  const prices = new Map<string, Stripe.Price>();
  for (let i = 0; i < keys.length; i += 10) {
    const chunk = keys.slice(i, i + 10);
    for await (
      const price of stripe.prices.list({ lookup_keys: chunk, limit: 100 })
    ) {
      if (price.lookup_key) prices.set(price.lookup_key, price);
    }
  }
  const endpoints: Stripe.WebhookEndpoint[] = [];
  for await (const e of stripe.webhookEndpoints.list({ limit: 100 })) {
    endpoints.push(e);
  }
  let portal: Stripe.BillingPortal.Configuration | null = null;
  for await (
    const c of stripe.billingPortal.configurations.list({ limit: 100 })
  ) {
    if (c.metadata?.registered_by === PORTAL_MARK && c.active) portal = c;
  }
  return { products, prices, endpoints, portal };
}

// ---------------------------------------------------------------- portal

/** How setup marks the portal configuration it made (metadata `registered_by`). */
const PORTAL_MARK = "npm run setup";

/**
 * The customer portal the shop opens: card, invoices and cancellation at the period
 * end; no plan switches (those go through `change-server-plan`, which checks the
 * node's room and the disk in use).
 */
export const PORTAL_FEATURES = {
  customer_update: { enabled: false },
  invoice_history: { enabled: true },
  payment_method_update: { enabled: true },
  subscription_cancel: {
    enabled: true,
    mode: "at_period_end",
    cancellation_reason: {
      enabled: true,
      options: ["too_expensive", "unused", "switched_service", "other"],
    },
  },
  subscription_update: { enabled: false },
} satisfies Stripe.BillingPortal.ConfigurationCreateParams.Features;

// ---------------------------------------------------------------- webhook

/** The endpoint write, if any: `<SUPABASE_URL>/functions/v1/stripe-webhook` with exactly the handled types. */
export function planEndpoint(
  supabaseUrl: string,
  endpoints: Stripe.WebhookEndpoint[],
):
  | { op: "create"; url: string }
  | { op: "update"; url: string; id: string; why: string }
  | { op: "unchanged"; url: string; id: string } {
  const url = `${supabaseUrl.replace(/\/$/, "")}/functions/v1/stripe-webhook`;
  const found = endpoints.find((e) => e.url === url);
  if (!found) return { op: "create", url };
  const want = [...HANDLED_EVENT_TYPES].sort();
  const have = [...found.enabled_events].sort();
  const sameEvents = want.length === have.length &&
    want.every((t, i) => t === have[i]);
  if (sameEvents && found.status === "enabled") {
    return { op: "unchanged", url, id: found.id };
  }
  const missing = want.filter((t) => !have.includes(t));
  const extra = have.filter((t) => !(want as string[]).includes(t));
  const why = [
    found.status !== "enabled" ? "disabled" : "",
    missing.length ? `missing ${missing.join(", ")}` : "",
    extra.length ? `extra ${extra.join(", ")}` : "",
  ].filter(Boolean).join("; ");
  return { op: "update", url, id: found.id, why };
}

// ---------------------------------------------------------------- database

type Row = Record<string, unknown>;

/** One database write of the catalogue tables. */
export interface DbChange {
  table: "regions" | "plans" | "plan_prices" | "ptero_nodes";
  op: "insert" | "update" | "deactivate";
  key: string;
  row: Row;
}

/** The database as setup reads it. */
export interface DbFacts {
  regions: Row[];
  plans: Row[];
  plan_prices: Row[];
  ptero_nodes: Row[];
}

const PLAN_COLUMNS = [
  "game",
  "display_name",
  "memory_mb",
  "disk_mb",
  "cpu_percent",
  "swap_mb",
  "io_weight",
  "databases",
  "backups",
  "allocations",
  "ptero_nest_id",
  "ptero_egg_id",
  "docker_image",
  "startup",
  "environment",
  "active",
] as const; // deno-fmt-ignore

function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${
    Object.keys(value).sort().map((k) =>
      `${JSON.stringify(k)}:${canonical((value as Row)[k])}`
    ).join(",")
  }}`;
}

function differs(have: Row, want: Row): boolean {
  return Object.keys(want).some((k) =>
    canonical(have[k]) !== canonical(want[k])
  );
}

/**
 * The writes that make `regions`, `plans`, `plan_prices` and `ptero_nodes` match the
 * catalogue, the Stripe price ids and the panel's nodes. Rows the catalogue no
 * longer names are deactivated, never deleted (orders point at them). A node's
 * `enabled` is the operator's switch: kept, except for a node the panel no longer
 * has in a sold region.
 */
export function planDatabase(
  catalogue: Catalogue,
  prices: PlannedPrice[],
  nodes: PanelNodeFacts[],
  db: DbFacts,
): { changes: DbChange[]; unchanged: Record<DbChange["table"], number> } {
  const changes: DbChange[] = [];
  const unchanged = { regions: 0, plans: 0, plan_prices: 0, ptero_nodes: 0 };
  const sync = (
    table: DbChange["table"],
    keyOf: (row: Row) => string,
    have: Row[],
    want: Row[],
    retire: (row: Row) => Row | null,
  ) => {
    const byKey = new Map(have.map((r) => [keyOf(r), r]));
    const wanted = new Set<string>();
    for (const row of want) {
      const key = keyOf(row);
      wanted.add(key);
      const current = byKey.get(key);
      if (!current) changes.push({ table, op: "insert", key, row });
      else if (differs(current, row)) {
        changes.push({ table, op: "update", key, row });
      } else unchanged[table]++;
    }
    for (const row of have) {
      const key = keyOf(row);
      if (wanted.has(key)) continue;
      const off = retire(row);
      if (off) changes.push({ table, op: "deactivate", key, row: off });
    }
  };
  sync(
    "regions",
    (r) => String(r.id),
    db.regions,
    catalogue.regions.map((r) => ({ ...r, active: true })),
    (r) => r.active ? { id: r.id, active: false } : null,
  );
  sync(
    "plans",
    (r) => String(r.id),
    db.plans,
    catalogue.plans.map((p) => ({
      id: p.id,
      game: p.game,
      display_name: p.display_name,
      memory_mb: p.memory_mb,
      disk_mb: p.disk_mb,
      cpu_percent: p.cpu_percent,
      swap_mb: p.swap_mb,
      io_weight: p.io_weight,
      databases: p.databases,
      backups: p.backups,
      allocations: p.allocations,
      ptero_nest_id: p.nest_id,
      ptero_egg_id: p.egg_id,
      docker_image: p.docker_image,
      startup: p.startup,
      environment: p.environment,
      active: p.active,
    })),
    (r) => r.active ? { id: r.id, active: false } : null,
  );
  const activePlans = new Set(
    catalogue.plans.filter((p) => p.active).map((p) => p.id),
  );
  sync(
    "plan_prices",
    (r) => `${r.plan_id}/${r.term}`,
    db.plan_prices,
    prices.map((p) => ({
      plan_id: p.planId,
      term: p.term,
      stripe_price_id: p.priceId ?? `(new price ${p.key})`,
      amount_cents: p.amount,
      currency: catalogue.currency,
      active: activePlans.has(p.planId),
    })),
    (r) =>
      r.active ? { plan_id: r.plan_id, term: r.term, active: false } : null,
  );
  const regionOf = new Map(
    catalogue.regions.map((r) => [r.panel_location_id, r.id]),
  );
  const enabledOf = new Map(
    db.ptero_nodes.map((n) => [Number(n.panel_node_id), n.enabled]),
  );
  sync(
    "ptero_nodes",
    (r) => String(r.panel_node_id),
    db.ptero_nodes,
    nodes.filter((n) => regionOf.has(n.location_id)).map((n) => ({
      panel_node_id: n.id,
      panel_location_id: n.location_id,
      name: n.name,
      region: regionOf.get(n.location_id)!,
      memory_mb: n.memory,
      disk_mb: n.disk,
      enabled: enabledOf.get(n.id) ?? true,
    })),
    (r) =>
      r.enabled ? { panel_node_id: r.panel_node_id, enabled: false } : null,
  );
  return { changes, unchanged };
}

async function readDatabase(sql: postgres.Sql | postgres.TransactionSql) {
  const [regions, plans, plan_prices, ptero_nodes] = [
    await sql`select id, display_name, panel_location_id, active from public.regions order by id`,
    await sql`select id, ${
      sql(PLAN_COLUMNS as unknown as string[])
    } from public.plans order by id`,
    await sql`select plan_id, term::text as term, stripe_price_id, amount_cents, currency, active from public.plan_prices order by plan_id, term`,
    await sql`select panel_node_id, panel_location_id, name, region, memory_mb, disk_mb, enabled from public.ptero_nodes order by panel_node_id`,
  ];
  return { regions, plans, plan_prices, ptero_nodes } as unknown as DbFacts;
} // deno-fmt-ignore

async function applyDatabase(tx: postgres.TransactionSql, changes: DbChange[]) {
  const order: DbChange["table"][] = ["regions", "plans", "plan_prices", "ptero_nodes"];
  for (const table of order) {
    for (const c of changes.filter((c) => c.table === table)) {
      const row = c.row as Record<string, postgres.ParameterOrJSON<never>>;
      if (c.op === "insert") {
        await tx`insert into ${tx("public." + table)} ${tx(row)}`;
        continue;
      }
      const where = table === "plan_prices"
        ? tx`plan_id = ${row.plan_id as string} and term = ${row.term as string}`
        : table === "ptero_nodes"
        ? tx`panel_node_id = ${row.panel_node_id as number}`
        : tx`id = ${row.id as string}`;
      const set = table === "plans" ? { ...row, updated_at: new Date() } : row;
      await tx`update ${tx("public." + table)} set ${tx(set as Record<string, never>)} where ${where}`;
    }
  }
} // deno-fmt-ignore

// ---------------------------------------------------------------- the run

function emptySummary(): Summary {
  return Object.fromEntries(
    KINDS.map((k) => [k, { created: 0, updated: 0, archived: 0, unchanged: 0 }]),
  ) as Summary;
}

/** Runs setup: reads, plans, and (unless `dryRun`) applies. */
export async function runSetup(options: SetupOptions): Promise<SetupResult> {
  const out = options.out ?? ((line: string) => console.log(line));
  const summary = emptySummary();
  const failures: string[] = [];
  let env: SetupEnv;
  try {
    env = parseSetupEnv(options.env);
  } catch (error) {
    out(`✗ ${(error as Error).message}`);
    return { exitCode: 2, summary, failures: [(error as Error).message] };
  }
  const mode = stripeMode(env.STRIPE_SECRET_KEY);
  const { catalogue } = options;
  out(
    `Stripe ${mode.toUpperCase()} mode (${env.STRIPE_SECRET_KEY.slice(0, 8)}…)${
      env.STRIPE_API_BASE ? ` at ${env.STRIPE_API_BASE}` : ""
    }; panel ${env.PTERODACTYL_URL}; project ${env.SUPABASE_URL}${
      options.dryRun ? "; dry run: nothing will change" : ""
    }`,
  );
  const stripe = createStripe(env.STRIPE_SECRET_KEY, env.STRIPE_API_BASE);
  const sql = postgres(env.DB_URL, { max: 1, onnotice: () => {} });
  try {
    // 1. Read everything first: no network call runs inside the transaction.
    const panel = createPanelClient({
      url: env.PTERODACTYL_URL,
      apiKey: env.PTERODACTYL_API_KEY,
    });
    const eggs = new Map<string, PanelEgg | null>();
    for (const plan of catalogue.plans) {
      if (!eggs.has(eggKey(plan))) {
        eggs.set(eggKey(plan), await panel.getEgg(plan.nest_id, plan.egg_id));
      }
    }
    const nodes = await listPanelNodes(
      env.PTERODACTYL_URL,
      env.PTERODACTYL_API_KEY,
    );
    failures.push(...panelFailures(catalogue, { eggs, nodes }));
    const stripeFacts = await readStripe(stripe, catalogue);
    const stripePlan = planStripe(catalogue, stripeFacts);
    const endpoint = planEndpoint(env.SUPABASE_URL, stripeFacts.endpoints);
    const dbPlan = planDatabase(
      catalogue,
      stripePlan.prices,
      nodes,
      await readDatabase(sql),
    );

    out("");
    out("Panel");
    for (const f of failures) out(`  ✗ ${f}`);
    if (failures.length === 0) {
      out(`  ✓ every active plan's egg exists and its variables are valid`);
      out(`  ✓ every region has nodes (${nodes.length} on the panel)`);
    }
    out("Stripe");
    for (const a of stripePlan.actions) {
      out(
        a.kind === "product"
          ? `  ${a.op === "create" ? "+" : "~"} product ${a.id}`
          : `  ${a.op === "create" ? "+" : "-"} price ${a.key}: ${a.why}`,
      );
    }
    out(
      stripeFacts.portal
        ? `  = portal configuration ${stripeFacts.portal.id}`
        : "  + portal configuration (card, invoices, cancel at period end; no plan switches)",
    );
    out(
      endpoint.op === "create"
        ? `  + webhook endpoint ${endpoint.url}`
        : endpoint.op === "update"
        ? `  ~ webhook endpoint ${endpoint.url}: ${endpoint.why}`
        : `  = webhook endpoint ${endpoint.url}`,
    );
    out("Database");
    for (const c of dbPlan.changes) {
      out(
        `  ${
          c.op === "insert" ? "+" : c.op === "update" ? "~" : "-"
        } ${c.table} ${c.key}`,
      );
    }
    if (failures.length > 0) {
      out("");
      out(`✗ ${failures.length} problem(s) above: nothing was changed`);
      return { exitCode: 1, mode, summary, failures };
    }
    if (options.dryRun) {
      out("");
      out("Dry run: nothing was changed");
      return { exitCode: 0, mode, summary, failures };
    }
    const anything = stripePlan.actions.length > 0 || !stripeFacts.portal ||
      dbPlan.changes.length > 0 || endpoint.op !== "unchanged";
    if (anything && mode === "live" && !options.yes) {
      const ok = await (options.confirm ?? (() => false))(
        "This changes LIVE Stripe. Go on?",
      );
      if (!ok) {
        out("Not confirmed: nothing was changed (--yes skips the question)");
        return { exitCode: 1, mode, summary, failures };
      }
    }

    // 2. Stripe: products, then prices (the key moves, then the old price is archived).
    for (const a of stripePlan.actions) {
      if (a.kind === "product") {
        if (a.op === "create") {
          await stripe.products.create(a.params);
          summary.products.created++;
        } else {
          await stripe.products.update(a.id, a.params);
          summary.products.updated++;
        }
      } else if (a.op === "create") {
        const price = await stripe.prices.create(a.params);
        summary.prices.created++;
        const planned = stripePlan.prices.find((p) => p.key === a.key)!;
        planned.priceId = price.id;
        if (a.replaces?.active) {
          await stripe.prices.update(a.replaces.id, { active: false });
          summary.prices.archived++;
        }
      } else {
        await stripe.prices.update(a.id, { active: false });
        summary.prices.archived++;
      }
    }
    summary.products.unchanged = stripePlan.unchanged.products;
    summary.prices.unchanged = stripePlan.unchanged.prices;

    // 3. The database, in one transaction, re-read under locks.
    await sql.begin(async (tx) => {
      await tx`lock table public.regions, public.plans, public.plan_prices, public.ptero_nodes in share row exclusive mode`;
      const { changes, unchanged } = planDatabase(
        catalogue,
        stripePlan.prices,
        nodes,
        await readDatabase(tx),
      );
      await applyDatabase(tx, changes);
      for (const table of Object.keys(unchanged) as DbChange["table"][]) {
        summary[table].unchanged = unchanged[table];
      }
      for (const c of changes) {
        summary[c.table][
          c.op === "insert"
            ? "created"
            : c.op === "update"
            ? "updated"
            : "archived"
        ]++;
      }
    });

    // 4. The customer portal's configuration (once; its id is a function secret).
    let portalId = stripeFacts.portal?.id;
    if (!stripeFacts.portal) {
      const created = await stripe.billingPortal.configurations.create({
        features: PORTAL_FEATURES,
        metadata: { registered_by: PORTAL_MARK },
      });
      portalId = created.id;
      summary.portal_configurations.created++;
    } else summary.portal_configurations.unchanged++;

    // 5. The webhook endpoint.
    let webhookSecret: string | undefined;
    if (endpoint.op === "create") {
      const created = await stripe.webhookEndpoints.create({
        url: endpoint.url,
        enabled_events: [...HANDLED_EVENT_TYPES],
        description: "stripe-webhook function (npm run setup)",
        metadata: { registered_by: "npm run setup" },
      });
      webhookSecret = created.secret;
      summary.webhook_endpoints.created++;
    } else if (endpoint.op === "update") {
      await stripe.webhookEndpoints.update(endpoint.id, {
        enabled_events: [...HANDLED_EVENT_TYPES],
        disabled: false,
      });
      summary.webhook_endpoints.updated++;
    } else summary.webhook_endpoints.unchanged++;

    out("");
    if (webhookSecret) {
      out("The webhook's signing secret, shown once by Stripe: set it now");
      out(`  supabase secrets set STRIPE_WEBHOOK_SECRET=${webhookSecret}`);
      out("");
    }
    if (summary.portal_configurations.created > 0) {
      out("The customer portal's configuration (no plan switches): set it now");
      out(`  supabase secrets set STRIPE_PORTAL_CONFIGURATION=${portalId}`);
      out("");
    }
    out(formatSummary(summary));
    return { exitCode: 0, mode, summary, failures, webhookSecret };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    out(`✗ setup failed: ${message}`);
    out(formatSummary(summary));
    return { exitCode: 1, mode, summary, failures: [...failures, message] };
  } finally {
    await sql.end();
  }
}

/** The summary table: created / updated / archived / unchanged per kind. */
export function formatSummary(summary: Summary): string {
  const head = ["", "created", "updated", "archived", "unchanged"];
  const rows = KINDS.map((k) => [
    k,
    ...(["created", "updated", "archived", "unchanged"] as const).map((c) =>
      String(summary[k][c])
    ),
  ]);
  const width = head.map((_, i) =>
    Math.max(...[head, ...rows].map((r) => r[i].length))
  );
  return [head, ...rows].map((r) =>
    r.map((cell, i) =>
      i === 0 ? cell.padEnd(width[i]) : cell.padStart(width[i])
    )
      .join("  ")
  ).join("\n");
}
