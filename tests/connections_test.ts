import assert from "node:assert/strict";
import { FUNCTIONS } from "../local/functions.ts";
import { POOL_MAX } from "../supabase/functions/_shared/platform/db.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  sandboxEvents,
} from "./_purchase.ts";
import { freshDatabase, startTestStack } from "./_stack.ts";

const FUNCTION_NAMES = Object.keys(FUNCTIONS);

/** Connections to the current database per function (application_name). */
async function connectionsByFunction(
  sql: import("postgres").Sql,
): Promise<Map<string, number>> {
  const rows = await sql<{ name: string; n: number }[]>`
    select application_name as name, count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = any(${FUNCTION_NAMES})
    group by application_name`;
  return new Map(rows.map((row) => [row.name, row.n]));
}

Deno.test("a burst of 100 webhooks stays within each function's connection pool", async () => {
  const stack = await startTestStack();
  try {
    const checkout = await openCheckout(stack);
    const eventIds = await completeCheckout(stack, checkout.sessionId);
    await stack.idle();
    // An event the stack's endpoint is subscribed to (it gets handled types only).
    const eventId = (await sandboxEvents(stack)).find((e) =>
      eventIds.includes(e.id) && e.type === "checkout.session.completed"
    )!.id;

    const highest = new Map<string, number>();
    const record = (counts: Map<string, number>) => {
      for (const [name, n] of counts) {
        highest.set(name, Math.max(highest.get(name) ?? 0, n));
      }
    };
    let bursting = true;
    const sampler = (async () => {
      while (bursting) {
        record(await connectionsByFunction(stack.sql));
      }
    })();
    const res = await fetch(
      `${stack.stripe.url}/_sandbox/events/${eventId}/deliver`,
      {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ copies: 100, concurrent: true }),
      },
    );
    const body = await res.json();
    bursting = false;
    await sampler;
    await stack.idle();
    // Idle connections stay open for 20 s: what is open now is what the burst opened.
    record(await connectionsByFunction(stack.sql));

    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.statuses.length, 100);
    assert.ok(
      body.statuses.every((status: number) =>
        status >= 200 && status < 300
      ),
      JSON.stringify(body.statuses),
    );
    assert.ok(
      (highest.get("stripe-webhook") ?? 0) >= 1,
      "webhook connections seen",
    );
    for (const [name, n] of highest) {
      assert.ok(
        n <= POOL_MAX,
        `${name} opened ${n} connections (max ${POOL_MAX})`,
      );
    }
    // One server for the order, whatever the number of deliveries.
    const row = await order(stack, checkout.orderId);
    assert.ok(["installing", "active"].includes(row.status), row.status);
  } finally {
    await stack.close();
  }
});

Deno.test("DB_POOLER_URL, when set, is what the functions connect to", async () => {
  const pooler = await freshDatabase();
  // SUPABASE_DB_URL points nowhere: only the pooler URL can make the purchase work.
  const stack = await startTestStack({
    env: {
      SUPABASE_DB_URL: "postgres://postgres:postgres@127.0.0.1:1/postgres",
      DB_POOLER_URL: pooler.url,
    },
  });
  try {
    // The functions write to the pooler's database; the stack's own stays untouched.
    const user = await stack.user();
    const { default: postgres } = await import("postgres");
    const sql = postgres(pooler.url, { max: 1, onnotice: () => {} });
    try {
      await sql`insert into auth.users (id, aud, role, email)
        values (${user.id}, 'authenticated', 'authenticated', ${user.email})`;
      const checkout = await openCheckout(stack, {}, user);
      await completeCheckout(stack, checkout.sessionId);
      await stack.idle();
      const [row] =
        await sql`select status from public.orders where id = ${checkout.orderId}`;
      assert.ok(["installing", "active"].includes(row?.status), row?.status);
      const [{ n }] = await stack
        .sql`select count(*)::int as n from public.orders`;
      assert.equal(n, 0);
    } finally {
      await sql.end();
    }
  } finally {
    await stack.close();
    await pooler.drop();
  }
});

Deno.test("the functions use no session state, so a transaction pooler can serve them", async () => {
  const forbidden: [RegExp, string][] = [
    [
      /`\s*(set|reset|listen|unlisten|notify|prepare|declare|discard)\b/i,
      "session command",
    ],
    [/set_config\([^)]*,\s*false\s*\)/i, "session-wide set_config"],
    [/pg_(try_)?advisory_lock(_shared)?\s*\(/i, "session advisory lock"],
    [/\.(listen|notify|reserve)\s*\(/, "postgres.js session feature"],
    [/prepare:\s*true/, "prepared statements"],
    [/create\s+temp(orary)?\s+table/i, "temporary table"],
  ];
  const root = new URL("../supabase/functions/", import.meta.url);
  const files: URL[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir));
      else if (entry.name.endsWith(".ts")) files.push(new URL(entry.name, dir));
    }
  };
  await walk(root);
  assert.ok(files.length > 10);
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    for (const [pattern, what] of forbidden) {
      assert.ok(!pattern.test(text), `${file.pathname}: ${what} (${pattern})`);
    }
  }
});
