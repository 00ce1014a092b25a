/**
 * Fixture factories and small helpers shared by the tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { SupabaseClient } from "@supabase/supabase-js";
import { FunctionsHttpError } from "@supabase/supabase-js";
import type postgres from "postgres";

/** What a function answered, through supabase-js. */
export interface Invocation {
  status: number;
  body: Record<string, unknown>;
}

/** Invokes a function with supabase-js and answers its status and JSON body. */
export async function invoke(
  client: SupabaseClient,
  name: string,
  body?: unknown,
  headers?: Record<string, string>,
): Promise<Invocation> {
  const { data, error, response } = await client.functions.invoke(name, {
    body: body as Record<string, unknown> | undefined,
    headers,
  });
  if (error instanceof FunctionsHttpError) {
    const res = error.context as Response;
    return { status: res.status, body: await res.json() };
  }
  if (error) throw error;
  return {
    status: response?.status ?? 200,
    body: data as Record<string, unknown>,
  };
}

/**
 * Row counts of every table in `public`, read from the catalogue: a bad input must
 * leave them alone, and a table added later is counted without editing this.
 */
export async function footprint(
  stack: { sql: postgres.Sql },
): Promise<Record<string, number>> {
  const tables = await stack.sql<{ name: string }[]>`
    select c.relname::text as name from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`;
  const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`;
  const [row] = await stack.sql.unsafe(
    `select ${
      tables.map(({ name }) =>
        `(select count(*)::int from public.${quoted(name)}) as ${quoted(name)}`
      ).join(", ")
    }`,
  );
  return { ...row };
}

/**
 * POSTs `body` straight to a function through the gateway (no supabase-js) and answers
 * its status and JSON body.
 */
export async function post(
  stack: { gateway: { url: string } },
  fn: string,
  body: BodyInit,
  headers: Record<string, string>,
): Promise<Invocation> {
  const res = await fetch(`${stack.gateway.url}/functions/v1/${fn}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body,
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${fn} answered ${res.status} with non-JSON: ${text}`);
  }
  return { status: res.status, body: parsed };
}

/** The `error.code` of an error body. */
export function errorCode(body: Record<string, unknown>): unknown {
  return (body.error as { code?: unknown } | undefined)?.code ?? body.code;
}

/** Runs `fn` as PostgREST would for a request: role and JWT claims set in one transaction. */
export async function asRole<T>(
  sql: postgres.Sql,
  role: "anon" | "authenticated" | "service_role",
  claims: Record<string, unknown>,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', ${role}, true),
      set_config('request.jwt.claims', ${
      JSON.stringify({ role, ...claims })
    }, true)`;
    return await fn(tx);
  }) as T;
}

