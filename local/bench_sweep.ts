/**
 * The bench's sweep at scale: the panel sandbox grown to 1,000, 10,000 and 100,000
 * servers (`POST /_sandbox/servers/bulk`), then sweeps called as the schedule calls
 * them until the list's cursor has gone round once (a full comparison). Per sweep: the
 * panel calls against what the panel's 240 requests a minute allow in one sweep
 * interval, the Stripe calls, and the time against the interval.
 *
 * @module
 */
import type postgres from "postgres";
import {
  LIST_PAGES_PER_SWEEP,
  SERVERS_CURSOR_KEY,
} from "../supabase/functions/_shared/sweep/servers.ts";
import type { BenchRow } from "./bench.ts";
import { callSweep, type Stack } from "./stack.ts";

const SIZES = [1_000, 10_000, 100_000];
const BULK_LIMIT = 10_000;
const RATE_PER_MINUTE = 240;
/** The sweep's default interval (SWEEP_INTERVAL_SECONDS). */
const INTERVAL_SECONDS = 15;
/** Stripe's live-mode limit on reads, per second. */
const STRIPE_READS_PER_SECOND = 100;

interface SweepAnswer {
  panel_calls: number;
  duration_ms: number;
  budget_exhausted: boolean;
}

async function runSweep(stack: Stack): Promise<SweepAnswer> {
  const { status, body } = await callSweep(stack);
  if (status !== 200) {
    throw new Error(`Sweep answered ${status}: ${JSON.stringify(body)}`);
  }
  return body as unknown as SweepAnswer;
}

async function cursorPage(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ page: number | null }[]>`
    select (value->>'page')::int as page from public.shop_state
    where key = ${SERVERS_CURSOR_KEY}`;
  return row?.page ?? 1;
}

async function seed(stack: Stack, count: number): Promise<void> {
  for (let left = count; left > 0; left -= BULK_LIMIT) {
    const res = await fetch(`${stack.panel.url}/_sandbox/servers/bulk`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ count: Math.min(left, BULK_LIMIT) }),
    });
    if (res.status !== 201) throw new Error(`Bulk seed: ${await res.text()}`);
    await res.body?.cancel();
  }
}

/** Sweeps at each size until a full comparison; answers the bench's rows. */
export async function benchSweep(
  stack: Stack,
  sql: postgres.Sql,
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const perInterval = (RATE_PER_MINUTE * INTERVAL_SECONDS) / 60;
  const stripeLimit = STRIPE_READS_PER_SECOND * INTERVAL_SECONDS;
  // Sweeps run back to back here, not every 15 s: the rate limit is lifted so the
  // counts, not the waits, are measured.
  stack.panel.configure({ rateLimitPerMinute: 1_000_000, latencyMs: 0 });
  let servers = stack.panel.state().servers.length;
  for (const size of SIZES) {
    await seed(stack, size - servers);
    servers = size;
    log(`sweep: ${size} servers`);
    // Start a comparison from the first page.
    await sql`delete from public.shop_state where key = ${SERVERS_CURSOR_KEY}`;
    const answers: SweepAnswer[] = [];
    const stripeCalls: number[] = [];
    const pages = Math.ceil(size / 100);
    const expected = Math.ceil(pages / LIST_PAGES_PER_SWEEP);
    do {
      const before = stack.stripe.calls().length;
      answers.push(await runSweep(stack));
      stripeCalls.push(stack.stripe.calls().length - before);
      if (answers.length > expected + 5) {
        throw new Error(
          `Sweep: no full comparison of ${size} servers in ${answers.length} sweeps`,
        );
      }
    } while (await cursorPage(sql) !== 1);
    const section = `sweep: ${size.toLocaleString("en")} servers`;
    const maxPanel = Math.max(...answers.map((a) => a.panel_calls));
    const meanMs = answers.reduce((sum, a) => sum + a.duration_ms, 0) /
      answers.length;
    const ratio = (value: number, reference: number, target: string) => ({
      ratio: value / reference,
      target,
      pass: value / reference <= Number(target.split(" ")[1]),
    });
    rows.push(
      {
        section,
        measure:
          `panel calls per sweep (max; full list in ${answers.length} sweeps)`,
        value: maxPanel,
        unit: "",
        reference: "240/min × 15 s interval",
        reference_value: perInterval,
        ...ratio(maxPanel, perInterval, "<= 1"),
      },
      {
        section,
        measure: "Stripe calls per sweep (max)",
        value: Math.max(...stripeCalls),
        unit: "",
        reference: "Stripe 100 reads/s × 15 s",
        reference_value: stripeLimit,
        ...ratio(Math.max(...stripeCalls), stripeLimit, "<= 1"),
      },
      {
        section,
        measure: "time per sweep (mean)",
        value: meanMs,
        unit: "ms",
        reference: "sweep interval",
        reference_value: INTERVAL_SECONDS * 1000,
        ...ratio(meanMs, INTERVAL_SECONDS * 1000, "<= 1"),
      },
    );
  }
  return rows;
}
