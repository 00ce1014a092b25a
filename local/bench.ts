/**
 * `npm run bench`: every figure a ratio against a reference measured beside it, in the
 * same run on the same machine (embedded Postgres, or DATABASE_URL; sandboxes on
 * loopback). Prints a table (measure, reference, ratio, target, pass/fail) and writes
 * it to `bench/results/<YYYY-MM-DD>.json`, keeping the last five runs.
 *
 * - stripe-webhook's acknowledgement, 720 signed deliveries at 32 concurrent (20 %
 *   duplicates), for three mixes (ignored events, duplicates, purchases), against a
 *   handler that only verifies the signature and against the durable floor (verify,
 *   then one `insert … on conflict do nothing` on a pool of five connections);
 * - create-checkout-session p50 / p95 against a bare function that verifies the user's
 *   JWT and reads the plan;
 * - the cold start of each function (a fresh `deno run` of its `index.ts` until its
 *   first answer) against a bare `Deno.serve`;
 * - a burst of 100 purchases against the panel sandbox at 240 requests a minute and
 *   150 ms a call: all reach `installing`; the time against the rate limit's floor;
 * - the sweep over 1,000 / 10,000 / 100,000 panel servers: panel and Stripe calls and
 *   time per sweep, the panel calls against the rate limit's share of one interval.
 *
 * @module
 */
import postgres from "postgres";
import { FUNCTIONS as MANIFEST } from "../supabase/functions/_shared/manifest.ts";
import { resolveOffer } from "../supabase/functions/_shared/orders/catalog.ts";
import { createUserVerifier } from "../supabase/functions/_shared/platform/user_auth.ts";
import {
  clientKey,
  type Env,
  supabaseUserEnv,
} from "../supabase/functions/_shared/platform/config.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import {
  json,
  withErrorHandling,
} from "../supabase/functions/_shared/platform/http.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { wireFunction } from "../supabase/functions/_shared/platform/wiring.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import { checkoutFromEnv } from "../supabase/functions/create-checkout-session/handler.ts";
import { webhookFromEnv } from "../supabase/functions/stripe-webhook/handler.ts";
import {
  coldStart,
  createFloorTable,
  type Delivery,
  durableFloorHandler,
  load,
  type LoadResult,
  percentile,
  serve,
  signatureOnlyHandler,
  signedDeliveries,
} from "./bench_load.ts";
import { benchSweep } from "./bench_sweep.ts";
import { createDatabase, dropDatabase } from "./database.ts";
import { userAccessToken } from "./keys.ts";
import { startPostgres } from "./postgres.ts";
import { callSweep, type Stack, startStack } from "./stack.ts";
import { ensureUser, postAsUser } from "./token.ts";

const DELIVERIES = 720;
const CONCURRENCY = 32;
const DUPLICATE_SHARE = 0.2;
const ROUNDS = 6;
const CHECKOUTS = 60;
/**
 * The local panel's nodes hold 88 servers of the smallest plan (us-east 48, eu-west
 * 40): 80 purchases, 40 a region, fill eu-west exactly.
 */
const PURCHASES = 80;
const PANEL_RATE_PER_MINUTE = 240;
const PANEL_LATENCY_MS = 150;
const COLD_STARTS = 3;
const KEEP_RESULTS = 5;

/** One line of the table. */
export interface BenchRow {
  section: string;
  measure: string;
  value: number;
  unit: string;
  reference: string;
  reference_value: number;
  ratio: number;
  /** `>= x` or `<= x` on the ratio; empty for a figure shown without a target. */
  target: string;
  pass: boolean | null;
}

