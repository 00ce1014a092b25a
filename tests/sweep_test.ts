import assert from "node:assert/strict";
import { invoke } from "./_fixtures.ts";
import { order, purchase } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import {
  deleteByHand,
  finishInstalls,
  panelCalls,
  seedServers,
  serverOf,
  suspendByAdmin,
  sweeper,
} from "./_sweep.ts";

/** Timeline rows of one kind on an order. */
async function events(stack: TestStack, orderId: string, kind: string) {
  return await stack.sql<{ message: string; actor: string | null }[]>`
    select message, actor from public.order_events
    where order_id = ${orderId} and kind = ${kind} order by id`;
}

/** A paid order whose worker took it and died: status provisioning, attempt 1. */
async function claimedOrder(stack: TestStack) {
  const user = await stack.user();
  const account = await invoke(user.client, "create-pterodactyl-user");
  assert.equal(account.status, 200, JSON.stringify(account.body));
  const [{ id }] = await stack.sql<{ id: string }[]>`
    insert into public.orders (user_id, plan_id, term, region, server_name, status,
      stripe_price_id, amount_cents, currency, memory_mb, disk_mb)
    select ${user.id}, p.id, 'monthly', 'eu-west', 'Claimed', 'pending',
      pp.stripe_price_id, pp.amount_cents, pp.currency, p.memory_mb, p.disk_mb
    from public.plans p join public.plan_prices pp on pp.plan_id = p.id and pp.term = 'monthly'
    where p.id = 'mc-java-2gb'
    returning id`;
  await stack.sql`update public.orders set status = 'paid' where id = ${id}`;
  await stack
    .sql`update public.orders set status = 'provisioning', attempt_count = 1
    where id = ${id}`;
  return { orderId: id, panelUserId: Number(account.body.ptero_user_id) };
}

