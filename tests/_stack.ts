/**
 * Test fixtures: a stack per test file on its own copy of the template database,
 * users with access tokens, supabase-js clients, and SQL run the way PostgREST runs it.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { createDatabase, dropDatabase } from "../local/database.ts";
import { userAccessToken } from "../local/keys.ts";
import { type Stack, type StackOptions, startStack } from "../local/stack.ts";
import { ensureUser } from "../local/token.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";

/** Where the test runner's Postgres is. */
export function testServer(): { url: string; template: string } {
  const url = Deno.env.get("TEST_DATABASE_URL");
  const template = Deno.env.get("TEST_TEMPLATE_DATABASE");
  if (!url || !template) {
    throw new Error("Run the tests with `npm test` (it starts Postgres)");
  }
  return { url, template };
}

/** A database a test stack runs on, and how to remove it. */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh database copied from the migrated, seeded template. */
export async function freshDatabase(): Promise<TestDatabase> {
  const server = testServer();
  const name = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const url = await createDatabase(server.url, name, server.template);
  return { url, drop: () => dropDatabase(server.url, name) };
}

/** A test user with a signed access token. */
export interface TestUser {
  id: string;
  email: string;
  token: string;
  /** supabase-js client signed in as this user. */
  client: SupabaseClient;
}

/** A stack for one test file, plus helpers. */
export interface TestStack extends Stack {
  sql: postgres.Sql;
  logs: string[];
  /** A new confirmed user with a token and a signed-in client. */
  user(email?: string): Promise<TestUser>;
  /** supabase-js client with the anon key only. */
  anon: SupabaseClient;
}

/**
 * Starts a stack on free ports over a fresh database (or over `database`, which the
 * stack then owns and drops on close).
 */
export async function startTestStack(
  options: StackOptions & { database?: TestDatabase } = {},
): Promise<TestStack> {
  const { database, ...stackOptions } = options;
  const db = database ?? await freshDatabase();
  const logs: string[] = [];
  const verbose = Deno.env.get("TEST_LOGS") === "1";
  const write = (line: string) => {
    logs.push(line);
    if (verbose) console.log(line);
  };
  const log = createLogger({ component: "test-stack" }, { write });
  let stack: Stack;
  try {
    stack = await startStack({
      databaseUrl: db.url,
      ports: { gateway: 0, stripe: 0, panel: 0, storefront: 0 },
      panelInstallDelayMs: 100,
      ephemeralKeys: true,
      stripeRetryDelaysMs: [20, 40, 80],
      log,
      functionLog: write,
      ...stackOptions,
    });
  } catch (error) {
    await db.drop();
    throw error;
  }
  const sql = postgres(db.url, { max: 4, onnotice: () => {} });
  const supabaseUrl = stack.gateway.url;
  const clientOptions = {
    auth: { persistSession: false, autoRefreshToken: false },
  };
  const anon = createClient(supabaseUrl, stack.keys.anonKey, clientOptions);
  let counter = 0;
  return {
    ...stack,
    sql,
    logs,
    anon,
    async user(email) {
      const address = email ??
        `user${++counter}-${crypto.randomUUID().slice(0, 8)}@example.com`;
      const id = await ensureUser(db.url, address);
      const token = await userAccessToken(stack.keys, {
        supabaseUrl,
        userId: id,
        email: address,
      });
      const client = createClient(supabaseUrl, stack.keys.anonKey, {
        ...clientOptions,
        global: { headers: { Authorization: `Bearer ${token}` } },
      });
      return { id, email: address, token, client };
    },
    async close() {
      await stack.close();
      await sql.end();
      await db.drop();
    },
  };
}
