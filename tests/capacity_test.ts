import assert from "node:assert/strict";
import { errorCode, invoke } from "./_fixtures.ts";
import { completeCheckout, order, serversFor } from "./_purchase.ts";
import { startTestStack } from "./_stack.ts";

const BODY = {
  plan_id: "mc-java-2gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Slot",
};

Deno.test("capacity is reserved at checkout", async (t) => {
  const stack = await startTestStack();
  try {
    // eu-west keeps only its 8 GB node: room for four 2 GB servers.
    await stack
      .sql`update public.ptero_nodes set enabled = false where name = 'eu-west-1'`;

    const buyers = await Promise.all(
      Array.from({ length: 6 }, () => stack.user()),
    );
    let opened: { orderId: string; sessionId: string }[] = [];

    await t.step(
      "six concurrent checkouts for four slots: four checkouts and two 409 region_sold_out",
      async () => {
        const results = await Promise.all(
          buyers.map((buyer) =>
            invoke(buyer.client, "create-checkout-session", BODY)
          ),
        );
        assert.deepEqual(
          results.map((r) => r.status).sort(),
          [200, 200, 200, 200, 409, 409],
          JSON.stringify(results.map((r) => r.body)),
        );
        for (const refused of results.filter((r) => r.status === 409)) {
          assert.equal(errorCode(refused.body), "region_sold_out");
        }
        opened = results.filter((r) => r.status === 200).map((r) => ({
          orderId: String(r.body.order_id),
          sessionId: String(r.body.session_id),
        }));
        const [{ n }] = await stack.sql`select count(*)::int as n
          from public.orders where status = 'pending'`;
        assert.equal(n, 4);
      },
    );

    await t.step("all four payments reach installing", async () => {
      await Promise.all(
        opened.map((c) => completeCheckout(stack, c.sessionId)),
      );
      await stack.idle();
      for (const c of opened) {
        const row = await order(stack, c.orderId);
        assert.equal(row.status, "installing", row.error_message);
        assert.equal(serversFor(stack, c.orderId).length, 1);
      }
    });

    await t.step(
      "an expired checkout gives its room back",
      async () => {
        // One installed server is removed by an operator (its room comes back), then
        // a checkout opens and expires: its room is free again for the next buyer.
        const [first] = opened;
        await stack
          .sql`update public.orders set status = 'canceled', node_id = null
          where id = ${first.orderId}`;
        const [late, later] = buyers.slice(4);
        const res = await invoke(late.client, "create-checkout-session", BODY);
        assert.equal(res.status, 200);
        const full = await invoke(
          later.client,
          "create-checkout-session",
          BODY,
        );
        assert.equal(full.status, 409);
        await completeCheckout(stack, String(res.body.session_id), "expired");
        await stack.idle();
        assert.equal(
          (await order(stack, String(res.body.order_id))).status,
          "expired",
        );
        const now = await invoke(later.client, "create-checkout-session", BODY);
        assert.equal(now.status, 200, JSON.stringify(now.body));
      },
    );
  } finally {
    await stack.close();
  }
});
