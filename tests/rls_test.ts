import assert from "node:assert/strict";
import postgres from "postgres";
import { ensureUser } from "../local/token.ts";
import {
  CUSTOMER_ORDER_COLUMNS,
  CUSTOMER_PLAN_CHANGE_COLUMNS,
} from "../supabase/functions/_shared/contract.ts";
import { insertOrder } from "./_fixtures.ts";
import { freshDatabase } from "./_stack.ts";

// Grants and policies together, as the Data API meets them on hosted Supabase since
// 2026-10-30: a role without a grant gets "permission denied" before any policy runs;
// with a grant, RLS filters the rows.

type Role = "anon" | "userA" | "userB" | "service_role";
const ROLES: Role[] = ["anon", "userA", "userB", "service_role"];

interface Ids {
  a: string;
  b: string;
  orderA: string;
}

/** A select: refused, or the rows seen (a predicate over the table; "true" = all). */
type Read = "denied" | ((ids: Ids) => string);
/** A write: refused by grants, filtered by RLS (rejected insert, 0 rows), or done. */
type Write = "denied" | "filtered" | "allowed";

interface TableCase {
  table: string;
  /** A row the role tries to insert. */
  insert: (ids: Ids) => string;
  /** Another row, inserted by the owner first in the same transaction... */
  fixture: (ids: Ids) => string;
  /** ...and the predicate naming it, for the update and the delete. */
  key: string;
  /** The `set` clause of the update. */
  set: string;
  read: Record<Role, Read>;
  /** Insert, update and delete; API roles are denied and the service allowed unless set. */
  write?: Partial<Record<Role, Write>>;
}

const all: Read = () => "true";
const active: Read = () => "active";
const ownRows = (user: "a" | "b"): Read => (ids) => `user_id = '${ids[user]}'`;
const catalogue = { anon: active, userA: active, userB: active };
const serviceOnly = {
  anon: "denied",
  userA: "denied",
  userB: "denied",
  service_role: all,
} satisfies Record<Role, Read>;
const owners = {
  anon: "denied",
  userA: ownRows("a"),
  userB: ownRows("b"),
  service_role: all,
} satisfies Record<Role, Read>;

const ORDER_COLUMNS =
  "user_id, plan_id, term, region, server_name, stripe_price_id, amount_cents, currency, memory_mb, disk_mb";
const orderValues = (user: string, name: string) =>
  `'${user}', 'mc-java-2gb', 'monthly', 'us-east', '${name}', 'price_mc_java_2gb_monthly', 499, 'usd', 2048, 10240`;

