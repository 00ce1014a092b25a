/**
 * Prepares a database the way hosted Supabase would have it: the platform bootstrap
 * (local only), then `supabase/migrations` in order, each once, recorded in
 * `supabase_migrations.schema_migrations` like the CLI does, then `supabase/seed.sql`
 * on a new database.
 *
 * @module
 */
import postgres from "postgres";

const ROOT = new URL("../", import.meta.url);

/** A migration file. */
export interface Migration {
  version: string;
  name: string;
  path: URL;
}

/** Lists `supabase/migrations/<14-digit version>_<name>.sql`, oldest first. */
export async function listMigrations(): Promise<Migration[]> {
  const dir = new URL("supabase/migrations/", ROOT);
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = /^(\d{14})_(.+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !match) continue;
    found.push({
      version: match[1],
      name: match[2],
      path: new URL(entry.name, dir),
    });
  }
  return found.sort((a, b) => a.version.localeCompare(b.version));
}

/** Runs one SQL script on its own connection, as psql would (many statements). */
async function runScript(url: string, script: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(script);
  } finally {
    await sql.end();
  }
}

/**
 * Applies the bootstrap, then every migration not yet recorded, then the seed when
 * this call applied the first migration. Answers the versions it applied.
 */
export async function prepareDatabase(
  url: string,
  options: { seed?: boolean } = {},
): Promise<string[]> {
  await runScript(
    url,
    await Deno.readTextFile(new URL("local/sql/bootstrap.sql", ROOT)),
  );
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const applied: string[] = [];
  let fresh = false;
  try {
    const rows = await sql<{ version: string }[]>`
      select version from supabase_migrations.schema_migrations`;
    const done = new Set(rows.map((row) => row.version));
    fresh = done.size === 0;
    for (const migration of await listMigrations()) {
      if (done.has(migration.version)) continue;
      const text = await Deno.readTextFile(migration.path);
      await sql.begin(async (tx) => {
        await tx.unsafe(text);
        await tx`
          insert into supabase_migrations.schema_migrations (version, name, statements)
          values (${migration.version}, ${migration.name}, ${[text]})`;
      });
      applied.push(migration.version);
    }
    if (fresh && (options.seed ?? true)) {
      await sql.unsafe(
        await Deno.readTextFile(new URL("supabase/seed.sql", ROOT)),
      );
    }
  } finally {
    await sql.end();
  }
  return applied;
}

/** The URL of another database on the same server. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Creates `name` (dropping any previous one), optionally as a copy of `template`. */
export async function createDatabase(
  serverUrl: string,
  name: string,
  template?: string,
): Promise<string> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
    await sql.unsafe(
      `create database "${name}"${template ? ` template "${template}"` : ""}`,
    );
  } finally {
    await sql.end();
  }
  return databaseUrl(serverUrl, name);
}

/** Drops a database, disconnecting its clients. */
export async function dropDatabase(
  serverUrl: string,
  name: string,
): Promise<void> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end();
  }
}
