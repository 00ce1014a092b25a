import assert from "node:assert/strict";
import { serverPayload } from "../local/panel-sandbox/testing.ts";
import type { PanelClient } from "../supabase/functions/_shared/panel/client.ts";
import { STALE_CLAIM_MS } from "../supabase/functions/_shared/panel/provision.ts";
import { insertOrder } from "./_fixtures.ts";
import { provisioner } from "./_provision.ts";
import { order, provisionAsService, serversFor } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

const SERVERS = "/api/application/servers";

/** A paid order of its own customer, ready to provision. */
async function paidOrder(
  stack: TestStack,
  fields: Parameters<typeof insertOrder>[2] = {},
): Promise<string> {
  const user = await stack.user();
  return await insertOrder(stack.sql, user.id, { status: "paid", ...fields });
}

/** Panel calls creating a server, with their statuses. */
function creates(stack: TestStack) {
  return stack.panel.calls().filter((c) =>
    c.method === "POST" && c.path === SERVERS
  );
}

async function alertsOn(stack: TestStack, orderId: string): Promise<string[]> {
  const rows = await stack.sql`select message from public.order_events
    where order_id = ${orderId} and kind = 'alert' order by id`;
  return rows.map((r) => r.message);
}

Deno.test("servers-provision recovers, reconciles and retries", async (t) => {
  const stack = await startTestStack();
  try {
    await t.step(
      "a fresh provisioning claim is left to its worker; one older than five minutes is taken again",
      async () => {
        const orderId = await paidOrder(stack);
        await stack.sql`update public.orders set status = 'provisioning'
          where id = ${orderId}`;
        const [{ claimed_at }] = await stack
          .sql`select updated_at as claimed_at from public.orders where id = ${orderId}`;

        const soon = provisioner(stack, {
          now: () => new Date(claimed_at.getTime() + STALE_CLAIM_MS - 1000),
        });
        const late = provisioner(stack, {
          now: () => new Date(claimed_at.getTime() + STALE_CLAIM_MS + 1000),
        });
        try {
          stack.panel.resetCalls();
          const left = await soon.provision(orderId);
          assert.equal(left.status, "provisioning");
          assert.equal(left.attempt, 0);
          assert.deepEqual(stack.panel.calls(), []);

          const taken = await late.provision(orderId);
          assert.equal(taken.status, "installing");
          assert.equal(taken.attempt, 1);
          const servers = serversFor(stack, orderId);
          assert.equal(servers.length, 1);
          assert.equal(taken.server_id, servers[0].id);
        } finally {
          await soon.close();
          await late.close();
        }
      },
    );

    await t.step(
      "a later attempt adopts the server an earlier attempt made, without a duplicate",
      async () => {
        const orderId = await paidOrder(stack);
        // Attempt 1: the create goes through but its answer is lost, and the check
        // for it fails too, so the attempt ends in error with a server on the panel.
        stack.panel.addFault({
          method: "POST",
          path: SERVERS,
          loseResponse: true,
          times: 1,
        });
        stack.panel.addFault({
          method: "GET",
          path: `${SERVERS}/external/${orderId}`,
          status: 404,
          times: 1,
        });
        const worker = provisioner(stack);
        try {
          const first = await worker.provision(orderId);
          assert.equal(first.status, "error");
          assert.equal(first.attempt, 1);
          const made = serversFor(stack, orderId);
          assert.equal(made.length, 1, "the lost create made a server");

          stack.panel.resetCalls();
          const second = await worker.provision(orderId);
          assert.equal(second.status, "installing");
          assert.equal(second.attempt, 2);
          assert.equal(second.server_id, made[0].id);
          assert.equal(second.error, null);
          assert.deepEqual(serversFor(stack, orderId).map((s) => s.id), [
            made[0].id,
          ]);
          assert.equal(creates(stack).length, 0);
          const row = await order(stack, orderId);
          assert.equal(row.pterodactyl_server_identifier, made[0].identifier);
          const [node] = await stack
            .sql`select panel_node_id from public.ptero_nodes
            where id = ${row.node_id}`;
          assert.equal(node.panel_node_id, made[0].node_id);
        } finally {
          await worker.close();
        }
      },
    );

    await t.step(
      "an allocation taken between listing and creating: the next free one is used",
      async () => {
        const orderId = await paidOrder(stack);
        let competitor = 0;
        // Another admin takes the allocation the shop picked, just before its create.
        const worker = provisioner(stack, {
          panel: (client): PanelClient => ({
            ...client,
            async createServer(server) {
              if (competitor === 0) {
                competitor = server.allocation.default;
                const res = await fetch(`${stack.panel.url}${SERVERS}`, {
                  method: "POST",
                  headers: {
                    Authorization: `Bearer ${stack.keys.panelApiKey}`,
                    Accept: "application/json",
                    "Content-Type": "application/json",
                  },
                  body: JSON.stringify(serverPayload({
                    name: "Competitor",
                    limits: {
                      memory: 512,
                      swap: 0,
                      disk: 1000,
                      io: 500,
                      cpu: 50,
                    },
                    feature_limits: { databases: 0, backups: 0 },
                    allocation: { default: competitor },
                  })),
                });
                const body = await res.json();
                assert.equal(res.status, 201, JSON.stringify(body));
              }
              return await client.createServer(server);
            },
          }),
        });
        try {
          stack.panel.resetCalls();
          const result = await worker.provision(orderId);
          assert.equal(result.status, "installing", String(result.error));
          assert.ok(competitor > 0, "the competing create ran");
          assert.deepEqual(creates(stack).map((c) => c.status), [
            201, // the competitor
            422, // our create on the allocation just taken
            201, // our create on the next one
          ]);
          const [server] = serversFor(stack, orderId);
          assert.notEqual(server.allocation_id, competitor);
        } finally {
          await worker.close();
        }
      },
    );

    await t.step(
      "a 429 with a long Retry-After schedules the next attempt no sooner than asked",
      async () => {
        const orderId = await paidOrder(stack);
        const now = new Date("2030-01-01T00:00:00Z");
        stack.panel.addFault({
          method: "POST",
          path: SERVERS,
          status: 429,
          retryAfterSeconds: 600,
          times: 1,
        });
        const worker = provisioner(stack, { now: () => now });
        try {
          const result = await worker.provision(orderId);
          assert.equal(result.status, "error");
          assert.match(String(result.error), /429/);
          // Backoff alone would say 30 s; the panel asked for 10 minutes.
          assert.equal(result.next_attempt_at, "2030-01-01T00:10:00.000Z");
          assert.deepEqual(await alertsOn(stack, orderId), [
            "Provisioning failed",
          ]);
        } finally {
          await worker.close();
        }
      },
    );

    await t.step(
      "a 429 with a short Retry-After is waited out before the create is repeated",
      async () => {
        const orderId = await paidOrder(stack);
        stack.panel.resetCalls();
        stack.panel.addFault({
          method: "POST",
          path: SERVERS,
          status: 429,
          retryAfterSeconds: 1,
          times: 1,
        });
        const worker = provisioner(stack, { client: { maxRetryWaitMs: 2000 } });
        try {
          const result = await worker.provision(orderId);
          assert.equal(result.status, "installing");
          const [throttled, created] = creates(stack);
          assert.deepEqual([throttled.status, created.status], [429, 201]);
          // A lower bound only: the client must not come back before Retry-After.
          assert.ok(
            created.at - throttled.at >= 1000,
            `retried after ${created.at - throttled.at} ms`,
          );
        } finally {
          await worker.close();
        }
      },
    );

    await t.step(
      "each failed attempt waits longer: 30 s, 60 s, 120 s, with a timeline row and an alert",
      async () => {
        const orderId = await paidOrder(stack);
        const now = new Date("2030-01-01T00:00:00Z");
        stack.panel.addFault({
          method: "POST",
          path: SERVERS,
          status: 500,
          times: 3,
        });
        const worker = provisioner(stack, { now: () => now });
        try {
          const delays: number[] = [];
          for (let attempt = 1; attempt <= 3; attempt++) {
            const result = await worker.provision(orderId);
            assert.equal(result.status, "error");
            assert.equal(result.attempt, attempt);
            assert.ok(result.next_attempt_at);
            delays.push(
              (new Date(result.next_attempt_at).getTime() - now.getTime()) /
                1000,
            );
          }
          assert.deepEqual(delays, [30, 60, 120]);
          const failed = await stack.sql`select detail from public.order_events
            where order_id = ${orderId} and kind = 'provision_attempt'
              and message like '%failed' order by id`;
          assert.deepEqual(
            failed.map((f) => [f.detail.attempt, f.detail.panel_status]),
            [[1, 500], [2, 500], [3, 500]],
          );
          assert.equal((await alertsOn(stack, orderId)).length, 3);
          const row = await order(stack, orderId);
          assert.match(
            row.error_message,
            /Creating the server on the panel failed/,
          );
          // The booked room stays the customer's: the retry uses it.
          assert.notEqual(row.node_id, null);
        } finally {
          await worker.close();
        }
      },
    );
    await t.step(
      "a stored egg the panel refuses is read afresh and the create retried once",
      async () => {
        const orderId = await paidOrder(stack);
        const [{ nest_id, egg_id }] = await stack.sql`
          select ptero_nest_id as nest_id, ptero_egg_id as egg_id
          from public.plans where id = 'mc-java-2gb'`;
        // The stored copy predates variables the panel's egg now requires.
        await stack.sql`
          insert into public.panel_eggs (nest_id, egg_id, name, docker_image, startup, variables)
          select ${nest_id}, ${egg_id}, 'stale', e.docker_image, e.startup, '[]'::jsonb
          from (values ('ghcr.io/pterodactyl/yolks:java_21', 'java -jar server.jar'))
            as e(docker_image, startup)
          on conflict (nest_id, egg_id) do update set variables = '[]'::jsonb`;
        const worker = provisioner(stack);
        try {
          stack.panel.resetCalls();
          const result = await worker.provision(orderId);
          assert.equal(result.status, "installing", String(result.error));
          assert.deepEqual(creates(stack).map((c) => c.status), [422, 201]);
          const eggPath = `/api/application/nests/${nest_id}/eggs/${egg_id}`;
          assert.equal(
            stack.panel.calls().filter((c) => c.path === eggPath).length,
            1,
          );
          const [stored] = await stack
            .sql`select variables from public.panel_eggs
            where nest_id = ${nest_id} and egg_id = ${egg_id}`;
          assert.ok(stored.variables.length > 0, "the fresh egg is stored");
          assert.equal(serversFor(stack, orderId).length, 1);
        } finally {
          await worker.close();
        }
      },
    );

    await t.step(
      "two provision calls at once cannot both claim an order: one attempt, one create",
      async () => {
        const orderId = await paidOrder(stack);
        // Hold the order's row while both calls arrive, so both reach the claim.
        let locked!: () => void;
        const isLocked = new Promise<void>((resolve) => locked = resolve);
        let release!: () => void;
        const released = new Promise<void>((resolve) => release = resolve);
        const holding = stack.sql.begin(async (tx) => {
          await tx`select id from public.orders where id = ${orderId} for update`;
          locked();
          await released;
        });
        await isLocked;
        stack.panel.resetCalls();
        const calls = [
          provisionAsService(stack, orderId),
          provisionAsService(stack, orderId),
        ];
        try {
          for (let waiting = 0; waiting < 2;) {
            await new Promise((resolve) => setTimeout(resolve, 10));
            [{ waiting }] = await stack.sql`select count(*)::int as waiting
              from pg_stat_activity where application_name = 'servers-provision'
                and wait_event_type = 'Lock'`;
          }
        } finally {
          release();
          await holding;
        }
        const answers = await Promise.all(calls);
        for (const answer of answers) {
          assert.equal(answer.status, 200, JSON.stringify(answer.body));
        }
        const attempts = await stack.sql`select message from public.order_events
          where order_id = ${orderId} and kind = 'provision_attempt'
            and message like '%started'`;
        assert.deepEqual(attempts.map((a) => a.message), ["Attempt 1 started"]);
        assert.equal((await order(stack, orderId)).attempt_count, 1);
        assert.equal(creates(stack).length, 1);
        assert.equal(serversFor(stack, orderId).length, 1);
      },
    );
  } finally {
    await stack.close();
  }
});