function row(
  section: string,
  measure: string,
  value: number,
  unit: string,
  reference: string,
  referenceValue: number,
  target = "",
  ratio = value / referenceValue,
): BenchRow {
  const [op, bound] = target.split(" ");
  const pass = target === ""
    ? null
    : op === ">="
    ? ratio >= Number(bound)
    : ratio <= Number(bound);
  return {
    section,
    measure,
    value,
    unit,
    reference,
    reference_value: referenceValue,
    ratio,
    target,
    pass,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** An event of a type the shop acknowledges without acting on it. */
function ignoredEvent(id: string, i: number): Record<string, unknown> {
  const types = [
    "customer.created",
    "payment_intent.created",
    "charge.succeeded",
    "invoice.created",
    "customer.updated",
  ];
  return {
    id,
    object: "event",
    type: types[i % types.length],
    api_version: "2026-10-28.endive",
    created: Math.floor(Date.now() / 1000),
    data: { object: { id: `obj_${id}`, object: "customer", metadata: {} } },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
  };
}

function uniqueIds(deliveries: Delivery[]): string[] {
  return [
    ...new Set(
      deliveries.map((d) => (JSON.parse(d.body) as { id: string }).id),
    ),
  ];
}

/** Median throughput and p99 of one load of each handler per round, taken in turns. */
async function compare(
  urls: Record<string, string>,
  rounds: Delivery[][],
): Promise<
  Record<string, { perSecond: number; p99: number; runs: LoadResult[] }>
> {
  const runs: Record<string, LoadResult[]> = {};
  for (const [r, deliveries] of rounds.entries()) {
    // Every other round in the reverse order: none always runs after the others.
    const turn = r % 2 === 0
      ? Object.entries(urls)
      : Object.entries(urls).reverse();
    for (const [name, url] of turn) {
      (runs[name] ??= []).push(await load(url, deliveries, CONCURRENCY));
    }
  }
  return Object.fromEntries(
    Object.entries(runs).map(([name, list]) => [name, {
      perSecond: median(list.map((r) => r.perSecond)),
      p99: median(list.map((r) => r.p99)),
      runs: list,
    }]),
  );
}

function requireAllOk(what: string, results: LoadResult[]): void {
  for (const result of results) {
    const bad = Object.entries(result.statuses).filter(([s]) => s !== "200");
    if (bad.length > 0) {
      throw new Error(
        `${what}: answers other than 200: ${JSON.stringify(result.statuses)}`,
      );
    }
  }
}

async function requireRecordedOnce(
  sql: postgres.Sql,
  what: string,
  ids: string[],
): Promise<void> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from public.stripe_events_log
    where event_id = any(${ids})`;
  if (n !== ids.length) {
    throw new Error(`${what}: ${n} events recorded for ${ids.length} sent`);
  }
}

/**
 * The median over rounds of one handler's figure divided by another's in the same
 * round: a load beside its reference, so a machine busier in one round than in the
 * next moves both.
 */
function pairedRatio(
  runs: LoadResult[],
  references: LoadResult[],
  figure: (result: LoadResult) => number,
): number {
  return median(runs.map((run, i) => figure(run) / figure(references[i])));
}

function webhookRows(
  mix: string,
  result: Awaited<ReturnType<typeof compare>>,
  targets: boolean,
): BenchRow[] {
  const section = `webhook: ${mix}`;
  const { webhook, floor, signature } = result;
  const rate = (r: LoadResult) => r.perSecond;
  const p99 = (r: LoadResult) => r.p99;
  return [
    row(
      section,
      "throughput",
      webhook.perSecond,
      "/s",
      "durable floor",
      floor.perSecond,
      targets ? ">= 0.8" : "",
      pairedRatio(webhook.runs, floor.runs, rate),
    ),
    row(
      section,
      "p99",
      webhook.p99,
      "ms",
      "durable floor",
      floor.p99,
      targets ? "<= 1.5" : "",
      pairedRatio(webhook.runs, floor.runs, p99),
    ),
    row(
      section,
      "throughput",
      webhook.perSecond,
      "/s",
      "signature only",
      signature.perSecond,
      "",
      pairedRatio(webhook.runs, signature.runs, rate),
    ),
    row(
      section,
      "floor throughput",
      floor.perSecond,
      "/s",
      "signature only",
      signature.perSecond,
      "",
      pairedRatio(floor.runs, signature.runs, rate),
    ),
  ];
}

/** A bare function: verifies the user's JWT and reads the plan, as the checkout does first. */
function bareCheckoutHandler(env: Env) {
  return wireFunction("bench-bare", supabaseUserEnv, env, {
    write: () => {},
  }, ({ config, sql, log }) => {
    const verifyUser = createUserVerifier(
      config.SUPABASE_URL,
      clientKey(config),
    );
    return withErrorHandling(async (req) => {
      const user = await verifyUser(req);
      const body = await req.json() as { plan_id: string; region: string };
      const offer = await resolveOffer(sql, {
        planId: body.plan_id,
        term: "monthly",
        region: body.region,
      });
      return json({ user: user.id, plan: offer });
    }, { log });
  });
}

async function completeSession(
  stack: Stack,
  sessionId: string,
  outcome: string,
) {
  const res = await fetch(
    `${stack.stripe.url}/_sandbox/checkout/sessions/${sessionId}/complete`,
    { method: "POST", body: JSON.stringify({ outcome }) },
  );
  if (!res.ok) throw new Error(`Completing ${sessionId}: ${await res.text()}`);
  await res.body?.cancel();
}

async function sandboxEventIds(stack: Stack): Promise<Set<string>> {
  const res = await fetch(`${stack.stripe.url}/_sandbox/events`);
  const events = await res.json() as { id: string }[];
  return new Set(events.map((e) => e.id));
}

async function main(): Promise<void> {
  let serverUrl = Deno.env.get("DATABASE_URL");
  let stopPg = async () => {};
  const tmp = await Deno.makeTempDir({ prefix: "gameshop-bench-" });
  await Deno.chmod(tmp, 0o755);
  if (!serverUrl) {
    const pg = await startPostgres({
      dataDir: `${tmp}/data`,
      port: 54900 + (Deno.pid % 90),
    });
    serverUrl = pg.url;
    stopPg = () => pg.stop();
  }
  const name = `bench_${Deno.pid}`;
  const dbUrl = await createDatabase(serverUrl, name);
  const quiet = { write: () => {} };
  const stack = await startStack({
    databaseUrl: dbUrl,
    stateDir: tmp,
    ephemeralKeys: true,
    ports: { gateway: 0, stripe: 0, panel: 0 },
    log: createLogger({}, quiet),
    functionLog: () => {},
    env: { MAX_OPEN_CHECKOUTS: String(PURCHASES + CHECKOUTS + 10) },
  });
  const sql = postgres(dbUrl, { max: 2, onnotice: () => {} });
  const floorSql = connect(dbUrl, { applicationName: "bench-floor" });
  const rows: BenchRow[] = [];
  const closers: (() => Promise<void>)[] = [];
  const log = (line: string) => console.error(`bench: ${line}`);
  const record = (...measured: BenchRow[]) => {
    rows.push(...measured);
    for (const r of measured) {
      log(
        `${r.section} ${r.measure}: ${r.value.toFixed(1)} / ${
          r.reference_value.toFixed(1)
        } = ${r.ratio.toFixed(2)} ${r.target} ${r.pass ?? ""}`,
      );
    }
  };
  try {
    const secret = stack.keys.stripeWebhookSecret;
    const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
    await createFloorTable(floorSql);
    const webhook = webhookFromEnv(stack.env, quiet);
    const checkout = checkoutFromEnv(stack.env, quiet);
    const bare = bareCheckoutHandler(stack.env);
    closers.push(webhook.close, checkout.close, bare.close);
    const served = {
      signature: serve(signatureOnlyHandler(stripe, secret)),
      floor: serve(durableFloorHandler(stripe, secret, floorSql)),
      webhook: serve(webhook.handler),
      checkout: serve(checkout.handler),
      bare: serve(bare.handler),
    };
    for (const s of Object.values(served)) closers.push(s.close);
    const webhookUrls = {
      signature: served.signature.url,
      floor: served.floor.url,
      webhook: served.webhook.url,
    };

    // Webhook, ignored events: fresh ids each round, 20 % of them sent twice.
    log("webhook: ignored events");
    const unique = Math.round(DELIVERIES / (1 + DUPLICATE_SHARE));
    const ignoredRounds: Delivery[][] = [];
    for (let r = 0; r <= ROUNDS; r++) {
      ignoredRounds.push(
        await signedDeliveries(
          Array.from(
            { length: unique },
            (_, i) => ignoredEvent(`evt_bench_${r}_${i}`, i),
          ),
          secret,
          DUPLICATE_SHARE,
        ),
      );
    }
    // The first round warms every handler (connections, JIT) and is not counted.
    await compare(webhookUrls, ignoredRounds.slice(0, 1));
    const ignored = await compare(webhookUrls, ignoredRounds.slice(1));
    requireAllOk("ignored events", ignored.webhook.runs);
    for (const round of ignoredRounds) {
      await requireRecordedOnce(sql, "ignored events", uniqueIds(round));
    }
    record(...webhookRows("ignored events", ignored, true));

    // create-checkout-session against the bare JWT + plan function, in turns.
    log("create-checkout-session");
    const email = "bench@example.com";
    const userId = await ensureUser(dbUrl, email);
    const token = await userAccessToken(stack.keys, {
      supabaseUrl: stack.gateway.url,
      userId,
      email,
    });
    const regions = ["us-east", "eu-west"];
    const open = async (url: string, i: number) => {
      const res = await postAsUser(url, {
        token,
        publishableKey: stack.keys.publishableKey,
      }, {
        plan_id: "among-us-1gb",
        term: "monthly",
        region: regions[(i + 2) % 2],
        server_name: `Bench ${i}`,
      });
      const body = await res.json();
      if (!res.ok) {
        throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
      }
      return body as { order_id?: string; session_id?: string };
    };
    const opened: string[] = [];
    opened.push(String((await open(served.checkout.url, -1)).session_id));
    await open(served.bare.url, -1);
    const checkoutMs: number[] = [];
    const bareMs: number[] = [];
    for (let i = 0; i < CHECKOUTS; i++) {
      let started = performance.now();
      const answer = await open(served.checkout.url, i);
      checkoutMs.push(performance.now() - started);
      opened.push(String(answer.session_id));
      started = performance.now();
      await open(served.bare.url, i);
      bareMs.push(performance.now() - started);
    }
    for (const p of [50, 95]) {
      record(row(
        "create-checkout-session",
        `p${p}`,
        percentile(checkoutMs, p),
        "ms",
        "bare JWT + plan",
        percentile(bareMs, p),
        "<= 2",
      ));
    }
    // Their rooms go back before the purchases.
    for (const session of opened) {
      await completeSession(stack, session, "expired");
    }
    await stack.idle();

    // Purchases: 100 paid checkouts whose events the bench delivers itself.
    log("webhook: purchases, and the burst to installing");
    stack.panel.configure({
      rateLimitPerMinute: PANEL_RATE_PER_MINUTE,
      latencyMs: PANEL_LATENCY_MS,
    });
    const orders: string[] = [];
    const sessions: string[] = [];
    for (let i = 0; i < PURCHASES; i++) {
      const answer = await open(
        `${stack.gateway.url}/functions/v1/create-checkout-session`,
        i,
      );
      orders.push(String(answer.order_id));
      sessions.push(String(answer.session_id));
    }
    const before = await sandboxEventIds(stack);
    stack.stripe.setWebhookUrl(undefined);
    for (const session of sessions) {
      await completeSession(stack, session, "paid");
    }
    const all = await (await fetch(`${stack.stripe.url}/_sandbox/events`))
      .json() as Record<string, unknown>[];
    const paidEvents = all.filter((e) => !before.has(String(e.id)));
    stack.stripe.setWebhookUrl(
      `${stack.gateway.url}/functions/v1/stripe-webhook`,
    );
    const purchaseDeliveries = await signedDeliveries(
      paidEvents,
      secret,
      DUPLICATE_SHARE,
    );
    stack.panel.resetCalls();
    const purchases = await compare(webhookUrls, [purchaseDeliveries]);
    requireAllOk("purchases", purchases.webhook.runs);
    await requireRecordedOnce(sql, "purchases", uniqueIds(purchaseDeliveries));
    record(...webhookRows("purchases", purchases, false));
    // Provisioning runs in the background; a hand-off refused by the rate limit is
    // retried by the sweep, called as the schedule calls it.
    const deadline = Date.now() + 6 * 60_000;
    for (;;) {
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from public.orders
        where id = any(${orders}) and status in ('installing', 'active')`;
      if (n === PURCHASES) break;
      if (Date.now() > deadline) {
        throw new Error(
          `Burst: ${n} of ${PURCHASES} orders reached installing`,
        );
      }
      await stack.idle();
      await callSweep(stack);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    // From the first delivery to stripe-webhook (the references ran before it).
    const burstMs = performance.now() - purchases.webhook.runs[0].startedAt;
    const answered = stack.panel.calls().filter((c) => c.status !== 429);
    const perPurchase = Math.ceil(answered.length / PURCHASES);
    // The rate limit lets 240 calls through in any minute; each purchase's calls run
    // one after another at the panel's latency.
    const burstFloorMs =
      Math.floor((answered.length - 1) / PANEL_RATE_PER_MINUTE) * 60_000 +
      perPurchase * PANEL_LATENCY_MS;
    record(row(
      `burst: ${PURCHASES} purchases`,
      `to installing (${answered.length} panel calls, ${
        stack.panel.calls().length - answered.length
      } refused 429)`,
      burstMs,
      "ms",
      "rate-limit floor",
      burstFloorMs,
      "<= 1.2",
    ));
    stack.panel.configure({ latencyMs: 0 });

    // Duplicates: every delivery one the shop has recorded (ignored and purchases).
    log("webhook: duplicates");
    // Half ignored events, half purchase events, taken in turns.
    const duplicateRounds = ignoredRounds.slice(1).map((round, r) =>
      Array.from(
        { length: DELIVERIES },
        (_, i) =>
          i % 2 === 0
            ? round[(i / 2 + r * 7) % round.length]
            : purchaseDeliveries[
              ((i - 1) / 2 + r * 7) % purchaseDeliveries.length
            ],
      )
    );
    const duplicates = await compare(webhookUrls, duplicateRounds);
    requireAllOk("duplicates", duplicates.webhook.runs);
    record(...webhookRows("duplicates", duplicates, true));

    // Cold start: a fresh process per start, in turns with the bare Deno.serve.
    log("cold start");
    const barePath = `${tmp}/bare_serve.ts`;
    await Deno.writeTextFile(
      barePath,
      'Deno.serve(() => new Response("ok"));\n',
    );
    const functions = Object.keys(MANIFEST);
    const starts: Record<string, number[]> = { bare: [] };
    const env = stack.env as Record<string, string>;
    for (let i = 0; i < COLD_STARTS; i++) {
      starts.bare.push(await coldStart(barePath, env));
      for (const fn of functions) {
        const path =
          new URL(`../supabase/functions/${fn}/index.ts`, import.meta.url)
            .pathname;
        (starts[fn] ??= []).push(await coldStart(path, env));
      }
    }
    for (const fn of functions) {
      record(
        row(
          "cold start",
          fn,
          median(starts[fn]),
          "ms",
          "bare Deno.serve",
          median(starts.bare),
          "<= 2",
        ),
      );
    }

    log("sweep at scale");
    record(...await benchSweep(stack, sql, log));
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    await floorSql.end();
    await sql.end();
    await stack.close();
    await dropDatabase(serverUrl, name);
    await stopPg();
    await Deno.remove(tmp, { recursive: true });
  }
  printTable(rows);
  await saveResults(rows);
}

