/**
 * The facts `npm run doctor -- --config` checks, gathered read-only: GETs on Stripe and
 * the panel, selects on the database (never `/nodes/{id}/configuration`: it answers the
 * node's daemon token).
 *
 * @module
 */
import type postgres from "postgres";
import type Stripe from "stripe";
import { z } from "zod";
import { listMigrations } from "../local/database.ts";
import {
  createPanelClient,
  type PanelEgg,
} from "../supabase/functions/_shared/panel/client.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import type {
  ConfigFacts,
  NodeFacts,
  PanelAnswer,
  PlanRow,
  PriceRow,
} from "./config_checks.ts";

const TIMEOUT_MS = 15_000;
const THREE_DAYS_S = 3 * 24 * 3600;

/** What gathering needs. */
export interface GatherOptions {
  env: Record<string, string | undefined>;
  sql: postgres.Sql;
  now?: Date;
}

/** Whether the project is the local stack. */
export function isLocal(supabaseUrl: string | undefined): boolean {
  try {
    return ["127.0.0.1", "localhost", "[::1]"].includes(
      new URL(supabaseUrl ?? "").hostname,
    );
  } catch {
    return false;
  }
}

/** Reads the database's side. Throws when the database cannot be read (exit 2). */
export async function gatherDatabase(
  sql: postgres.Sql,
): Promise<ConfigFacts["db"]> {
  const plans = await sql<PlanRow[]>`
    select id, memory_mb, disk_mb, allocations, ptero_nest_id, ptero_egg_id,
      docker_image, startup, environment
    from public.plans where active order by id`;
  const prices = await sql<PriceRow[]>`
    select pp.plan_id, pp.term::text as term, pp.stripe_price_id, pp.amount_cents, pp.currency
    from public.plan_prices pp join public.plans p on p.id = pp.plan_id
    where pp.active and p.active order by pp.plan_id, pp.term`;
  const regions = (await sql<{ id: string }[]>`
    select id from public.regions where active order by id`).map((r) => r.id);
  const [{ recorded }] = await sql<{ recorded: boolean }[]>`
    select to_regclass('supabase_migrations.schema_migrations') is not null as recorded`;
  const migrationsApplied = recorded
    ? (await sql<{ version: string }[]>`
        select version from supabase_migrations.schema_migrations`).map((r) =>
      r.version
    )
    : null;
  const tablesWithoutRls = (await sql<{ name: string }[]>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
    order by 1`).map((r) => r.name);
  const grants = (await sql<{ line: string }[]>`
    select r.rolname || ' ' || a.privilege_type || ' ' || c.relname as line
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    cross join lateral aclexplode(c.relacl) a
    join pg_roles r on r.oid = a.grantee
    where n.nspname = 'public' and r.rolname in ('anon', 'authenticated')
    union
    select r.rolname || ' ' || a.privilege_type || ' ' || c.relname || '(' || t.attname || ')'
    from pg_attribute t join pg_class c on c.oid = t.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    cross join lateral aclexplode(t.attacl) a
    join pg_roles r on r.oid = a.grantee
    where n.nspname = 'public' and r.rolname in ('anon', 'authenticated')
      and t.attnum > 0 and not t.attisdropped
    union
    select r.rolname || ' EXECUTE ' || p.proname
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    cross join (select rolname from pg_roles where rolname in ('anon', 'authenticated')) r
    where n.nspname = 'public' and p.prokind = 'f'
      and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
    order by 1`).map((r) => r.line);
  const [sweep] = await sql<{ updated_at: Date }[]>`
    select updated_at from public.shop_state where key = 'last_sweep'`;
  const [{ cron, vault }] = await sql<{ cron: boolean; vault: boolean }[]>`
    select to_regclass('cron.job') is not null as cron,
      to_regclass('vault.secrets') is not null as vault`;
  let cronFacts: ConfigFacts["db"]["cron"] = null;
  if (cron) {
    const [job] = await sql<{ jobid: number }[]>`
      select jobid from cron.job where jobname = 'sync-server-status-sweep'`;
    const runs = job
      ? (await sql<{ status: string }[]>`
          select status from cron.job_run_details where jobid = ${job.jobid}
          order by start_time desc nulls last limit 10`).map((r) => r.status)
      : [];
    const [{ net }] = await sql<{ net: boolean }[]>`
      select to_regclass('net._http_response') is not null as net`;
    const answers = net
      ? (await sql<{ status_code: number | null }[]>`
          select status_code from net._http_response
          order by created desc limit 10`).map((r) => r.status_code)
      : null;
    cronFacts = { jobExists: job !== undefined, recentRuns: runs, answers };
  }
  const vaultNames = vault
    ? (await sql<{ name: string }[]>`
        select name from vault.secrets
        where name in ('project_url', 'sweep_secret_key')`).map((r) => r.name)
    : null;
  return {
    plans,
    prices,
    regions,
    migrationFiles: (await listMigrations()).map((m) => m.version),
    migrationsApplied,
    tablesWithoutRls,
    grants,
    lastSweep: sweep?.updated_at ?? null,
    cron: cronFacts,
    vault: vaultNames,
  };
}

/** Reads Stripe's side (GETs only); a refused key or no answer is the error. */
export async function gatherStripe(
  env: Record<string, string | undefined>,
  priceIds: string[],
  now: Date,
): Promise<ConfigFacts["stripe"]> {
  const key = env.STRIPE_SECRET_KEY;
  if (!key) return { error: "STRIPE_SECRET_KEY is not set" };
  const stripe = createStripe(key, env.STRIPE_API_BASE, {
    timeoutMs: TIMEOUT_MS,
    retries: 0,
  });
  try {
    const endpoints: Stripe.WebhookEndpoint[] = [];
    for await (const e of stripe.webhookEndpoints.list({ limit: 100 })) {
      endpoints.push(e);
    }
    const prices = new Map<string, Stripe.Price | null>();
    for (const id of priceIds) {
      try {
        prices.set(id, await stripe.prices.retrieve(id));
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 404) throw error;
        prices.set(id, null);
      }
    }
    let failedEvents = 0;
    for await (
      const _ of stripe.events.list({
        delivery_success: false,
        created: { gte: Math.floor(now.getTime() / 1000) - THREE_DAYS_S },
        limit: 100,
      })
    ) failedEvents++;
    return { prices, endpoints, failedEvents };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

const NodeView = z.object({
  attributes: z.object({
    maintenance_mode: z.boolean(),
    memory: z.number(),
    memory_overallocate: z.number(),
    disk: z.number(),
    disk_overallocate: z.number(),
    allocated_resources: z.object({ memory: z.number(), disk: z.number() }),
  }).loose(),
});

const ErrorBody = z.object({
  errors: z.array(z.object({ detail: z.string().optional() }).loose()),
}).loose();

/** GET on the Application API: the body, or what the panel answered. */
async function panelGet(
  env: Record<string, string | undefined>,
  path: string,
): Promise<{ ok: true; body: unknown } | { ok: false; answer: PanelAnswer }> {
  let res: Response;
  try {
    res = await fetch(
      `${env.PTERODACTYL_URL!.replace(/\/$/, "")}/api/application${path}`,
      {
        headers: {
          Accept: "application/json",
          Authorization: `Bearer ${env.PTERODACTYL_API_KEY ?? ""}`,
        },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      },
    );
  } catch (error) {
    return {
      ok: false,
      answer: {
        status: 0,
        message: error instanceof Error ? error.message : String(error),
      },
    };
  }
  const text = await res.text();
  if (res.ok) {
    try {
      return { ok: true, body: JSON.parse(text) };
    } catch {
      return {
        ok: false,
        answer: { status: res.status, message: "the answer is not JSON" },
      };
    }
  }
  let message = text.slice(0, 200);
  try {
    const parsed = ErrorBody.safeParse(JSON.parse(text));
    if (parsed.success && parsed.data.errors[0]?.detail) {
      message = parsed.data.errors[0].detail;
    }
  } catch { /* not JSON: keep the text */ }
  return { ok: false, answer: { status: res.status, message } };
}

/** Reads the panel's side (GETs only). */
export async function gatherPanel(
  env: Record<string, string | undefined>,
  plans: PlanRow[],
  nodes: Omit<NodeFacts, "panel" | "freeAllocations">[],
): Promise<ConfigFacts["panel"]> {
  if (!env.PTERODACTYL_URL) {
    return { error: { status: 0, message: "PTERODACTYL_URL is not set" } };
  }
  const probe = await panelGet(env, "/nodes?per_page=1");
  if (!probe.ok) return { error: probe.answer };
  const client = createPanelClient({
    url: env.PTERODACTYL_URL,
    apiKey: env.PTERODACTYL_API_KEY ?? "",
    timeoutMs: TIMEOUT_MS,
    attempts: 1,
  });
  try {
    const eggs = new Map<string, PanelEgg | null>();
    for (const plan of plans) {
      const key = `${plan.ptero_nest_id}/${plan.ptero_egg_id}`;
      if (!eggs.has(key)) {
        eggs.set(
          key,
          await client.getEgg(plan.ptero_nest_id, plan.ptero_egg_id),
        );
      }
    }
    const facts: NodeFacts[] = [];
    for (const node of nodes) {
      const view = await panelGet(env, `/nodes/${node.panel_node_id}`);
      if (!view.ok && view.answer.status !== 404) return { error: view.answer };
      const panel = view.ok ? NodeView.parse(view.body).attributes : null;
      facts.push({
        ...node,
        panel,
        freeAllocations: panel
          ? (await client.freeAllocations(node.panel_node_id)).length
          : 0,
      });
    }
    return { eggs, nodes: facts };
  } catch (error) {
    return {
      error: {
        status: (error as { status?: number }).status ?? 0,
        message: error instanceof Error ? error.message : String(error),
      },
    };
  }
}

/** Gathers every fact; throws only when the database cannot be read. */
export async function gatherConfigFacts(
  options: GatherOptions,
): Promise<ConfigFacts> {
  const now = options.now ?? new Date();
  const db = await gatherDatabase(options.sql);
  const nodes = await options.sql<
    Omit<NodeFacts, "panel" | "freeAllocations">[]
  >`
    select n.panel_node_id, n.name, n.region, n.enabled
    from public.ptero_nodes n join public.regions r on r.id = n.region
    where r.active order by n.panel_node_id`;
  const [stripe, panel] = await Promise.all([
    gatherStripe(options.env, db.prices.map((p) => p.stripe_price_id), now),
    gatherPanel(options.env, db.plans, [...nodes]),
  ]);
  return {
    env: options.env,
    now,
    local: isLocal(options.env.SUPABASE_URL),
    stripe,
    panel,
    db,
  };
}