// The access rules of the brief, written out independently of the migrations.
const CASES: TableCase[] = [
  {
    table: "regions",
    insert: () =>
      `insert into public.regions (id, display_name, panel_location_id) values ('rls', 'x', 9)`,
    fixture: () =>
      `insert into public.regions (id, display_name, panel_location_id) values ('rls-fixture', 'x', 9)`,
    key: "id = 'rls-fixture'",
    set: "display_name = 'changed'",
    read: { ...catalogue, service_role: all },
  },
  {
    table: "plans",
    insert: () =>
      `insert into public.plans (id, game, display_name, memory_mb, disk_mb, cpu_percent, ptero_nest_id, ptero_egg_id) values ('rls-plan', 'x', 'x', 1, 1, 1, 1, 1)`,
    fixture: () =>
      `insert into public.plans (id, game, display_name, memory_mb, disk_mb, cpu_percent, ptero_nest_id, ptero_egg_id) values ('rls-fixture', 'x', 'x', 1, 1, 1, 1, 1)`,
    key: "id = 'rls-fixture'",
    set: "display_name = 'changed'",
    read: { ...catalogue, service_role: all },
  },
  {
    table: "plan_prices",
    insert: () =>
      `insert into public.plan_prices (plan_id, term, stripe_price_id, amount_cents, currency) values ('mc-vanilla-4gb', 'yearly', 'price_rls', 1, 'usd')`,
    fixture: () =>
      `insert into public.plan_prices (plan_id, term, stripe_price_id, amount_cents, currency) values ('mc-java-2gb', 'yearly', 'price_rls_fixture', 1, 'usd') on conflict (plan_id, term) do update set stripe_price_id = 'price_rls_fixture'`,
    key: "stripe_price_id = 'price_rls_fixture'",
    set: "amount_cents = 1",
    read: {
      anon: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      userA: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      userB: () => "active and plan_id <> 'mc-java-1gb-legacy'",
      service_role: all,
    },
  },
  {
    table: "ptero_nodes",
    insert: () =>
      `insert into public.ptero_nodes (panel_node_id, panel_location_id, name, region, memory_mb, disk_mb) values (99, 1, 'x', 'us-east', 1, 1)`,
    fixture: () =>
      `insert into public.ptero_nodes (panel_node_id, panel_location_id, name, region, memory_mb, disk_mb) values (98, 1, 'x', 'us-east', 1, 1)`,
    key: "panel_node_id = 98",
    set: "memory_mb = 1",
    read: serviceOnly,
  },
  {
    table: "external_accounts",
    insert: (ids) =>
      `insert into public.external_accounts (user_id, ptero_user_id, ptero_username) values ('${ids.b}', 77, 'b')`,
    fixture: (ids) =>
      `update public.external_accounts set ptero_username = 'fixture' where user_id = '${ids.a}'`,
    key: "ptero_username = 'fixture'",
    set: "ptero_username = 'changed'",
    read: owners,
  },
  {
    table: "stripe_customers",
    insert: (ids) =>
      `insert into public.stripe_customers (user_id, stripe_customer_id) values ('${ids.b}', 'cus_rls')`,
    fixture: (ids) =>
      `update public.stripe_customers set stripe_customer_id = 'cus_fixture' where user_id = '${ids.a}'`,
    key: "stripe_customer_id = 'cus_fixture'",
    set: "stripe_customer_id = 'cus_changed'",
    read: serviceOnly,
  },
  {
    table: "orders",
    insert: (ids) =>
      `insert into public.orders (${ORDER_COLUMNS}) values (${
        orderValues(ids.a, "rls insert")
      })`,
    fixture: (ids) =>
      `insert into public.orders (${ORDER_COLUMNS}) values (${
        orderValues(ids.a, "rls fixture")
      })`,
    key: "server_name = 'rls fixture'",
    set: "server_name = 'changed'",
    read: owners,
  },
  {
    table: "order_events",
    insert: (ids) =>
      `insert into public.order_events (order_id, user_id, kind, message) values ('${ids.orderA}', '${ids.a}', 'note', 'x')`,
    fixture: (ids) =>
      `insert into public.order_events (order_id, user_id, kind, message) values ('${ids.orderA}', '${ids.a}', 'note', 'rls fixture')`,
    key: "message = 'rls fixture'",
    set: "message = 'changed'",
    read: owners,
  },
  {
    table: "plan_changes",
    insert: (ids) =>
      `insert into public.plan_changes (order_id, user_id, kind, from_plan_id, to_plan_id,
        from_price_id, to_price_id, amount_cents, currency, limits, idempotency_key, actor)
        values ('${ids.orderA}', '${ids.a}', 'upgrade', 'mc-java-2gb', 'mc-java-4gb',
        'price_a', 'price_b', 999, 'usd', '{}', 'rls-insert', 'rls')`,
    fixture: (ids) =>
      `insert into public.plan_changes (order_id, user_id, kind, status, from_plan_id,
        to_plan_id, from_price_id, to_price_id, amount_cents, currency, limits,
        idempotency_key, actor)
        values ('${ids.orderA}', '${ids.a}', 'upgrade', 'applied', 'mc-java-2gb',
        'mc-java-4gb', 'price_a', 'price_b', 999, 'usd', '{}', 'rls-fixture', 'rls')`,
    key: "idempotency_key = 'rls-fixture'",
    set: "status = 'canceled'",
    read: owners,
  },
  {
    table: "order_invoices",
    insert: () =>
      `insert into public.order_invoices (invoice_id, order_id, amount_paid, currency)
        select 'in_rls', id, 499, 'usd' from public.orders limit 1`,
    fixture: (ids) =>
      `insert into public.order_invoices (invoice_id, order_id, amount_paid, currency)
        select 'in_fixture', id, 499, 'usd' from public.orders
        where user_id = '${ids.a}' limit 1`,
    key: "invoice_id = 'in_fixture'",
    set: "amount_paid = 1",
    read: serviceOnly,
  },
  {
    table: "panel_eggs",
    insert: () =>
      `insert into public.panel_eggs (nest_id, egg_id, name, docker_image, startup, variables)
        values (9, 9, 'rls', 'img', 'run', '[]')`,
    fixture: () =>
      `insert into public.panel_eggs (nest_id, egg_id, name, docker_image, startup, variables)
        values (8, 8, 'fixture', 'img', 'run', '[]')`,
    key: "name = 'fixture'",
    set: "name = 'changed'",
    read: serviceOnly,
  },
  {
    table: "panel_allocations",
    insert: () =>
      `insert into public.panel_allocations (id, panel_node_id, ip, port, assigned)
        values (900001, 1, '10.0.0.1', 25565, false)`,
    fixture: () =>
      `insert into public.panel_allocations (id, panel_node_id, ip, port, assigned)
        values (900002, 1, '10.0.0.1', 25566, false)`,
    key: "id = 900002",
    set: "assigned = true",
    read: serviceOnly,
  },
  {
    table: "panel_orphans",
    insert: () =>
      `insert into public.panel_orphans (panel_server_id, external_id) values (900001, 'x')`,
    fixture: () =>
      `insert into public.panel_orphans (panel_server_id, external_id) values (900002, 'fixture')`,
    key: "panel_server_id = 900002",
    set: "name = 'changed'",
    read: serviceOnly,
  },
  {
    table: "shop_state",
    insert: () =>
      `insert into public.shop_state (key, value) values ('rls', '{}')`,
    fixture: () =>
      `insert into public.shop_state (key, value) values ('fixture', '{}')`,
    key: "key = 'fixture'",
    set: "value = '{\"changed\": true}'",
    read: serviceOnly,
  },
  {
    table: "stripe_events_log",
    insert: () =>
      `insert into public.stripe_events_log (event_id, type, payload) values ('evt_rls', 'x', '{}')`,
    fixture: () =>
      `insert into public.stripe_events_log (event_id, type, payload) values ('evt_fixture', 'x', '{}')`,
    key: "event_id = 'evt_fixture'",
    set: "outcome = 'ignored'",
    read: serviceOnly,
  },
];

