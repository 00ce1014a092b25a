/**
 * `npm run bench`: latency of the paths a customer waits on, measured on the local
 * stack (embedded Postgres, or DATABASE_URL; sandboxes on loopback):
 * - create-checkout-session through supabase-js (sequential requests);
 * - payment to `installing`: sandbox completion → signed webhooks → provisioning.
 *
 * @module
 */
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { createDatabase, dropDatabase } from "./database.ts";
import { userAccessToken } from "./keys.ts";
import { startPostgres } from "./postgres.ts";
import { startStack } from "./stack.ts";
import { ensureUser } from "./token.ts";

const CHECKOUTS = 100;
const PURCHASES = 30;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ];
}

function report(name: string, samples: number[]): void {
  const f = (n: number) => `${n.toFixed(1)} ms`;
  console.log(
    `${name}: n=${samples.length} p50=${f(percentile(samples, 50))} p95=${
      f(percentile(samples, 95))
    } max=${f(Math.max(...samples))}`,
  );
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
  const stack = await startStack({
    databaseUrl: dbUrl,
    stateDir: tmp,
    ephemeralKeys: true,
    ports: { gateway: 0, stripe: 0, panel: 0 },
    log: createLogger({}, { write: () => {} }),
    functionLog: () => {},
    // One customer opens every checkout here; the shop's default allows 5 at once.
    env: { MAX_OPEN_CHECKOUTS: String(CHECKOUTS + 10) },
  });
  const sql = postgres(dbUrl, { max: 2, onnotice: () => {} });
  try {
    const supabaseUrl = stack.gateway.url;
    const email = "bench@example.com";
    const userId = await ensureUser(dbUrl, email);
    const token = await userAccessToken(stack.keys, {
      supabaseUrl,
      userId,
      email,
    });
    const client = createClient(supabaseUrl, stack.keys.anonKey, {
      auth: { persistSession: false },
      global: { headers: { Authorization: `Bearer ${token}` } },
    });
    const checkout = async (i: number) => {
      const { data, error } = await client.functions.invoke(
        "create-checkout-session",
        {
          body: {
            plan_id: "among-us-1gb",
            term: "monthly",
            region: "us-east",
            server_name: `B ${i}`,
          },
        },
      );
      if (error) throw error;
      return data as { order_id: string; session_id: string };
    };
    await checkout(-1); // warm-up: connections, JWKS

    const sandbox = async (sessionId: string, outcome: string) => {
      const res = await fetch(
        `${stack.stripe.url}/_sandbox/checkout/sessions/${sessionId}/complete`,
        { method: "POST", body: JSON.stringify({ outcome }) },
      );
      await res.body?.cancel();
      await stack.idle();
    };
    const checkoutMs: number[] = [];
    const sessions: { order_id: string; session_id: string }[] = [];
    for (let i = 0; i < CHECKOUTS; i++) {
      const started = performance.now();
      const opened = await checkout(i);
      checkoutMs.push(performance.now() - started);
      // Each open checkout holds its room: keep only as many as will be paid.
      if (i < CHECKOUTS - PURCHASES) {
        await sandbox(opened.session_id, "expired");
      } else sessions.push(opened);
    }
    report("create-checkout-session", checkoutMs);

    const purchaseMs: number[] = [];
    for (const session of sessions) {
      const started = performance.now();
      await sandbox(session.session_id, "paid");
      const [row] =
        await sql`select status from public.orders where id = ${session.order_id}`;
      if (row.status !== "installing") {
        throw new Error(`Order ended ${row.status}`);
      }
      purchaseMs.push(performance.now() - started);
    }
    report("payment to installing (webhooks + provisioning)", purchaseMs);
  } finally {
    await sql.end();
    await stack.close();
    await dropDatabase(serverUrl, name);
    await stopPg();
    await Deno.remove(tmp, { recursive: true });
  }
}

await main();
