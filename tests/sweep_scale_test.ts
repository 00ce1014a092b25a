import assert from "node:assert/strict";
import { order, purchase } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { LIST_PAGES_PER_SWEEP } from "../supabase/functions/_shared/sweep/mod.ts";
import {
  finishInstalls,
  panelCalls,
  seedServers,
  type Sweeper,
  sweeper,
} from "./_sweep.ts";

/** A purchase taken to an installed server and an active order. */
async function activeOrder(stack: TestStack, s: Sweeper): Promise<string> {
  const { orderId } = await purchase(stack, {
    plan_id: "mc-java-2gb",
    region: "us-east",
  });
  const { pterodactyl_server_id } = await order(stack, orderId);
  await finishInstalls(stack, { server_id: pterodactyl_server_id });
  await s.sweep();
  assert.equal((await order(stack, orderId)).status, "active");
  return orderId;
}

/** Asks for a suspension now, as an admin (or stripe-webhook) does. */
async function suspendNow(stack: TestStack, orderIds: string[], at: Date) {
  await stack.sql`update public.orders set panel_target = 'suspended',
    suspend_reason = 'admin', panel_action_due_at = ${at}
    where id = any(${orderIds}::uuid[])`;
}

function suspendCalls(stack: TestStack): string[] {
  return panelCalls(stack).filter((call) => call.endsWith("/suspend"));
}

Deno.test("sweeps at once act once per order; panel cost grows with servers / 100", async (t) => {
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const one = sweeper(stack);
  const two = sweeper(stack, { clock: one.clock });
  try {
    await t.step(
      "an order another worker holds is skipped, then acted on",
      async () => {
        const orderId = await activeOrder(stack, one);
        await suspendNow(stack, [orderId], one.clock.now());
        stack.panel.resetCalls();
        await stack.sql.begin(async (tx) => {
          await tx`select id from public.orders where id = ${orderId} for update`;
          const summary = await one.sweep();
          assert.equal(summary.outcomes["action.suspended"], undefined);
        });
        assert.deepEqual(suspendCalls(stack), []);
        await one.sweep();
        assert.equal(suspendCalls(stack).length, 1);
        assert.equal((await order(stack, orderId)).status, "suspended");
      },
    );

    await t.step("two sweeps at once suspend each server once", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await activeOrder(stack, one));
      await suspendNow(stack, ids, one.clock.now());
      stack.panel.resetCalls();
      const [a, b] = await Promise.all([one.sweep(), two.sweep()]);
      const calls = suspendCalls(stack);
      assert.equal(calls.length, 4, calls.join("\n"));
      assert.equal(new Set(calls).size, 4);
      assert.equal(
        (a.outcomes["action.suspended"] ?? 0) +
          (b.outcomes["action.suspended"] ?? 0),
        4,
      );
      const rows = await stack.sql`select order_id, count(*)::int as n
        from public.order_events
        where order_id = any(${ids}::uuid[]) and kind = 'panel'
          and message = 'Server suspended on the panel'
        group by order_id`;
      assert.deepEqual(rows.map((r) => r.n), [1, 1, 1, 1]);
    });

    await t.step(
      "a sweep over 1,000 servers makes at most 11 panel calls",
      async () => {
        const user = await stack.user();
        const rows = await stack.sql<{ id: string }[]>`
        insert into public.orders (user_id, plan_id, term, region, server_name, status,
          stripe_price_id, amount_cents, currency, memory_mb, disk_mb)
        select ${user.id}, p.id, 'monthly', 'us-east', 'Fleet ' || n, 'pending',
          pp.stripe_price_id, pp.amount_cents, pp.currency, p.memory_mb, p.disk_mb
        from generate_series(1, 1000) n, public.plans p
        join public.plan_prices pp on pp.plan_id = p.id and pp.term = 'monthly'
        where p.id = 'mc-java-2gb'
        returning id`;
        const orderIds = rows.map((r) => r.id);
        const serverIds = await seedServers(stack, {
          external_ids: orderIds,
          node: 1,
          status: null,
        });
        // Installing orders whose servers have finished installing.
        for (const status of ["paid", "provisioning", "installing"]) {
          await stack
            .sql`update public.orders set status = ${status}::public.order_status
          where id = any(${orderIds}::uuid[])`;
        }
        await stack
          .sql`update public.orders o set pterodactyl_server_id = s.server_id,
          panel_state = 'installing'
        from unnest(${orderIds}::uuid[], ${serverIds}::int[]) as s(order_id, server_id)
        where o.id = s.order_id`;
        stack.panel.resetCalls();
        const summary = await one.sweep();
        const calls = panelCalls(stack);
        assert.ok(calls.length <= 11, `${calls.length} panel calls`);
        assert.ok(
          calls.every((call) => call === "GET /api/application/servers"),
          calls.join("\n"),
        );
        assert.equal(summary.panel_calls, calls.length);
        assert.equal(summary.outcomes["install.active"], 1000);
        const [{ n }] = await stack
          .sql`select count(*)::int as n from public.orders
        where id = any(${orderIds}::uuid[]) and status = 'active'`;
        assert.equal(n, 1000);
      },
    );
  } finally {
    await one.close();
    await two.close();
    await stack.close();
  }
});

Deno.test("a panel too large for one sweep is compared over several, within the rate limit", async (t) => {
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const s = sweeper(stack);
  try {
    // 4,500 servers: 46 pages of 100, more than one sweep's share of 240 calls a minute.
    await seedServers(stack, { count: 4_500, node: 2 });
    const { orderId } = await purchase(stack, {
      plan_id: "mc-java-2gb",
      region: "us-east",
    });
    const { pterodactyl_server_id } = await order(stack, orderId);
    await finishInstalls(stack, { server_id: pterodactyl_server_id });
    // What the panel allows in one sweep interval (240/min × the default 15 s).
    const budget = (240 * 15) / 60;
    const pagesRead: number[] = [];
    const sweepCalls: number[] = [];

    await t.step(
      "an install off this sweep's pages is followed in the same sweep",
      async () => {
        stack.panel.resetCalls();
        const summary = await s.sweep();
        assert.equal(summary.outcomes["install.active"], 1);
        assert.equal((await order(stack, orderId)).status, "active");
        sweepCalls.push(summary.panel_calls);
        pagesRead.push(...listedPages(stack));
      },
    );

    await t.step(
      "every page is read once over three sweeps, each under the budget",
      async () => {
        for (let i = 0; i < 2; i++) {
          stack.panel.resetCalls();
          sweepCalls.push((await s.sweep()).panel_calls);
          pagesRead.push(...listedPages(stack));
        }
        assert.ok(sweepCalls.every((n) => n <= budget), String(sweepCalls));
        assert.deepEqual(
          pagesRead,
          Array.from({ length: 46 }, (_, i) => i + 1),
        );
        assert.equal(
          Math.max(...sweepCalls),
          LIST_PAGES_PER_SWEEP + 1,
          "twenty pages and one installing order asked for, at most",
        );
        // The fourth sweep starts over at the first page.
        stack.panel.resetCalls();
        await s.sweep();
        assert.equal(listedPages(stack)[0], 1);
      },
    );
  } finally {
    await s.close();
    await stack.close();
  }
});

/** The pages of the server list read since the last reset. */
function listedPages(stack: TestStack): number[] {
  return stack.panel.calls()
    .filter((c) => c.method === "GET" && c.path === "/api/application/servers")
    .map((c) => Number(new URLSearchParams(c.query).get("page")));
}
