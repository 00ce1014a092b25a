/**
 * `npm run demo`: a server's whole life against the running `npm start`, as a customer
 * and Stripe would live it. It buys and pays, then lets Stripe fail a renewal, recover
 * it and cancel the subscription, and only watches: the webhook and the stack's sweep
 * timer do the rest. Start the stack with short periods to see it in a minute:
 *
 * ```sh
 * SWEEP_INTERVAL_SECONDS=2 PAYMENT_GRACE_SECONDS=10 RETENTION_SECONDS=15 npm start
 * npm run demo
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { userAccessToken } from "./keys.ts";
import type { LocalKeys } from "./keys.ts";
import { ensureUser, readDotenv } from "./token.ts";

const ROOT = new URL("../", import.meta.url).pathname;

interface Watched {
  status: string;
  panel_target: string;
  panel_state: string | null;
  suspend_reason: string | null;
  paid_until: Date | null;
  suspend_at: Date | null;
  delete_at: Date | null;
  customer_message: string | null;
  stripe_subscription_id: string | null;
}

async function post(url: string, body: unknown, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) {
    throw new Error(
      `POST ${url} answered ${res.status}: ${JSON.stringify(answer)}`,
    );
  }
  return answer;
}

async function main(): Promise<void> {
  let env: Record<string, string>;
  let keys: LocalKeys;
  try {
    env = readDotenv(await Deno.readTextFile(`${ROOT}.env.local`));
    keys = JSON.parse(await Deno.readTextFile(`${ROOT}.local/keys.json`));
  } catch {
    console.error("No local stack found: run `npm start` first");
    Deno.exit(1);
  }
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  const started = Date.now();
  const say = (text: string) =>
    console.log(
      `[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${text}`,
    );
  try {
    const email = `demo-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const userId = await ensureUser(env.SUPABASE_DB_URL, email);
    const token = await userAccessToken(keys, {
      supabaseUrl: env.SUPABASE_URL,
      userId,
      email,
    });
    const checkout = await post(
      `${env.SUPABASE_URL}/functions/v1/create-checkout-session`,
      {
        plan_id: "mc-java-2gb",
        term: "monthly",
        region: "eu-west",
        server_name: "Demo world",
      },
      { Authorization: `Bearer ${token}` },
    );
    const orderId: string = checkout.order_id;
    say(`${email} opened a checkout: order ${orderId}`);

    let last = "";
    const read = async () => {
      const [row] = await sql<Watched[]>`
        select status::text, panel_target, panel_state, suspend_reason, paid_until,
          suspend_at, delete_at, customer_message, stripe_subscription_id
        from public.orders where id = ${orderId}`;
      const line = `order ${row.status}, panel ${
        row.panel_state ?? "-"
      } (target ${row.panel_target}${
        row.suspend_reason ? `, ${row.suspend_reason}` : ""
      })${
        row.suspend_at ? `, suspends at ${row.suspend_at.toISOString()}` : ""
      }${row.delete_at ? `, deleted at ${row.delete_at.toISOString()}` : ""}`;
      if (line !== last) say(line);
      last = line;
      return row;
    };
    const until = async (what: string, done: (row: Watched) => boolean) => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const row = await read();
        if (done(row)) return row;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      throw new Error(`Gave up waiting for: ${what}`);
    };

    const stripe = env.STRIPE_API_BASE;
    await post(
      `${stripe}/_sandbox/checkout/sessions/${checkout.session_id}/complete`,
      {},
    );
    say("the customer paid");
    const paid = await until(
      "the server to install",
      (r) => r.status === "active",
    );
    const subscription = paid.stripe_subscription_id;

    await post(`${stripe}/_sandbox/subscriptions/${subscription}/renew`, {
      outcome: "failed",
    });
    say("Stripe: the renewal payment failed");
    await until(
      "the grace period to end in a suspension",
      (r) => r.status === "suspended" && r.panel_state === "suspended",
    );

    await post(`${stripe}/_sandbox/subscriptions/${subscription}/recover`, {});
    say("Stripe: the customer paid the open invoice");
    await until(
      "the server to come back",
      (r) => r.status === "active" && r.panel_state === "installed",
    );

    const canceled = await fetch(`${stripe}/v1/subscriptions/${subscription}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
    });
    await canceled.body?.cancel();
    say(`Stripe: the subscription was canceled (${canceled.status})`);
    await until(
      "the server to be suspended, then deleted after retention",
      (r) => r.status === "canceled" && r.panel_state === "deleted",
    );
    say("done: the whole chain is in public.order_chain:");
    const chain =
      await sql`select at, source, kind, message from public.order_chain
      where order_id = ${orderId} order by at`;
    for (const row of chain) {
      console.log(
        `  ${row.at.toISOString()}  ${row.source}:${row.kind}  ${row.message}`,
      );
    }
  } finally {
    await sql.end();
  }
}

if (import.meta.main) {
  await main();
}