// Every privilege each API role holds in public, tables, views, sequences and functions
// alike (also through PUBLIC): exactly these, nothing else. A migration adding an object
// an API role may use adds it here.
const API_READS = [
  "plans:SELECT",
  "plan_prices:SELECT",
  "plan_region_availability:SELECT",
  "regions:SELECT",
];
const SERVICE_TABLES = [
  "external_accounts",
  "order_invoices",
  "panel_allocations",
  "panel_eggs",
  "panel_orphans",
  "plan_changes",
  "shop_state",
  "order_events",
  "orders",
  "plan_prices",
  "plans",
  "ptero_nodes",
  "regions",
  "stripe_customers",
  "stripe_events_log",
];
const PRIVILEGES: Record<
  "anon" | "authenticated" | "service_role",
  string[]
> = {
  anon: [...API_READS, "plan_availability(text):EXECUTE"],
  authenticated: [
    ...API_READS,
    "external_accounts:SELECT",
    // The owner reads customer-facing columns only: never error_message or detail.
    ...[
      "id",
      "order_id",
      "user_id",
      "kind",
      "from_status",
      "to_status",
      "customer_message",
      "audience",
      "created_at",
    ].map((column) => `order_events.${column}:SELECT`),
    // The contract's promise to a storefront is exactly what the grants allow.
    ...CUSTOMER_ORDER_COLUMNS.map((column) => `orders.${column}:SELECT`),
    // A plan change: what it changes to and its state, never the operator's words.
    ...CUSTOMER_PLAN_CHANGE_COLUMNS.map((column) =>
      `plan_changes.${column}:SELECT`
    ),
    "plan_availability(text):EXECUTE",
  ],
  service_role: [
    ...SERVICE_TABLES.flatMap((table) =>
      ["SELECT", "INSERT", "UPDATE", "DELETE"].map((p) => `${table}:${p}`)
    ),
    "node_capacity:SELECT",
    "order_chain:SELECT",
    "order_customer_email(uuid):EXECUTE",
    "orders_needing_attention:SELECT",
    "order_status_words(order_status):EXECUTE",
    "order_transition_allowed(order_status,order_status):EXECUTE",
    "plan_availability(text):EXECUTE",
    "plan_region_availability:SELECT",
  ],
};

