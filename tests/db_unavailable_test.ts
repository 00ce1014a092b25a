import assert from "node:assert/strict";
import { FUNCTIONS } from "../supabase/functions/_shared/manifest.ts";
import { post } from "./_fixtures.ts";
import { unhandledEvent } from "./_purchase.ts";
import { freshDatabase, startTestStack } from "./_stack.ts";
import { signPayload } from "../local/stripe-sandbox/mod.ts";

/** What happens to the database connection a function opens. */
type Fault = "refused" | "reset" | "closed";

/**
 * A proxy in front of the test database: nothing listens (`refused`), or the
 * connection is made and dropped at the function's first query, unread (`reset`: the kernel
 * answers RST) or read (`closed`: an orderly close), as a database restarting or a
 * network dropping does.
 */
function faultyDatabase(target: string): {
  url: string;
  fault(fault: Fault): void;
  close(): void;
} {
  const upstream = new URL(target);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr as Deno.NetAddr;
  probe.close();
  let listener: Deno.Listener | null = null;
  let mode: Fault = "refused";
  const QUERY = new Set(["P".charCodeAt(0), "Q".charCodeAt(0)]);
  const pipe = async (client: Deno.Conn) => {
    const server = await Deno.connect({
      hostname: upstream.hostname,
      port: Number(upstream.port),
    });
    const back = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      for (let n; (n = await server.read(buffer)) !== null;) {
        await client.write(buffer.subarray(0, n));
      }
    })();
    try {
      const first = new Uint8Array(1);
      const rest = new Uint8Array(64 * 1024);
      // One byte at a time at each message start: a query is seen before it is read.
      // The first query of a connection (the client's type lookup, part of
      // connecting) passes: the fault hits the function's own query.
      let queries = 0;
      while (await client.read(first) !== null) {
        if (QUERY.has(first[0]) && ++queries > 1) {
          if (mode === "closed") await client.read(rest);
          break;
        }
        const n = await client.read(rest);
        await server.write(first);
        if (n) await server.write(rest.subarray(0, n));
      }
    } finally {
      client.close();
      server.close();
      await back.catch(() => {});
    }
  };
  return {
    url:
      `postgres://${upstream.username}:${upstream.password}@127.0.0.1:${port}${upstream.pathname}`,
    fault(next) {
      mode = next;
      if (next === "refused") {
        listener?.close();
        listener = null;
      } else if (!listener) {
        const l = Deno.listen({ hostname: "127.0.0.1", port });
        listener = l;
        (async () => {
          for await (const conn of l) pipe(conn).catch(() => {});
        })().catch(() => {});
      }
    },
    close() {
      listener?.close();
    },
  };
}

/**
 * A request each function would act on, reaching its database (a function added to
 * the manifest needs one here: the test says so).
 */
const BODIES: Record<string, unknown> = {
  "create-checkout-session": {
    plan_id: "mc-java-4gb",
    term: "monthly",
    region: "eu-west",
    server_name: "Unavailable",
  },
  "servers-provision": { order_id: crypto.randomUUID() },
  "order-doctor": { query: crypto.randomUUID() },
  "change-server-plan": {
    order_id: crypto.randomUUID(),
    plan_id: "mc-java-8gb",
    preview: true,
  },
  "create-pterodactyl-user": {},
  "sync-server-status": {},
  "create-billing-portal-session": {},
};

Deno.test("a database refusing, resetting or closing the connection: every function answers 503 temporarily_unavailable", async (t) => {
  const target = await freshDatabase();
  const db = faultyDatabase(target.url);
  // The pooler URL takes precedence over SUPABASE_DB_URL: every function connects there.
  const stack = await startTestStack({ env: { DB_POOLER_URL: db.url } });
  try {
    const user = await stack.user();
    const credentials = {
      user: {
        Authorization: `Bearer ${user.token}`,
        apikey: stack.keys.publishableKey,
      },
      service: { apikey: stack.keys.secretKey },
    };
    for (const fault of ["refused", "reset", "closed"] as const) {
      db.fault(fault);
      for (const [fn, { caller }] of Object.entries(FUNCTIONS)) {
        await t.step(`${fault}: ${fn}`, async () => {
          let res;
          assert.ok(
            caller === "stripe" || fn in BODIES,
            `${fn}: add a request that reaches its database to BODIES`,
          );
          if (caller === "stripe") {
            const payload = JSON.stringify(
              unhandledEvent(`evt_db_${fault}_${crypto.randomUUID()}`),
            );
            res = await post(stack, fn, payload, {
              "Stripe-Signature": await signPayload(
                stack.keys.stripeWebhookSecret,
                payload,
              ),
            });
          } else {
            res = await post(
              stack,
              fn,
              JSON.stringify(BODIES[fn]),
              caller === "service" ? credentials.service : credentials.user,
            );
          }
          assert.deepEqual(res, {
            status: 503,
            body: {
              error: {
                code: "temporarily_unavailable",
                message: "Try again later",
              },
            },
          });
        });
      }
    }
    await t.step("the log says why, as an error", () => {
      assert.ok(
        stack.logs.some((line) =>
          line.includes('"level":"error"') &&
          line.includes("Database unavailable")
        ),
      );
    });
  } finally {
    await stack.close();
    db.close();
    await target.drop();
  }
});