/** Inserts an order directly (as the service) and answers its id. */
export async function insertOrder(
  sql: postgres.Sql,
  userId: string,
  fields: {
    status?: string;
    planId?: string;
    region?: string;
    nodeId?: number | null;
    serverName?: string;
  } = {},
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into public.orders (user_id, plan_id, term, region, server_name, status,
      stripe_price_id, amount_cents, currency, memory_mb, disk_mb, node_id)
    select ${userId}, p.id, 'monthly', ${fields.region ?? "us-east"},
      ${fields.serverName ?? "fixture server"}, ${
    fields.status ?? "pending"
  }::public.order_status,
      pp.stripe_price_id, pp.amount_cents, pp.currency, p.memory_mb, p.disk_mb,
      ${fields.nodeId ?? null}
    from public.plans p join public.plan_prices pp on pp.plan_id = p.id and pp.term = 'monthly'
    where p.id = ${fields.planId ?? "mc-java-2gb"}
    returning id`;
  return row.id;
}

/**
 * Makes Postgres itself fail a write: a trigger raising `message` with SQLSTATE
 * `errcode` before each insert or update of `table` for which `when` (a trigger WHEN
 * condition over `new`) holds. Answers how to remove it again.
 */
export async function injectDbError(
  sql: postgres.Sql,
  fault: {
    table: "orders" | "stripe_events_log";
    when: string;
    errcode: string;
    message: string;
  },
): Promise<() => Promise<void>> {
  const name = `test_fault_${crypto.randomUUID().replaceAll("-", "")}`;
  const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
  await sql.unsafe(`
    create function public.${name}() returns trigger language plpgsql as $$
    begin
      raise exception using message = ${literal(fault.message)},
        errcode = ${literal(fault.errcode)};
    end $$;
    create trigger ${name} before insert or update on public.${fault.table}
      for each row when (${fault.when}) execute function public.${name}();`);
  return async () => {
    await sql.unsafe(`drop trigger ${name} on public.${fault.table};
      drop function public.${name}();`);
  };
}

/** Creates a user directly on the panel sandbox, as an admin would; answers its id. */
export async function createPanelUser(
  stack: { panel: { url: string }; keys: { panelApiKey: string } },
  fields: { email: string; username: string; external_id?: string },
): Promise<number> {
  const res = await fetch(`${stack.panel.url}/api/application/users`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${stack.keys.panelApiKey}`,
      Accept: "application/json",
      "Content-Type": "application/json",
    },
    body: JSON.stringify({
      first_name: "Legacy",
      last_name: "Account",
      ...fields,
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.attributes.id;
}

/** A request body produced only as it is read, counting what was pulled. */
export interface CountedBody {
  stream: ReadableStream<Uint8Array>;
  /** Bytes handed to the reader so far. */
  pulled(): number;
  /** Whether the reader cancelled the stream. */
  cancelled(): boolean;
}

/**
 * A body of `total` bytes (endless when omitted) in chunks of `chunk` bytes (default
 * 64 KiB), made one chunk a read (nothing is buffered ahead) from one reused buffer,
 * so even a huge body costs the sender no memory.
 */
export function countedBody(
  options: { total?: number; chunk?: number } = {},
): CountedBody {
  const chunk = new Uint8Array(options.chunk ?? 64 * 1024).fill(0x20);
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (options.total !== undefined && pulled >= options.total) {
        controller.close();
        return;
      }
      const size = Math.min(
        chunk.byteLength,
        (options.total ?? Infinity) - pulled,
      );
      pulled += size;
      controller.enqueue(chunk.subarray(0, size));
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

/** Writes all of `bytes` to `conn`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += await conn.write(bytes.subarray(done));
  }
}

/**
 * POSTs `body` straight to a function over a plain TCP connection, writing the body
 * while reading the reply, and answers its status and JSON body. With a
 * `Content-Length` in `headers` the body is sent as is, otherwise chunked. A function
 * that answers before reading the whole body (a 413, a refused signature) is seen
 * answering, where Deno 2.1's fetch reports only the broken pipe of the unsent rest.
 */
export async function rawPost(
  stack: { gateway: { url: string } },
  fn: string,
  body: ReadableStream<Uint8Array>,
  headers: Record<string, string>,
): Promise<Invocation> {
  const url = new URL(`${stack.gateway.url}/functions/v1/${fn}`);
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  const encoder = new TextEncoder();
  const chunked = !Object.keys(headers).some((name) =>
    name.toLowerCase() === "content-length"
  );
  const head = [
    `POST ${url.pathname} HTTP/1.1`,
    `Host: ${url.host}`,
    "Content-Type: application/json",
    "Connection: close",
    ...(chunked ? ["Transfer-Encoding: chunked"] : []),
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    "",
    "",
  ].join("\r\n");
  const writing = (async () => {
    await writeAll(conn, encoder.encode(head));
    for await (const chunk of body) {
      if (chunked) {
        await writeAll(
          conn,
          encoder.encode(`${chunk.length.toString(16)}\r\n`),
        );
      }
      await writeAll(conn, chunk);
      if (chunked) await writeAll(conn, encoder.encode("\r\n"));
    }
    if (chunked) await writeAll(conn, encoder.encode("0\r\n\r\n"));
  })().catch(() => {
    // The function answered and closed before taking it all: what this is about.
  });
  let received = new Uint8Array(0);
  const buffer = new Uint8Array(64 * 1024);
  let reply: Invocation | null = null;
  try {
    while (reply === null) {
      const n = await conn.read(buffer);
      if (n === null) break;
      const next = new Uint8Array(received.length + n);
      next.set(received);
      next.set(buffer.subarray(0, n), received.length);
      received = next;
      reply = parseReply(received);
    }
  } catch {
    // A reset after the reply: what was read is kept.
  } finally {
    conn.close();
    await writing;
  }
  reply ??= parseReply(received, true);
  if (!reply) {
    throw new Error(
      `${fn}: no complete reply: ${new TextDecoder().decode(received)}`,
    );
  }
  return reply;
}

/** An HTTP/1.1 reply once all of it is in `bytes` (or, at the end, whatever came). */
function parseReply(bytes: Uint8Array, ended = false): Invocation | null {
  const text = new TextDecoder().decode(bytes);
  const split = text.indexOf("\r\n\r\n");
  if (split < 0) return null;
  const [statusLine, ...lines] = text.slice(0, split).split("\r\n");
  const length = lines.map((line) => /^content-length:\s*(\d+)$/i.exec(line))
    .find((match) => match !== null)?.[1];
  const rest = bytes.subarray(
    new TextEncoder().encode(text.slice(0, split + 4)).length,
  );
  if (length === undefined ? !ended : rest.length < Number(length)) return null;
  const status = Number(statusLine.split(" ")[1]);
  const raw = new TextDecoder().decode(
    length === undefined ? rest : rest.subarray(0, Number(length)),
  );
  try {
    return { status, body: JSON.parse(raw) };
  } catch {
    throw new Error(`answered ${status} with non-JSON: ${raw}`);
  }
}

/** Bodies that are present but not a valid request, with the code each gets. */
export const MALFORMED_BODIES: readonly (readonly [string, string])[] = [
  ['{"order_id": 5}', "invalid_request"],
  ["[]", "invalid_request"],
  ['"x"', "invalid_request"],
  ["not json", "invalid_json"],
];

/** The flags the test runtime needs in a child Deno (its own lock file on Deno 2.1). */
export function testDenoFlags(): string[] {
  return (Deno.env.get("TEST_DENO_FLAGS") ?? "").split(" ").filter(Boolean);
}

/**
 * Arguments to run a script in a child Deno like the tests' own: `npm run test:edge`
 * passes Deno 2.1's flags (its own lock file) in TEST_DENO_FLAGS.
 */
export function denoRunArgs(script: string | URL, ...more: string[]): string[] {
  const flags = testDenoFlags();
  const path = script instanceof URL ? script.pathname : script;
  return ["run", "-A", ...flags, ...more, path];
}
