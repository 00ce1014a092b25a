import assert from "node:assert/strict";
import { asRole, invoke } from "./_fixtures.ts";
import { order, purchase, subscriptionControl } from "./_purchase.ts";
import { startTestStack } from "./_stack.ts";

/** Words that belong to operators: panel paths, node names, instructions to staff. */
const OPERATOR_WORDS = /panel|node|\/api\/|add a|eu-west-\d|POST|500/i;

Deno.test("customers see customer words, operators see the detail", async (t) => {
  const stack = await startTestStack();
  try {
    stack.panel.addFault({
      method: "POST",
      path: "/api/application/servers",
      status: 500,
      times: 1,
    });
    const checkout = await purchase(stack, { server_name: "Broken build" });
    const failed = await order(stack, checkout.orderId);
    assert.equal(failed.status, "error");
    assert.match(failed.error_message, /panel/);
    const owner = { sub: checkout.user.id };

    await t.step("the owner cannot read error_message", async () => {
      await assert.rejects(
        asRole(
          stack.sql,
          "authenticated",
          owner,
          (tx) =>
            tx`select error_message from public.orders where id = ${checkout.orderId}`,
        ),
        /permission denied/,
      );
      await assert.rejects(
        asRole(
          stack.sql,
          "authenticated",
          owner,
          (tx) =>
            tx`select * from public.orders where id = ${checkout.orderId}`,
        ),
        /permission denied/,
      );
    });

    await t.step(
      "the owner reads the status and a customer message in customer words",
      async () => {
        const rows = await asRole(
          stack.sql,
          "authenticated",
          owner,
          (tx) =>
            tx`select id, status, customer_message, server_name from public.orders
              where id = ${checkout.orderId}`,
        );
        assert.equal(rows.length, 1);
        assert.equal(rows[0].status, "error");
        assert.ok(rows[0].customer_message, "a customer message is set");
        assert.doesNotMatch(rows[0].customer_message, OPERATOR_WORDS);
      },
    );

    await t.step(
      "sync-server-status answers the owner in customer words, never the operator's error message",
      async () => {
        const res = await invoke(checkout.user.client, "sync-server-status");
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const orders = res.body.orders as {
          order_id: string;
          message: string;
        }[];
        const mine = orders.find((o) => o.order_id === checkout.orderId);
        assert.ok(mine, "the order is listed");
        assert.ok(mine.message, "a customer message is given");
        assert.doesNotMatch(mine.message, OPERATOR_WORDS);
        const text = JSON.stringify(res.body);
        assert.ok(!text.includes(failed.error_message), text);
        assert.doesNotMatch(text, /Creating the server on the panel|\/api\//);
      },
    );

    await t.step(
      "the owner's timeline has only customer rows, in customer words",
      async () => {
        await assert.rejects(
          asRole(
            stack.sql,
            "authenticated",
            owner,
            (tx) =>
              tx`select message, detail from public.order_events
              where order_id = ${checkout.orderId}`,
          ),
          /permission denied/,
        );
        const rows = await asRole(
          stack.sql,
          "authenticated",
          owner,
          (tx) =>
            tx`select kind, to_status, customer_message from public.order_events
              where order_id = ${checkout.orderId} order by id`,
        );
        assert.deepEqual(
          rows.filter((r) => r.kind === "status").map((r) => r.to_status),
          ["pending", "paid", "provisioning", "error"],
        );
        assert.ok(
          rows.every((r) => ["status", "checkout", "payment"].includes(r.kind)),
        );
        assert.equal(rows.filter((r) => r.kind === "payment").length, 1);
        for (const row of rows) {
          assert.ok(row.customer_message, JSON.stringify(row));
          assert.doesNotMatch(row.customer_message, OPERATOR_WORDS);
        }
      },
    );

    await t.step(
      "the owner sees each payment (received, failed, refunded) with amount and currency",
      async () => {
        const paid = await purchase(stack, { server_name: "Paying" });
        const row = await order(stack, paid.orderId);
        const money = `${
          (row.amount_cents / 100).toFixed(2)
        } ${row.currency.toUpperCase()}`;
        const sub = row.stripe_subscription_id;
        await subscriptionControl(stack, sub, "renew", { outcome: "failed" });
        await subscriptionControl(stack, sub, "recover");
        await subscriptionControl(stack, sub, "refund");
        const seen = await asRole(
          stack.sql,
          "authenticated",
          { sub: paid.user.id },
          (tx) =>
            tx`select customer_message from public.order_events
              where order_id = ${paid.orderId} and kind = 'payment' order by id`,
        );
        const words = seen.map((r) => r.customer_message);
        const expected = [
          new RegExp(
            `^Payment of ${money} received; paid until \\d{4}-\\d\\d-\\d\\d$`,
          ),
          new RegExp(`^Payment of ${money} failed; we will retry\\. `),
          new RegExp(`^Payment of ${money} received; paid until `),
          new RegExp(`^Refund of ${money} issued$`),
        ];
        for (const pattern of expected) {
          assert.ok(
            words.some((w) => pattern.test(w)),
            `${pattern} in ${words}`,
          );
        }
        for (const word of words) assert.doesNotMatch(word, OPERATOR_WORDS);
      },
    );

    await t.step("another customer sees nothing of it", async () => {
      const other = await stack.user();
      const seen = await asRole(
        stack.sql,
        "authenticated",
        { sub: other.id },
        async (tx) => [
          ...await tx`select id from public.order_events
            where order_id = ${checkout.orderId}`,
          ...await tx`select id from public.orders where id = ${checkout.orderId}`,
        ],
      );
      assert.equal(seen.length, 0);
    });

    await t.step(
      "the service role and order_chain keep the operator detail",
      async () => {
        const chain = await asRole(
          stack.sql,
          "service_role",
          {},
          (tx) =>
            tx`select kind, message, detail from public.order_chain
              where order_id = ${checkout.orderId} order by at`,
        );
        assert.ok(chain.some((r) => r.kind === "provision_attempt"));
        assert.ok(chain.some((r) => r.kind === "alert"));
        assert.ok(chain.some((r) => OPERATOR_WORDS.test(r.message)));
        const [row] = await asRole(
          stack.sql,
          "service_role",
          {},
          (tx) =>
            tx`select error_message from public.orders where id = ${checkout.orderId}`,
        );
        assert.match(row.error_message, /Creating the server on the panel/);
      },
    );
  } finally {
    await stack.close();
  }
});
