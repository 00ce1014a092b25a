import assert from "node:assert/strict";
import postgres from "postgres";
import { ensureUser } from "../local/token.ts";
import { asRole, insertOrder } from "./_fixtures.ts";
import { freshDatabase } from "./_stack.ts";

type Role = "anon" | "userA" | "userB" | "service_role";

interface TableCase {
  table: string;
  insert: (ids: Ids) => string;
  update: string;
  /** Rows each role may read (by a predicate on ids), undefined = all rows. */
  visible: Record<Role, (ids: Ids) => string | undefined>;
}

interface Ids {
  a: string;
  b: string;
  orderA: string;
}

const everyone = () => undefined;
const nobody = () => "false";

// Which rows each caller may read, per table: the access rules of the brief.
const CASES: TableCase[] = [
  {
    table: "plans",
    insert: () =>
      `insert into public.plans (id, game, display_name, memory_mb, disk_mb, cpu_percent, ptero_nest_id, ptero_egg_id) values ('rls-plan', 'x', 'x', 1, 1, 1, 1, 1)`,
    update: "update public.plans set display_name = 'changed'",
    visible: {
      anon: () => "active",
      userA: () => "active",
      userB: () => "active",
      service_role: everyone,
    },
  },
  {
    table: "plan_prices",
    insert: () =>
      `insert into public.plan_prices (plan_id, term, stripe_price_id, amount_cents, currency) values ('mc-vanilla-4gb', 'yearly', 'price_rls', 1, 'usd')`,
    update: "update public.plan_prices set amount_cents = 1",
    visible: {
      anon: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      userA: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      userB: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      service_role: everyone,
    },
  },
  {
    table: "regions",
    insert: () =>
      `insert into public.regions (id, display_name, panel_location_id) values ('rls', 'x', 9)`,
    update: "update public.regions set display_name = 'changed'",
    visible: {
      anon: () => "active",
      userA: () => "active",
      userB: () => "active",
      service_role: everyone,
    },
  },
  {
    table: "ptero_nodes",
    insert: () =>
      `insert into public.ptero_nodes (panel_node_id, panel_location_id, name, region, memory_mb, disk_mb) values (99, 1, 'x', 'us-east', 1, 1)`,
    update: "update public.ptero_nodes set memory_mb = 1",
    visible: {
      anon: nobody,
      userA: nobody,
      userB: nobody,
      service_role: everyone,
    },
  },
  {
    table: "external_accounts",
    insert: (ids) =>
      `insert into public.external_accounts (user_id, ptero_user_id, ptero_username) values ('${ids.b}', 77, 'b')`,
    update: "update public.external_accounts set ptero_username = 'changed'",
    visible: {
      anon: nobody,
      userA: (ids) => `user_id = '${ids.a}'`,
      userB: (ids) => `user_id = '${ids.b}'`,
      service_role: everyone,
    },
  },
  {
    table: "stripe_customers",
    insert: (ids) =>
      `insert into public.stripe_customers (user_id, stripe_customer_id) values ('${ids.b}', 'cus_rls')`,
    update:
      "update public.stripe_customers set stripe_customer_id = stripe_customer_id || 'x'",
    visible: {
      anon: nobody,
      userA: nobody,
      userB: nobody,
      service_role: everyone,
    },
  },
  {
    table: "orders",
    insert: (ids) =>
      `insert into public.orders (user_id, plan_id, term, region, server_name, stripe_price_id, amount_cents, currency, memory_mb, disk_mb) values ('${ids.a}', 'mc-java-2gb', 'monthly', 'us-east', 'rls insert', 'price_mc_java_2gb_monthly', 499, 'usd', 2048, 10240)`,
    update: "update public.orders set server_name = 'changed'",
    visible: {
      anon: nobody,
      userA: (ids) => `user_id = '${ids.a}'`,
      userB: (ids) => `user_id = '${ids.b}'`,
      service_role: everyone,
    },
  },
  {
    table: "order_events",
    insert: (ids) =>
      `insert into public.order_events (order_id, user_id, kind, message) values ('${ids.orderA}', '${ids.a}', 'note', 'x')`,
    update: "update public.order_events set message = 'changed'",
    visible: {
      anon: nobody,
      userA: (ids) => `user_id = '${ids.a}'`,
      userB: (ids) => `user_id = '${ids.b}'`,
      service_role: everyone,
    },
  },
  {
    table: "stripe_events_log",
    insert: () =>
      `insert into public.stripe_events_log (event_id, type, payload) values ('evt_rls', 'x', '{}')`,
    update: "update public.stripe_events_log set outcome = 'ignored'",
    visible: {
      anon: nobody,
      userA: nobody,
      userB: nobody,
      service_role: everyone,
    },
  },
];