Deno.test("the sweep follows orders after payment: installs, removals, retries", async (t) => {
  const stack = await startTestStack();
  // Installs end when a step says so.
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const plan = { plan_id: "mc-java-2gb" };
  try {
    let activeId = "";

    await t.step(
      "an install that finishes makes the order active",
      async () => {
        const s = sweeper(stack);
        try {
          const { orderId } = await purchase(stack, plan);
          const before = await order(stack, orderId);
          assert.equal(before.status, "installing");
          await s.sweep();
          assert.equal((await order(stack, orderId)).status, "installing");

          await finishInstalls(stack, {
            server_id: before.pterodactyl_server_id,
          });
          const summary = await s.sweep();
          const after = await order(stack, orderId);
          assert.equal(after.status, "active");
          assert.equal(after.panel_state, "installed");
          assert.equal(summary.outcomes["install.active"], 1);
          const statuses = await stack.sql`
          select to_status, actor from public.order_events
          where order_id = ${orderId} and kind = 'status' and to_status = 'active'`;
          assert.deepEqual(statuses.map((r) => r.actor), ["sweep"]);
          activeId = orderId;
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "an install that fails is an error with its cause and an alert",
      async () => {
        const s = sweeper(stack);
        try {
          const { orderId } = await purchase(stack, plan);
          const { pterodactyl_server_id } = await order(stack, orderId);
          await finishInstalls(stack, {
            server_id: pterodactyl_server_id,
            outcome: "failure",
          });
          const summary = await s.sweep();
          const after = await order(stack, orderId);
          assert.equal(after.status, "error");
          assert.equal(after.panel_state, "install_failed");
          assert.match(after.error_message, /install_failed/);
          assert.equal(summary.outcomes["install.failed"], 1);
          assert.deepEqual(
            (await events(stack, orderId, "alert")).map((e) => e.message),
            ["Server installation failed"],
          );
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a server deleted on the panel by hand is detected, alerted once",
      async () => {
        const s = sweeper(stack);
        try {
          const { pterodactyl_server_id } = await order(stack, activeId);
          await deleteByHand(stack, pterodactyl_server_id);
          const summary = await s.sweep();
          const after = await order(stack, activeId);
          assert.equal(after.status, "error");
          assert.equal(after.error_message, "server missing on the panel");
          assert.equal(after.panel_state, "missing");
          assert.equal(summary.outcomes["server.missing"], 1);
          await s.sweep();
          assert.deepEqual(
            (await events(stack, activeId, "alert")).map((e) => e.message),
            ["Server missing on the panel"],
          );
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a failed order is retried at its next attempt until it succeeds",
      async () => {
        const s = sweeper(stack);
        try {
          stack.panel.addFault({
            method: "POST",
            path: "/api/application/servers",
            status: 500,
            times: 2,
          });
          const { orderId } = await purchase(stack, plan);
          let row = await order(stack, orderId);
          assert.equal(row.status, "error");
          assert.equal(row.attempt_count, 1);

          await s.sweep();
          assert.equal(
            (await order(stack, orderId)).attempt_count,
            1,
            "not before its time",
          );

          s.clock.passTo(row.next_attempt_at);
          await s.sweep();
          row = await order(stack, orderId);
          assert.equal(row.status, "error");
          assert.equal(row.attempt_count, 2);

          s.clock.passTo(row.next_attempt_at);
          const summary = await s.sweep();
          row = await order(stack, orderId);
          assert.equal(row.status, "installing");
          assert.equal(row.attempt_count, 3);
          assert.equal(summary.outcomes["provision.installing"], 1);
          assert.ok(serverOf(stack, orderId));
        } finally {
          stack.panel.clearFaults();
          await s.close();
        }
      },
    );

    await t.step(
      "after the last attempt the order stays failed, given up, with a final alert",
      async () => {
        const s = sweeper(stack, { maxAttempts: 3 });
        try {
          stack.panel.addFault({
            method: "POST",
            path: "/api/application/servers",
            status: 500,
          });
          const { orderId } = await purchase(stack, plan);
          for (let attempt = 2; attempt <= 3; attempt++) {
            s.clock.passTo((await order(stack, orderId)).next_attempt_at);
            await s.sweep();
            assert.equal((await order(stack, orderId)).attempt_count, attempt);
          }
          const row = await order(stack, orderId);
          assert.equal(row.status, "error");
          assert.ok(row.gave_up_at, "marked as given up");
          assert.equal(row.next_attempt_at, null);
          const alerts = (await events(stack, orderId, "alert")).map((e) =>
            e.message
          );
          assert.equal(alerts.at(-1), "Provisioning gave up");

          s.clock.advance(7 * 24 * 3600_000);
          await s.sweep();
          assert.equal((await order(stack, orderId)).attempt_count, 3);
          assert.equal(serverOf(stack, orderId), undefined);
        } finally {
          stack.panel.clearFaults();
          await s.close();
        }
      },
    );

    await t.step(
      "a worker killed after creating the server: its server is adopted, none duplicated",
      async () => {
        const s = sweeper(stack);
        try {
          const { orderId, panelUserId } = await claimedOrder(stack);
          const [serverId] = await seedServers(stack, {
            external_ids: [orderId],
            owner: panelUserId,
            node: 3,
            status: "installing",
          });
          await s.sweep();
          assert.equal(
            (await order(stack, orderId)).status,
            "provisioning",
            "a fresh claim is left to its worker",
          );

          s.clock.advance(6 * 60_000);
          stack.panel.resetCalls();
          await s.sweep();
          const row = await order(stack, orderId);
          assert.equal(row.status, "installing");
          assert.equal(row.pterodactyl_server_id, serverId);
          assert.equal(row.attempt_count, 2);
          assert.ok(
            !panelCalls(stack).includes("POST /api/application/servers"),
          );
          assert.equal(serverOf(stack, orderId).id, serverId);
        } finally {
          await s.close();
        }
      },
    );

    await t.step(
      "a worker killed before creating the server: one server in the end",
      async () => {
        const s = sweeper(stack);
        try {
          const { orderId } = await claimedOrder(stack);
          s.clock.advance(6 * 60_000);
          await s.sweep();
          await s.sweep();
          const row = await order(stack, orderId);
          assert.equal(row.status, "installing");
          assert.equal(serverOf(stack, orderId).id, row.pterodactyl_server_id);
        } finally {
          await s.close();
        }
      },
    );
  } finally {
    await stack.close();
  }
});

Deno.test("the sweep's comparison with the panel: changes by hand, shifting pages, its budget", async (t) => {
  const stack = await startTestStack();
  stack.panel.configure({ installDelayMs: 3_600_000 });
  const s = sweeper(stack);
  /** An order bought and paid, its server installed and the order active. */
  const active = async () => {
    const { orderId } = await purchase(stack, { plan_id: "mc-java-2gb" });
    const { pterodactyl_server_id: serverId } = await order(stack, orderId);
    await finishInstalls(stack, { server_id: serverId });
    await s.converge(orderId);
    await s.job("servers");
    assert.equal((await order(stack, orderId)).status, "active");
    return { orderId, serverId: serverId as number };
  };
  try {
    await t.step(
      "a suspended server unsuspended by hand is suspended again; one deleted by hand is an error with an alert",
      async () => {
        const unsuspended = await active();
        const deleted = await active();
        for (const { orderId } of [unsuspended, deleted]) {
          await suspendByAdmin(stack, s, orderId);
          assert.deepEqual(await s.converge(orderId), ["suspended"]);
        }
        // An admin unsuspends one in the panel, and deletes the other.
        const res = await fetch(
          `${stack.panel.url}/api/application/servers/${unsuspended.serverId}/unsuspend`,
          {
            method: "POST",
            headers: {
              Authorization: `Bearer ${stack.keys.panelApiKey}`,
              Accept: "application/json",
            },
          },
        );
        assert.equal(res.status, 204, await res.text());
        assert.equal(serverOf(stack, unsuspended.orderId).status, null);
        await deleteByHand(stack, deleted.serverId);

        const summary = await s.sweep();
        assert.equal(summary.outcomes["server.drift"], 1);
        assert.equal(summary.outcomes["server.missing"], 1);
        assert.equal(serverOf(stack, unsuspended.orderId).status, "suspended");
        assert.equal(
          (await order(stack, unsuspended.orderId)).status,
          "suspended",
        );
        const gone = await order(stack, deleted.orderId);
        assert.equal(gone.status, "error");
        assert.equal(gone.panel_state, "missing");
        assert.deepEqual(
          (await events(stack, deleted.orderId, "alert")).map((e) => e.message),
          ["Server missing on the panel"],
        );
      },
    );

    await t.step(
      "a server that shifted out of the listed pages is looked up by its external id, not called missing",
      async () => {
        // Our server becomes the first of the list's second page.
        const before = stack.panel.state().servers.length;
        const seeded = await seedServers(stack, {
          count: 100 - before,
          node: 1,
          status: null,
        });
        const { orderId } = await active();
        const index = stack.panel.state().servers.findIndex((server) =>
          server.external_id === orderId
        );
        assert.equal(index, 100);
        // While the second page is on its way, a server of the first is deleted: the
        // list shifts and ours is on neither page as read.
        stack.panel.addFault({
          method: "GET",
          path: "/api/application/servers",
          latencyMs: 300,
          times: 2,
        });
        stack.panel.resetCalls();
        const job = s.job("servers");
        const listed = () =>
          stack.panel.calls().filter((c) =>
            c.method === "GET" && c.path === "/api/application/servers"
          ).length;
        while (listed() < 2) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await deleteByHand(stack, seeded[0]);
        const outcomes = await job;
        assert.equal(outcomes["server.missing"], undefined);
        assert.ok(
          panelCalls(stack).includes(
            `GET /api/application/servers/external/${orderId}`,
          ),
          panelCalls(stack).join("\n"),
        );
        const row = await order(stack, orderId);
        assert.equal(row.status, "active");
        assert.equal(row.panel_state, "installed");
      },
    );

    await t.step(
      "once its budget is spent the sweep stops comparing orders with the panel",
      async () => {
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) {
          const { orderId } = await purchase(stack, { plan_id: "mc-java-2gb" });
          ids.push(orderId);
        }
        await finishInstalls(stack);
        // The budget is spent: the list is read, but no order is compared with it.
        const outcomes = await s.job("servers", () => false);
        assert.equal(outcomes["install.active"], undefined);
        const statuses = await Promise.all(
          ids.map(async (id) => (await order(stack, id)).status),
        );
        assert.deepEqual(statuses, ["installing", "installing", "installing"]);
        // The next sweep, with time left, compares them.
        assert.equal((await s.job("servers"))["install.active"], 3);
      },
    );
  } finally {
    await s.close();
    await stack.close();
  }
});
