import assert from "node:assert/strict";
import postgres from "postgres";
import { loadCatalogue, loadPanelSeed } from "../local/catalogue.ts";
import {
  createDatabase,
  dropDatabase,
  listMigrations,
  prepareDatabase,
} from "../local/database.ts";
import { seedSql } from "../local/seed.ts";
import { testServer } from "./_stack.ts";

Deno.test("migrations apply on a new database, once each, with the seed", async (t) => {
  const server = testServer();
  const name = `t_migrations_${Deno.pid}`;
  const url = await createDatabase(server.url, name);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const migrations = await listMigrations();
    await t.step(
      "a new database gets every migration, in order, and the seed",
      async () => {
        const applied = await prepareDatabase(url);
        assert.deepEqual(applied, migrations.map((m) => m.version));
        const rows =
          await sql`select version, name from supabase_migrations.schema_migrations
        order by version`;
        assert.deepEqual(
          rows.map((r) => `${r.version}_${r.name}`),
          migrations.map((m) => `${m.version}_${m.name}`),
        );
        const catalogue = await loadCatalogue();
        const [{ count }] =
          await sql`select count(*)::int as count from public.plans`;
        assert.equal(count, catalogue.plans.length);
      },
    );

    await t.step(
      "preparing again applies nothing and does not seed twice",
      async () => {
        assert.deepEqual(await prepareDatabase(url), []);
        const panel = await loadPanelSeed();
        const [{ count }] =
          await sql`select count(*)::int as count from public.ptero_nodes`;
        assert.equal(count, panel.nodes.length);
      },
    );

    await t.step(
      "a new public table gets no grants for the API roles, as on hosted Supabase",
      async () => {
        await sql`create table public.t_grants_probe (id int)`;
        await sql`create sequence public.t_grants_probe_seq`;
        try {
          const [row] = await sql`select
            bool_or(has_table_privilege(r, 'public.t_grants_probe',
              'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) as tables,
            bool_or(has_sequence_privilege(r, 'public.t_grants_probe_seq',
              'USAGE, SELECT, UPDATE')) as sequences
            from unnest(array['anon', 'authenticated', 'service_role']) as r`;
          assert.deepEqual({ ...row }, { tables: false, sequences: false });
        } finally {
          await sql`drop table public.t_grants_probe`;
          await sql`drop sequence public.t_grants_probe_seq`;
        }
      },
    );

    await t.step(
      "every public table has row level security enabled",
      async () => {
        const rows =
          await sql`select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity`;
        assert.deepEqual(rows.map((r) => r.relname), []);
      },
    );
  } finally {
    await sql.end();
    await dropDatabase(server.url, name);
  }
});

Deno.test("seed.sql is generated from the current catalogue", async () => {
  const text = await Deno.readTextFile(
    new URL("../supabase/seed.sql", import.meta.url),
  );
  assert.equal(
    text,
    seedSql(await loadCatalogue(), await loadPanelSeed()),
    "run `deno run -A local/seed.ts`",
  );
});

Deno.test("migrations contain nothing local-only", async () => {
  for (const migration of await listMigrations()) {
    const text = await Deno.readTextFile(migration.path);
    for (
      const forbidden of [
        /create\s+role/i,
        /create\s+schema\s+(if not exists\s+)?auth/i,
        /auth\.users\s*\(/i,
        // Hosted default privileges belong to the platform; grants are per object.
        /alter\s+default\s+privileges/i,
        /grant\s+[^;]*\bon\s+all\s+(tables|sequences|functions)\b/i,
      ]
    ) {
      assert.ok(
        !forbidden.test(text.replace(/references auth\.users \(id\)/g, "")),
        `${migration.name}: ${forbidden}`,
      );
    }
  }
});