function format(value: number, unit: string): string {
  const digits = unit === "/s" || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)}${
    unit === "/s" ? "/s" : unit ? ` ${unit}` : ""
  }`;
}

/** The table as Markdown (printed, and pasted into the README). */
export function renderTable(rows: BenchRow[]): string {
  const lines = [
    "| section | measure | value | reference | ratio | target | |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.section} | ${r.measure} | ${
        format(r.value, r.unit)
      } | ${r.reference} ${format(r.reference_value, r.unit)} | ${
        r.ratio.toFixed(2)
      }× | ${r.target} | ${r.pass === null ? "" : r.pass ? "pass" : "FAIL"} |`,
    );
  }
  return lines.join("\n");
}

function printTable(rows: BenchRow[]): void {
  console.log(renderTable(rows));
  const failed = rows.filter((r) => r.pass === false).length;
  console.log(
    failed === 0 ? "\nEvery target met." : `\n${failed} target(s) not met.`,
  );
}

async function saveResults(rows: BenchRow[]): Promise<void> {
  const dir = new URL("../bench/results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const path = `${dir}${date}.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        deno: Deno.version.deno,
        cpus: navigator.hardwareConcurrency,
        rows,
      },
      null,
      2,
    ) + "\n",
  );
  const files = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".json")) files.push(entry.name);
  }
  files.sort();
  for (const old of files.slice(0, Math.max(0, files.length - KEEP_RESULTS))) {
    await Deno.remove(`${dir}${old}`);
  }
  console.log(`Written to bench/results/${date}.json`);
}

if (import.meta.main) await main();
