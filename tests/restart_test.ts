import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { userAccessToken } from "../local/keys.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { ensureUser } from "../local/token.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { invoke } from "./_fixtures.ts";
import { freshDatabase } from "./_stack.ts";

/** Starts the stack as `npm start` does: keys and sandbox state kept in `stateDir`. */
function start(databaseUrl: string, stateDir: string): Promise<Stack> {
  const logs: string[] = [];
  const log = createLogger({}, { write: (line) => logs.push(line) });
  return startStack({
    databaseUrl,
    stateDir,
    ports: { gateway: 0, stripe: 0, panel: 0 },
    panelInstallDelayMs: 50,
    stripeRetryDelaysMs: [20, 40],
    log,
    functionLog: (line) => logs.push(line),
  });
}

/** A returning customer buys on `stack` and pays; answers the order row. */
async function buy(stack: Stack, userId: string, email: string, name: string) {
  const token = await userAccessToken(stack.keys, {
    supabaseUrl: stack.gateway.url,
    userId,
    email,
  });
  const client = createClient(stack.gateway.url, stack.keys.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
  const res = await invoke(client, "create-checkout-session", {
    plan_id: "mc-java-2gb",
    term: "monthly",
    region: "eu-west",
    server_name: name,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const paid = await fetch(
    `${stack.stripe.url}/_sandbox/checkout/sessions/${res.body.session_id}/complete`,
    {
      method: "POST",
      body: "{}",
      headers: { "Content-Type": "application/json" },
    },
  );
  assert.equal(paid.status, 200, await paid.text());
  await stack.idle();
  return String(res.body.order_id);
}

Deno.test("the stack keeps its state across a restart", async () => {
  const db = await freshDatabase();
  const stateDir = await Deno.makeTempDir({ prefix: "gameshop-restart-" });
  const sql = (await import("postgres")).default(db.url, {
    max: 1,
    onnotice: () => {},
  });
  try {
    const email = "returning@example.com";
    const userId = await ensureUser(db.url, email);

    const first = await start(db.url, stateDir);
    let firstOrder: string;
    try {
      firstOrder = await buy(first, userId, email, "Before restart");
    } finally {
      await first.close();
    }

    const second = await start(db.url, stateDir);
    try {
      const secondOrder = await buy(second, userId, email, "After restart");
      const orders = await sql`select id, status, stripe_customer_id,
        pterodactyl_server_id from public.orders where user_id = ${userId}
        order by created_at`;
      assert.deepEqual(orders.map((o) => [o.id, o.status]), [
        [firstOrder, "installing"],
        [secondOrder, "installing"],
      ]);
      // The same Stripe customer and panel account serve both purchases.
      assert.equal(orders[0].stripe_customer_id, orders[1].stripe_customer_id);
      const servers = second.panel.state().servers;
      const owners = new Set(
        servers.filter((s) =>
          s.external_id === firstOrder || s.external_id === secondOrder
        )
          .map((s) => s.owner_id),
      );
      assert.equal(owners.size, 1);
      assert.ok(servers.some((s) => s.id === orders[0].pterodactyl_server_id));
    } finally {
      await second.close();
    }
  } finally {
    await sql.end();
    await db.drop();
    await Deno.remove(stateDir, { recursive: true });
  }
});
