/**
 * Sweep helpers: the sweep run in process against a test stack with a clock the test
 * moves (no sleeping through backoff), the service call through the gateway as the
 * schedule makes it, and panel sandbox controls.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createAlerter } from "../supabase/functions/_shared/platform/alerts.ts";
import {
  type ConvergeDeps,
  convergeDue,
  type ConvergeOutcome,
} from "../supabase/functions/_shared/panel/converge.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import {
  createPanelClient,
  createPanelClientApi,
} from "../supabase/functions/_shared/panel/client.ts";
import { DEFAULT_RETRY_POLICY } from "../supabase/functions/_shared/orders/retry.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import {
  sweep,
  SWEEP_JOBS,
  type SweepDeps,
  type SweepSummary,
} from "../supabase/functions/_shared/sweep/mod.ts";
import { callSweep } from "../local/stack.ts";
import type { TestStack } from "./_stack.ts";

/** A clock the test moves forward. */
export interface TestClock {
  now(): Date;
  advance(ms: number): void;
  /** Moves the clock to just after `at` (when `at` is later). */
  passTo(at: Date | null | undefined): void;
}

/** A clock starting at the real time. */
export function testClock(): TestClock {
  let offset = 0;
  const clock: TestClock = {
    now: () => new Date(Date.now() + offset),
    advance(ms) {
      offset += ms;
    },
    passTo(at) {
      if (!at) return;
      const gap = at.getTime() + 1000 - clock.now().getTime();
      if (gap > 0) offset += gap;
    },
  };
  return clock;
}

/** The sweep in process, as sync-server-status runs it, with an injected clock. */
export interface Sweeper {
  clock: TestClock;
  sweep(): Promise<SweepSummary>;
  /**
   * Runs one of the sweep's jobs alone (by its name in SWEEP_JOBS), with `more` as
   * its budget (default: no limit); answers its outcomes.
   */
  job(name: string, more?: () => boolean): Promise<Record<string, number>>;
  /** Converges one order now (the `{"order_id"}` path without the refresh). */
  converge(orderId: string): Promise<ConvergeOutcome[]>;
  close(): Promise<void>;
}

/** Builds a sweeper over the stack's database and panel. */
export function sweeper(
  stack: TestStack,
  options: {
    clock?: TestClock;
    maxAttempts?: number;
    alertUrl?: string;
    clientKey?: boolean;
    /** The panel client's per-request timeout (default the shop's). */
    panelTimeoutMs?: number;
    /** Payment grace and retention (default the shop's: 3 days, 14 days). */
    lifecycle?: { paymentGraceSeconds: number; retentionSeconds: number };
  } = {},
): Sweeper {
  const clock = options.clock ?? testClock();
  const sql = connect(stack.databaseUrl, { max: 3 });
  const log = createLogger({ fn: "test-sweep" }, {
    write: (line) => {
      stack.logs.push(line);
      if (Deno.env.get("TEST_LOGS") === "1") console.log(line);
    },
  });
  let calls = 0;
  const onCall = () => calls++;
  const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
  const deps: ConvergeDeps = {
    sql,
    panel: createPanelClient({
      url: stack.panel.url,
      apiKey: stack.keys.panelApiKey,
      onCall,
      maxRetryWaitMs: 0,
      timeoutMs: options.panelTimeoutMs,
    }),
    client: options.clientKey === false ? null : createPanelClientApi({
      url: stack.panel.url,
      apiKey: stack.keys.panelClientKey,
      onCall,
      maxRetryWaitMs: 0,
    }),
    alert: createAlerter({ sql, log, webhookUrl: options.alertUrl }),
    log,
    now: clock.now,
  };
  const sweepDeps = (): SweepDeps => {
    const before = calls;
    return {
      ...deps,
      stripe,
      lifecycle: options.lifecycle ??
        { paymentGraceSeconds: 259_200, retentionSeconds: 1_209_600 },
      retry: {
        ...DEFAULT_RETRY_POLICY,
        maxAttempts: options.maxAttempts ?? 8,
      },
      budgetMs: 60_000,
      panelCalls: () => calls - before,
    };
  };
  return {
    clock,
    sweep: () => sweep(sweepDeps()),
    async job(name, more = () => true) {
      const job = SWEEP_JOBS.find((j) => j.name === name);
      assert.ok(job, `a sweep job named ${name}`);
      const outcomes: Record<string, number> = {};
      await job.run(sweepDeps(), (outcome, n = 1) => {
        outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
      }, more);
      return outcomes;
    },
    converge: (orderId) => convergeDue(deps, { actor: "test", orderId }),
    close: () => sql.end({ timeout: 5 }),
  };
}

/** Calls sync-server-status as the schedule does (secret key in `apikey`). */
export async function serviceCall(
  stack: TestStack,
  body: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return await callSweep(stack, body);
}

/** What an admin's suspension does: the target suspended, the action due now. */
export async function suspendByAdmin(
  stack: TestStack,
  s: Sweeper,
  orderId: string,
): Promise<void> {
  await stack.sql`update public.orders set panel_target = 'suspended',
    suspend_reason = 'admin', panel_action_due_at = ${s.clock.now()}
    where id = ${orderId}`;
}

/** Ends the panel sandbox's pending installs now (all, or one server's). */
export async function finishInstalls(
  stack: TestStack,
  options: { server_id?: number; outcome?: "success" | "failure" } = {},
): Promise<number[]> {
  const res = await fetch(`${stack.panel.url}/_sandbox/installs/finish`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(options),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.finished;
}

/** Deletes a server on the panel by hand (as in its admin UI). */
export async function deleteByHand(
  stack: TestStack,
  serverId: number,
): Promise<void> {
  const res = await fetch(`${stack.panel.url}/_sandbox/servers/${serverId}`, {
    method: "DELETE",
  });
  await res.body?.cancel();
  assert.equal(res.status, 204);
}

/** Seeds servers on the panel at once; answers their ids. */
export async function seedServers(
  stack: TestStack,
  body: Record<string, unknown>,
): Promise<number[]> {
  const res = await fetch(`${stack.panel.url}/_sandbox/servers/bulk`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const result = await res.json();
  assert.equal(res.status, 201, JSON.stringify(result));
  return result.ids;
}

/** Panel calls recorded since the last reset, as `METHOD path` strings. */
export function panelCalls(stack: TestStack): string[] {
  return stack.panel.calls().map((call) => `${call.method} ${call.path}`);
}

/** The server the panel has for an order. */
export function serverOf(stack: TestStack, orderId: string) {
  const found = stack.panel.state().servers.filter((s) =>
    s.external_id === orderId
  );
  assert.ok(found.length <= 1, `servers for ${orderId}: ${found.length}`);
  return found[0];
}