function claimsFor(
  role: Role,
  ids: Ids,
): ["anon" | "authenticated" | "service_role", Record<string, unknown>] {
  if (role === "anon") return ["anon", { role: "anon" }];
  if (role === "service_role") {
    return ["service_role", { role: "service_role" }];
  }
  return ["authenticated", {
    role: "authenticated",
    sub: role === "userA" ? ids.a : ids.b,
    aud: "authenticated",
  }];
}

class Rollback extends Error {}

/** What a statement did: refused by grants, rejected by RLS, or a row count. */
type Outcome = "denied" | "rls" | number;

/**
 * Runs `statement` as `role` the way PostgREST does (role and claims set in the
 * request's transaction), after `prelude` as the owner; rolls everything back.
 */
async function attempt(
  sql: postgres.Sql,
  role: Role,
  ids: Ids,
  statement: string,
  prelude?: string,
): Promise<Outcome> {
  const [pgRole, claims] = claimsFor(role, ids);
  let outcome: Outcome = 0;
  try {
    await sql.begin(async (tx) => {
      if (prelude) await tx.unsafe(prelude);
      await tx`select set_config('role', ${pgRole}, true),
        set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      const result = await tx.unsafe(statement);
      outcome = /^\s*select/i.test(statement)
        ? Number(result[0].n)
        : result.count;
      throw new Rollback();
    });
  } catch (error) {
    if (error instanceof Rollback) return outcome;
    const message = error instanceof Error ? error.message : String(error);
    if (/^permission denied for (table|view|sequence|function)/.test(message)) {
      return "denied";
    }
    if (/row-level security/.test(message)) return "rls";
    throw error;
  }
  return outcome;
}

function expectedWrite(c: TableCase, role: Role): Write {
  return c.write?.[role] ?? (role === "service_role" ? "allowed" : "denied");
}

Deno.test("grants and row level security: anon, user A, user B and service_role on every table", async (t) => {
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

    for (const c of CASES) {
      await t.step(c.table, async () => {
        for (const role of ROLES) {
          const read = c.read[role];
          const seen = await attempt(
            sql,
            role,
            ids,
            `select count(*)::int as n from public.${c.table}`,
          );
          if (read === "denied") {
            assert.equal(seen, "denied", `${role} select on ${c.table}`);
          } else {
            const [{ n }] = await sql.unsafe(
              `select count(*)::int as n from public.${c.table} where ${
                read(ids)
              }`,
            );
            assert.equal(seen, n, `${role} select on ${c.table}`);
          }

          const write = expectedWrite(c, role);
          const writes: [string, Outcome, string | undefined][] = [
            ["insert", await attempt(sql, role, ids, c.insert(ids)), undefined],
            [
              "update",
              await attempt(
                sql,
                role,
                ids,
                `update public.${c.table} set ${c.set} where ${c.key}`,
                c.fixture(ids),
              ),
              c.fixture(ids),
            ],
            [
              "delete",
              await attempt(
                sql,
                role,
                ids,
                `delete from public.${c.table} where ${c.key}`,
                c.fixture(ids),
              ),
              c.fixture(ids),
            ],
          ];
          for (const [op, outcome] of writes) {
            const expected = write === "denied"
              ? "denied"
              : write === "allowed"
              ? 1
              : op === "insert"
              ? "rls"
              : 0;
            assert.equal(outcome, expected, `${role} ${op} on ${c.table}`);
          }
        }
      });
    }

    await t.step(
      "operator views: service_role only",
      async () => {
        for (
          const view of [
            "node_capacity",
            "order_chain",
            "orders_needing_attention",
          ]
        ) {
          for (const role of ROLES) {
            const seen = await attempt(
              sql,
              role,
              ids,
              `select count(*)::int as n from public.${view}`,
            );
            if (role === "service_role") {
              assert.equal(typeof seen, "number", `${role} on ${view}`);
            } else assert.equal(seen, "denied", `${role} on ${view}`);
          }
        }
      },
    );

    await t.step("user B cannot read user A's order, by id", async () => {
      const select =
        `select count(*)::int as n from public.orders where id = '${orderA}'`;
      assert.equal(await attempt(sql, "userB", ids, select), 0);
      assert.equal(await attempt(sql, "userA", ids, select), 1);
    });

    await t.step(
      "customers see per-region availability, not nodes",
      async () => {
        const rows = await sql.begin(async (tx) => {
          await tx`select set_config('role', 'anon', true)`;
          return await tx`select * from public.plan_availability('mc-java-2gb')`;
        });
        assert.deepEqual(rows.map((r) => [r.region, r.available]), [[
          "eu-west",
          true,
        ], ["us-east", true]]);
      },
    );

    await t.step(
      "anyone reads availability per plan and region, and nothing about nodes",
      async () => {
        const read = async (soldOutRegion?: string) => {
          try {
            await sql.begin(async (tx) => {
              if (soldOutRegion) {
                await tx`update public.ptero_nodes set enabled = false
                  where region = ${soldOutRegion}`;
              }
              await tx`select set_config('role', 'anon', true)`;
              const rows = await tx<Record<string, unknown>[]>`
                select * from public.plan_region_availability
                where plan_id = 'mc-java-2gb' order by region`;
              throw new Rollback(JSON.stringify(rows));
            });
          } catch (error) {
            if (error instanceof Rollback) return JSON.parse(error.message);
            throw error;
          }
        };
        assert.deepEqual(await read(), [
          { plan_id: "mc-java-2gb", region: "eu-west", available: true },
          { plan_id: "mc-java-2gb", region: "us-east", available: true },
        ]);
        assert.deepEqual(await read("us-east"), [
          { plan_id: "mc-java-2gb", region: "eu-west", available: true },
          { plan_id: "mc-java-2gb", region: "us-east", available: false },
        ]);
      },
    );

    await t.step(
      "each API role holds exactly its privileges in public, nothing else",
      async () => {
        for (const [role, expected] of Object.entries(PRIVILEGES)) {
          const rows = await sql<{ grant: string }[]>`
            select c.relname || ':' || p.privilege as grant
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
              'REFERENCES', 'TRIGGER']) as p(privilege)
            where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and has_table_privilege(${role}, c.oid, p.privilege)
            union all
            select c.relname || ':' || p.privilege
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) as p(privilege)
            where n.nspname = 'public' and c.relkind = 'S'
              and has_sequence_privilege(${role}, c.oid, p.privilege)
            union all
            select c.relname || '.' || a.attname || ':' || p.privilege
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
              and not a.attisdropped
            cross join unnest(array['SELECT', 'INSERT', 'UPDATE']) as p(privilege)
            where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and has_column_privilege(${role}, c.oid, a.attnum, p.privilege)
              and not has_table_privilege(${role}, c.oid, p.privilege)
            union all
            select f.proname || '(' || oidvectortypes(f.proargtypes) || '):EXECUTE'
            from pg_proc f
            join pg_namespace n on n.oid = f.pronamespace
            where n.nspname = 'public'
              and has_function_privilege(${role}, f.oid, 'EXECUTE')
          `;
          assert.deepEqual(
            rows.map((row) => row.grant.replaceAll(", ", ",")).sort(),
            [...expected].sort(),
            role,
          );
        }
      },
    );
  } finally {
    await sql.end();
    await db.drop();
  }
});