Deno.test("two purchases racing for one node's last slot: one server, every time", async () => {
  const stack = await startTestStack();
  const worker = provisioner(stack);
  try {
    // eu-west keeps only eu-west-2 (8 GB), half of it already sold: one 4 GB slot left.
    await stack
      .sql`update public.ptero_nodes set enabled = false where name = 'eu-west-1'`;
    const [node] = await stack
      .sql`select id::int as id, panel_node_id, memory_mb from public.ptero_nodes
        where name = 'eu-west-2'`;
    await insertOrder(stack.sql, (await stack.user()).id, {
      status: "active",
      planId: "mc-java-4gb",
      region: "eu-west",
      nodeId: node.id,
    });
    const orders = [
      await paidOrder(stack, { planId: "mc-java-4gb", region: "eu-west" }),
      await paidOrder(stack, { planId: "mc-java-4gb", region: "eu-west" }),
    ];
    stack.panel.resetCalls();

    // Hold the region's node rows: both workers must reach placement and wait there
    // (on the placement lock, or without it on the node row their booking references),
    // so they are truly concurrent when the hold is released.
    let release = () => {};
    const held = new Promise<void>((resolve) => release = resolve);
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => locked = resolve);
    const holder = stack.sql.begin(async (tx) => {
      await tx`select id from public.ptero_nodes where region = 'eu-west' for update`;
      locked();
      await held;
    });
    await lockTaken;
    const results = Promise.all(orders.map((id) => worker.provision(id)));
    for (let waited = 0;; waited += 10) {
      const [{ waiting }] = await stack.sql`select count(*)::int as waiting
        from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`;
      if (waiting >= 2) break;
      assert.ok(waited < 20_000, "both workers reach node placement");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    release();
    await holder;
    const summaries = await results;

    assert.deepEqual(summaries.map((s) => s.status).sort(), [
      "error",
      "installing",
    ]);
    const loser = summaries.find((s) => s.status === "error");
    assert.match(
      String(loser?.error),
      /Choosing a node failed: no enabled node in region "eu-west"/,
    );
    assert.equal(
      creates(stack).length,
      1,
      "the panel is asked for one server only",
    );
    const [{ booked }] = await stack.sql`select sum(memory_mb)::int as booked
      from public.orders where node_id = ${node.id} and status <> 'expired'`;
    assert.equal(booked, node.memory_mb);
  } finally {
    await worker.close();
    await stack.close();
  }
});
