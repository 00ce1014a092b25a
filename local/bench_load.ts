/**
 * The bench's measuring tools: a load of signed webhook deliveries at a fixed
 * concurrency, the reference handlers the shop's functions are compared with (the
 * signature check alone; the durable floor: the check and one insert of the event),
 * latency percentiles, and the cold start of a fresh `deno run` until its first answer.
 *
 * @module
 */
import type { Sql } from "../supabase/functions/_shared/platform/db.ts";
import type { Handler } from "../supabase/functions/_shared/platform/http.ts";
import {
  Stripe,
  verifyStripeSignature,
} from "../supabase/functions/_shared/stripe/client.ts";
import { signPayload } from "./stripe-sandbox/mod.ts";

/** One signed delivery. */
export interface Delivery {
  body: string;
  signature: string;
}

/** What a load measured. */
export interface LoadResult {
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  statuses: Record<string, number>;
  /** When the first request went out (`performance.now()`). */
  startedAt: number;
}

/** The value at percentile `p` (0–100) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ];
}

/**
 * Deliveries of `events`, signed with `secret`, with `duplicateShare` of them sent a
 * second time (each copy after its original in the list, as Stripe retries).
 */
export async function signedDeliveries(
  events: Record<string, unknown>[],
  secret: string,
  duplicateShare: number,
): Promise<Delivery[]> {
  const bodies = events.map((event) => JSON.stringify(event));
  const copies = Math.round(bodies.length * duplicateShare);
  const list: string[] = [...bodies];
  // Spread the copies: every n-th event is sent again a few places later.
  for (let i = 0; i < copies; i++) {
    const original = Math.floor((i * bodies.length) / copies);
    list.splice(Math.min(list.length, original + i + 8), 0, bodies[original]);
  }
  return await Promise.all(
    list.map(async (body) => ({
      body,
      signature: await signPayload(secret, body),
    })),
  );
}

/** POSTs every delivery to `url`, `concurrency` at a time; answers rate and latencies. */
export async function load(
  url: string,
  deliveries: Delivery[],
  concurrency: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < deliveries.length) {
      const delivery = deliveries[next++];
      const started = performance.now();
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Stripe-Signature": delivery.signature,
        },
        body: delivery.body,
      });
      await res.body?.cancel();
      latencies.push(performance.now() - started);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    perSecond: deliveries.length / seconds,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    statuses,
    startedAt: started,
  };
}

/** A running in-process server. */
export interface Served {
  url: string;
  close(): Promise<void>;
}

/** Serves `handler` on a free loopback port, as `Deno.serve` serves a function. */
export function serve(handler: Handler): Served {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

/** The body of a delivery whose signature checks out, or null. */
async function verifiedBody(
  req: Request,
  stripe: Stripe,
  secret: string,
): Promise<string | null> {
  const body = await req.text();
  try {
    await verifyStripeSignature(
      stripe,
      body,
      req.headers.get("Stripe-Signature") ?? "",
      secret,
    );
    return body;
  } catch {
    return null;
  }
}

const BAD_SIGNATURE = {
  error: { code: "invalid_signature", message: "Invalid Stripe signature" },
};

/** Reference: a webhook handler that verifies the signature and answers. */
export function signatureOnlyHandler(stripe: Stripe, secret: string): Handler {
  return async (req) => {
    const body = await verifiedBody(req, stripe, secret);
    if (body === null) return Response.json(BAD_SIGNATURE, { status: 400 });
    return Response.json({ received: true });
  };
}

/** The table the durable floor writes to: stripe_events_log's columns and keys. */
export async function createFloorTable(sql: Sql): Promise<void> {
  await sql`create table if not exists public.bench_floor_events
    (like public.stripe_events_log including defaults including constraints
      including indexes)`;
}

/**
 * Reference: the durable floor. Verifies the signature, then records the event with
 * one `insert … on conflict do nothing` (its commit included) on `sql`'s pool.
 */
export function durableFloorHandler(
  stripe: Stripe,
  secret: string,
  sql: Sql,
): Handler {
  return async (req) => {
    const body = await verifiedBody(req, stripe, secret);
    if (body === null) return Response.json(BAD_SIGNATURE, { status: 400 });
    const event = JSON.parse(body) as { id: string; type: string };
    const rows = await sql`
      insert into public.bench_floor_events (event_id, type, payload, received_via)
      values (${event.id}, ${event.type}, ${body}::text::jsonb, 'webhook')
      on conflict (event_id) do nothing
      returning event_id`;
    return Response.json({ received: true, duplicate: rows.length === 0 });
  };
}

/**
 * Milliseconds from spawning `deno run -A <script>` (with `env`) to its first HTTP
 * answer: the module graph loaded, the server listening, one request answered.
 */
export async function coldStart(
  script: string,
  env: Record<string, string>,
): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", script],
    env: { ...env, DENO_SERVE_ADDRESS: "tcp:127.0.0.1:0", NO_COLOR: "1" },
    // Deno.serve announces "Listening on …" on stderr.
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    let url: string | undefined;
    while (!url) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${script} ended before it listened: ${text}`);
      text += value;
      url = /Listening on (http:\/\/\S+?)\/?\s/.exec(text)?.[1];
    }
    const res = await fetch(url, { method: "POST", body: "{}" });
    await res.body?.cancel();
    const elapsed = performance.now() - started;
    await reader.cancel();
    return elapsed;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // It had ended already.
    }
    await child.status;
  }
}

export { Stripe };
