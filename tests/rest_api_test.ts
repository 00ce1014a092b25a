import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import {
  AVAILABILITY_COLUMNS,
  CUSTOMER_ORDER_COLUMNS,
  PLAN_COLUMNS,
} from "../supabase/functions/_shared/contract.ts";
import { footprint, insertOrder } from "./_fixtures.ts";
import { startTestStack } from "./_stack.ts";

// The local Data API (/rest/v1) as a storefront meets it through supabase-js: the
// caller's role and claims, then grants and RLS decide, as PostgREST on hosted Supabase.

Deno.test("the local Data API reads as the caller's role, with RLS", async (t) => {
  const stack = await startTestStack();
  const rest = `${stack.gateway.url}/rest/v1`;
  const publishable = createClient(
    stack.gateway.url,
    stack.keys.publishableKey,
    {
      auth: { persistSession: false, autoRefreshToken: false },
    },
  );
  try {
    await t.step(
      "anyone reads the catalogue and availability, with a publishable key",
      async () => {
        const plans = await publishable.from("plans").select(PLAN_COLUMNS)
          .order("id");
        assert.equal(plans.error, null);
        const [{ n }] = await stack.sql<{ n: number }[]>`
        select count(*)::int as n from public.plans where active`;
        assert.equal(plans.data?.length, n);

        await stack
          .sql`update public.ptero_nodes set enabled = false where region = 'us-east'`;
        try {
          const { data, error } = await publishable.from(
            "plan_region_availability",
          )
            .select(AVAILABILITY_COLUMNS).eq("plan_id", "mc-java-2gb").order(
              "region",
            );
          assert.equal(error, null);
          assert.deepEqual(data, [
            { plan_id: "mc-java-2gb", region: "eu-west", available: true },
            { plan_id: "mc-java-2gb", region: "us-east", available: false },
          ]);
        } finally {
          await stack
            .sql`update public.ptero_nodes set enabled = true where region = 'us-east'`;
        }
      },
    );

    await t.step(
      "anon reads no orders and no nodes (401), a customer only their own",
      async () => {
        const a = await stack.user();
        const b = await stack.user();
        const orderA = await insertOrder(stack.sql, a.id, {
          serverName: "A's",
        });
        await insertOrder(stack.sql, b.id, { serverName: "B's" });

        for (const table of ["orders", "ptero_nodes", "node_capacity"]) {
          const anon = await stack.anon.from(table).select("*");
          assert.equal(anon.status, 401, table);
          assert.equal(anon.error?.code, "42501", table);
        }
        const own = await a.client.from("orders")
          .select(CUSTOMER_ORDER_COLUMNS.join(","));
        assert.equal(own.error, null);
        assert.deepEqual(
          (own.data as unknown as { id: string }[]).map((row) => row.id),
          [orderA],
        );
        const single = await a.client.from("orders").select("id,server_name")
          .eq("id", orderA).single();
        assert.deepEqual(single.data, { id: orderA, server_name: "A's" });
        const theirs = await b.client.from("orders").select("id").eq(
          "id",
          orderA,
        );
        assert.deepEqual(theirs.data, []);
      },
    );

    await t.step("a customer is refused operator columns (403)", async () => {
      const a = await stack.user();
      const res = await a.client.from("orders").select("id,error_message");
      assert.equal(res.status, 403);
      assert.equal(res.error?.code, "42501");
    });

    await t.step(
      "bad requests get PostgREST's errors, never a 5xx, and change nothing",
      async () => {
        const before = await footprint(stack);
        const key = { apikey: stack.keys.publishableKey };
        const cases: [string, RequestInit, number][] = [
          [`${rest}/plans`, {}, 401],
          [
            `${rest}/plans`,
            { headers: { apikey: "sb_publishable_wrong" } },
            401,
          ],
          [`${rest}/no_such_table`, { headers: key }, 404],
          [`${rest}/plans?select=id,plan_prices(term)`, { headers: key }, 400],
          [`${rest}/plans?id=like.mc*`, { headers: key }, 400],
          [`${rest}/plans?select=nope`, { headers: key }, 400],
          [`${rest}/plans?limit=-1`, { headers: key }, 400],
          [`${rest}/plans?memory_mb=eq.lots`, { headers: key }, 400],
          [`${rest}/Plans;drop`, { headers: key }, 400],
          [`${rest}/plans`, {
            method: "POST",
            headers: { ...key, "Content-Type": "application/json" },
            body: "{}",
          }, 405],
          [`${rest}/plans`, {
            headers: { ...key, Authorization: "Bearer not.a.jwt" },
          }, 401],
        ];
        for (const [url, init, status] of cases) {
          const res = await fetch(url, init);
          const body = await res.json();
          assert.equal(res.status, status, `${url}: ${JSON.stringify(body)}`);
          assert.equal(typeof body.code, "string");
          assert.equal(typeof body.message, "string");
        }
        assert.deepEqual(await footprint(stack), before);
      },
    );
  } finally {
    await stack.close();
  }
});
