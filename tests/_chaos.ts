/**
 * Chaos helpers: a Postgres of the suite's own that it can restart (the shared test
 * server serves other files at once), a seeded random source whose seed is printed
 * and can be set with CHAOS_SEED, and sweeps run with the test clock until the shop
 * has nothing left due.
 *
 * @module
 */
import { createDatabase, prepareDatabase } from "../local/database.ts";
import { freePort, startPostgres } from "../local/postgres.ts";
import type { SweepSummary } from "../supabase/functions/_shared/sweep/mod.ts";
import { STALE_CLAIM_MS } from "../supabase/functions/_shared/panel/provision.ts";
import type { TestDatabase, TestStack } from "./_stack.ts";
import type { Sweeper } from "./_sweep.ts";

/** A database on a Postgres server of its own. */
export interface OwnPostgres extends TestDatabase {
  /**
   * Restarts the server: a fast shutdown (every client cut off), `whileDown` and
   * `downMs` with nothing listening, then a start on the same data and port.
   */
  restart(
    options?: { downMs?: number; whileDown?: () => Promise<void> },
  ): Promise<void>;
}

/** Starts a Postgres server for one suite, with a migrated, seeded database. */
export async function ownPostgres(): Promise<OwnPostgres> {
  const dir = await Deno.makeTempDir({ prefix: "gameshop-chaos-pg-" });
  await Deno.chmod(dir, 0o755);
  const options = { dataDir: `${dir}/data`, port: freePort() };
  let server = await startPostgres(options);
  try {
    const url = await createDatabase(server.url, "gameshop_chaos");
    await prepareDatabase(url);
    return {
      url,
      async restart({ downMs = 500, whileDown } = {}) {
        await server.stop();
        try {
          await whileDown?.();
          await new Promise((resolve) => setTimeout(resolve, downMs));
        } finally {
          server = await startPostgres(options);
        }
      },
      async drop() {
        await server.stop();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

/** A seeded random source (mulberry32). */
export interface Random {
  seed: number;
  /** A number in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  below(n: number): number;
  /** One of `items`. */
  pick<T>(items: readonly T[]): T;
}

/** A small seeded generator (mulberry32): numbers in [0, 1), the same for a seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The seed from CHAOS_SEED, else a new one; printed so a failing run can be replayed. */
export function seededRandom(suite: string): Random {
  const given = Deno.env.get("CHAOS_SEED");
  const seed = given ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`CHAOS_SEED must be an integer: got "${given}"`);
  }
  console.log(`${suite}: seed ${seed} (CHAOS_SEED=${seed} replays it)`);
  const next = mulberry32(seed);
  return {
    seed,
    next,
    below: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

/** Whether anything is left for a sweep: an order to provision, a panel action due. */
async function workLeft(stack: TestStack): Promise<boolean> {
  const [row] = await stack.sql<{ n: number }[]>`
    select count(*)::int as n from public.orders
    where status in ('paid', 'provisioning')
       or (status = 'error' and next_attempt_at is not null)
       or (status = 'installing' and panel_state is distinct from 'installed')
       or panel_action_due_at is not null`;
  return row.n > 0;
}

/**
 * Sweeps until nothing is due (at most `max` sweeps), each after background work ends
 * and with the clock past any claim a dead worker left (and so past any backoff due
 * by then). Answers the sweeps' summaries.
 */
export async function sweepUntilSettled(
  stack: TestStack,
  sweeper: Sweeper,
  max = 8,
): Promise<SweepSummary[]> {
  const summaries: SweepSummary[] = [];
  for (let i = 0; i < max; i++) {
    await stack.idle();
    if (i > 0 && !(await workLeft(stack))) break;
    sweeper.clock.advance(STALE_CLAIM_MS + 60_000);
    summaries.push(await sweeper.sweep());
  }
  await stack.idle();
  return summaries;
}
