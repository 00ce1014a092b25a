import assert from "node:assert/strict";
import { createPanelClient } from "../supabase/functions/_shared/panel/client.ts";
import {
  refreshAllocations,
  refreshEggs,
} from "../supabase/functions/_shared/panel/cache.ts";
import {
  completeCheckout,
  openCheckout,
  order,
  serversFor,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

/** Fills the panel cache the way the sweep does. */
async function warmCache(stack: TestStack): Promise<void> {
  const panel = createPanelClient({
    url: stack.panel.url,
    apiKey: stack.keys.panelApiKey,
  });
  await refreshEggs(stack.sql, panel);
  const nodes = await stack.sql<{ panel_node_id: number }[]>`
    select panel_node_id from public.ptero_nodes where enabled`;
  for (const node of nodes) {
    await refreshAllocations(stack.sql, panel, node.panel_node_id);
  }
}

/** Panel calls made by one purchase, as the panel sandbox recorded them. */
async function purchaseCalls(
  stack: TestStack,
  user?: Awaited<ReturnType<TestStack["user"]>>,
  serverName = "Survival",
): Promise<{ orderId: string; calls: string[] }> {
  const checkout = await openCheckout(
    stack,
    { server_name: serverName },
    user,
  );
  stack.panel.resetCalls();
  await completeCheckout(stack, checkout.sessionId);
  await stack.idle();
  const calls = stack.panel.calls().map((c) =>
    `${c.method} ${c.path.replace(/\/[0-9a-f-]{36}$/, "/:uuid")}`
  );
  assert.equal((await order(stack, checkout.orderId)).status, "installing");
  assert.equal(serversFor(stack, checkout.orderId).length, 1);
  return { orderId: checkout.orderId, calls };
}

Deno.test("panel calls per purchase", async (t) => {
  const stack = await startTestStack();
  try {
    await warmCache(stack);
    const buyer = await stack.user();

    await t.step("a first purchase costs at most 3 panel calls", async () => {
      const { calls } = await purchaseCalls(stack, buyer);
      assert.ok(calls.length <= 3, calls.join(", "));
      assert.deepEqual(calls, [
        "GET /api/application/users/external/:uuid",
        "POST /api/application/users",
        "POST /api/application/servers",
      ]);
    });

    await t.step(
      "a returning customer's purchase costs 1 panel call",
      async () => {
        const { calls } = await purchaseCalls(stack, buyer, "Second world");
        assert.deepEqual(calls, ["POST /api/application/servers"]);
      },
    );

    await t.step(
      "an allocation the database thinks free but the panel has taken: the next one, no duplicate",
      async () => {
        // Someone creates a server by hand in the panel on the allocation the shop
        // would pick next.
        const firsts = await stack.sql<{ id: number }[]>`
          select min(a.id)::int as id from public.panel_allocations a
          join public.ptero_nodes n on n.panel_node_id = a.panel_node_id
          where n.region = 'eu-west' and not a.assigned and a.order_id is null
          group by a.panel_node_id`;
        const panel = createPanelClient({
          url: stack.panel.url,
          apiKey: stack.keys.panelApiKey,
        });
        const egg = await panel.getEgg(1, 1);
        assert.ok(egg);
        const owner = await panel.createUser({
          email: "by-hand@example.com",
          username: "by-hand",
          first_name: "By",
          last_name: "Hand",
          external_id: "by-hand",
        });
        for (const [i, first] of firsts.entries()) {
          await panel.createServer({
            name: `made by hand ${i}`,
            user: owner.id,
            egg: egg.id,
            docker_image: egg.dockerImage,
            startup: egg.startup,
            environment: Object.fromEntries(
              egg.variables.map((v) => [v.env_variable, v.default_value ?? ""]),
            ),
            limits: { memory: 512, swap: 0, disk: 1024, io: 500, cpu: 50 },
            feature_limits: { databases: 0, backups: 0, allocations: 1 },
            allocation: { default: first.id },
            external_id: `by-hand-${i}`,
          });
        }
        const { orderId, calls } = await purchaseCalls(
          stack,
          buyer,
          "Third world",
        );
        assert.deepEqual(calls, [
          "POST /api/application/servers",
          "POST /api/application/servers",
        ]);
        const used = await stack.sql`select id from public.panel_allocations
          where id in ${stack.sql(firsts.map((f) => f.id))}
            and assigned and order_id is null`;
        assert.equal(used.length, 1);
        assert.equal(serversFor(stack, orderId).length, 1);
      },
    );

    await t.step(
      "an empty cache falls back to the panel (egg and allocations), then fills it",
      async () => {
        await stack.sql`delete from public.panel_eggs`;
        await stack.sql`delete from public.panel_allocations`;
        const { calls } = await purchaseCalls(stack, buyer, "Fourth world");
        assert.deepEqual(
          calls.map((c) =>
            c.replace(/\?.*$/, "").replace(/nodes\/\d+/, "nodes/:node")
          ),
          [
            "GET /api/application/nests/1/eggs/1",
            "GET /api/application/nodes/:node/allocations",
            "POST /api/application/servers",
          ],
        );
        const [{ n }] = await stack.sql`select count(*)::int as n
          from public.panel_allocations`;
        assert.ok(n > 0);
        const { calls: again } = await purchaseCalls(
          stack,
          buyer,
          "Fifth world",
        );
        assert.deepEqual(again, ["POST /api/application/servers"]);
      },
    );
  } finally {
    await stack.close();
  }
});