function claimsFor(
  role: Role,
  ids: Ids,
): ["anon" | "authenticated" | "service_role", Record<string, unknown>] {
  if (role === "anon") return ["anon", {}];
  if (role === "service_role") return ["service_role", {}];
  return ["authenticated", {
    sub: role === "userA" ? ids.a : ids.b,
    aud: "authenticated",
  }];
}

class Rollback extends Error {}

/** Runs `fn` as `role` and rolls everything back. */
async function tryAs<T>(
  sql: postgres.Sql,
  role: Role,
  ids: Ids,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  const [pgRole, claims] = claimsFor(role, ids);
  let result: T | undefined;
  try {
    await asRole(sql, pgRole, claims, async (tx) => {
      result = await fn(tx);
      throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
  return result as T;
}

Deno.test("row level security: anon, user A, user B and service_role on every table", async (t) => {
  const db = await freshDatabase();
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  try {
    const a = await ensureUser(db.url, "rls-a@example.com");
    const b = await ensureUser(db.url, "rls-b@example.com");
    const orderA = await insertOrder(sql, a, { serverName: "a's server" });
    await insertOrder(sql, b, { serverName: "b's server" });
    await sql`insert into public.external_accounts (user_id, ptero_user_id, ptero_username)
      values (${a}, 10, 'alice')`;
    await sql`insert into public.stripe_customers (user_id, stripe_customer_id) values (${a}, 'cus_a')`;
    await sql`insert into public.stripe_events_log (event_id, type, payload, order_id)
      values ('evt_a', 'checkout.session.completed', '{}', ${orderA})`;
    const ids: Ids = { a, b, orderA };
    const roles: Role[] = ["anon", "userA", "userB", "service_role"];

    for (const c of CASES) {
      await t.step(c.table, async () => {
        for (const role of roles) {
          const predicate = c.visible[role](ids);
          const [{ expected }] = await sql.unsafe(
            `select count(*)::int as expected from public.${c.table} where ${
              predicate ?? "true"
            }`,
          );
          const seen = await tryAs(sql, role, ids, async (tx) => {
            const [{ n }] = await tx.unsafe(
              `select count(*)::int as n from public.${c.table}`,
            );
            return n as number;
          });
          assert.equal(seen, expected, `${role} select on ${c.table}`);

          if (role === "service_role") {
            const inserted = await tryAs(
              sql,
              role,
              ids,
              (tx) => tx.unsafe(c.insert(ids)).then((r) => r.count),
            );
            assert.equal(inserted, 1, `service_role insert on ${c.table}`);
            const updated = await tryAs(
              sql,
              role,
              ids,
              (tx) => tx.unsafe(c.update).then((r) => r.count),
            );
            assert.ok(updated > 0, `service_role update on ${c.table}`);
            continue;
          }
          await assert.rejects(
            tryAs(sql, role, ids, (tx) => tx.unsafe(c.insert(ids))),
            /row-level security|permission denied/,
            `${role} insert on ${c.table}`,
          );
          const updated = await tryAs(
            sql,
            role,
            ids,
            (tx) => tx.unsafe(c.update).then((r) => r.count),
          );
          assert.equal(updated, 0, `${role} update on ${c.table}`);
          const deleted = await tryAs(
            sql,
            role,
            ids,
            (tx) =>
              tx.unsafe(`delete from public.${c.table}`).then((r) => r.count),
          );
          assert.equal(deleted, 0, `${role} delete on ${c.table}`);
        }
      });
    }

    await t.step("user B cannot read user A's order, by id", async () => {
      const rows = await tryAs(
        sql,
        "userB",
        ids,
        (tx) => tx`select id from public.orders where id = ${orderA}`,
      );
      assert.equal(rows.length, 0);
      const own = await tryAs(
        sql,
        "userA",
        ids,
        (tx) => tx`select id from public.orders where id = ${orderA}`,
      );
      assert.equal(own.length, 1);
    });

    await t.step(
      "customers see per-region availability, not nodes",
      async () => {
        const rows = await tryAs(
          sql,
          "anon",
          ids,
          (tx) => tx`select * from public.plan_availability('mc-java-2gb')`,
        );
        assert.deepEqual(rows.map((r) => [r.region, r.available]), [[
          "eu-west",
          true,
        ], ["us-east", true]]);
        await assert.rejects(
          tryAs(
            sql,
            "userA",
            ids,
            (tx) => tx`select * from public.node_capacity`,
          ),
          /permission denied/,
        );
      },
    );
  } finally {
    await sql.end();
    await db.drop();
  }
});
