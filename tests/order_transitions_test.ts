import assert from "node:assert/strict";
import postgres from "postgres";
import { ensureUser } from "../local/token.ts";
import { insertOrder } from "./_fixtures.ts";
import { freshDatabase } from "./_stack.ts";

const STATUSES = [
  "pending",
  "paid",
  "provisioning",
  "installing",
  "active",
  "error",
  "suspended",
  "canceled",
  "expired",
] as const;

// The lifecycle of the brief, written out independently of the migration.
const LEGAL: Record<string, string[]> = {
  pending: ["paid", "expired", "canceled"],
  paid: ["provisioning", "error", "suspended", "canceled"],
  provisioning: ["installing", "error", "suspended", "canceled"],
  installing: ["active", "error", "suspended", "canceled"],
  active: ["installing", "error", "suspended", "canceled"],
  error: ["provisioning", "installing", "active", "suspended", "canceled"],
  suspended: ["paid", "installing", "active", "error", "canceled"],
  canceled: [],
  expired: [],
};

Deno.test("order status transitions are enforced by the database", async (t) => {
  const db = await freshDatabase();
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  try {
    const userId = await ensureUser(db.url, "transitions@example.com");
    for (const from of STATUSES) {
      await t.step(`from ${from}`, async () => {
        for (const to of STATUSES) {
          if (to === from) continue;
          const id = await insertOrder(sql, userId, {
            status: from,
            serverName: `${from}-${to}`,
          });
          const attempt =
            sql`update public.orders set status = ${to} where id = ${id}`;
          if (LEGAL[from].includes(to)) {
            await attempt;
            const [row] =
              await sql`select status from public.orders where id = ${id}`;
            assert.equal(row.status, to);
          } else {
            await assert.rejects(attempt, (error: Error) => {
              assert.match(
                error.message,
                new RegExp(`from "${from}" to "${to}"`),
              );
              return true;
            });
            const [row] =
              await sql`select status from public.orders where id = ${id}`;
            assert.equal(row.status, from);
          }
        }
      });
    }

    await t.step("every change is kept on the order's timeline", async () => {
      const id = await insertOrder(sql, userId, { serverName: "timeline" });
      for (const to of ["paid", "provisioning", "installing", "active"]) {
        await sql`update public.orders set status = ${to}::public.order_status where id = ${id}`;
      }
      const events =
        await sql`select from_status, to_status from public.order_events
        where order_id = ${id} and kind = 'status' order by id`;
      assert.deepEqual(
        events.map((e) => `${e.from_status ?? "-"}>${e.to_status}`),
        [
          "->pending",
          "pending>paid",
          "paid>provisioning",
          "provisioning>installing",
          "installing>active",
        ],
      );
    });
  } finally {
    await sql.end();
    await db.drop();
  }
});
