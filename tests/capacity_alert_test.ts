/**
 * The sweep alerts once when a region can take fewer than CAPACITY_ALERT_PLANS of its
 * largest plan, and again only after the region recovered and dropped once more.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startTestStack } from "./_stack.ts";
import { sweeper } from "./_sweep.ts";
import { startAlertReceiver } from "./_purchase.ts";

Deno.test("the sweep alerts once when a region nearly runs out of room", async () => {
  const stack = await startTestStack();
  const receiver = startAlertReceiver();
  const s = sweeper(stack, { alertUrl: receiver.url });
  try {
    const [largest] = await stack.sql<{ id: string; memory_mb: number }[]>`
      select id, memory_mb from public.plans where active
      order by memory_mb desc, disk_mb desc, id limit 1`;
    const [{ region }] = await stack.sql<{ region: string }[]>`
      select region from public.ptero_nodes where enabled order by region limit 1`;
    const nodes = await stack.sql<{ id: number; memory_mb: number }[]>`
      select id, memory_mb from public.ptero_nodes where region = ${region} and enabled`;
    const about = () =>
      receiver.alerts.filter((a) =>
        a.content.includes(`Region ${region} is nearly full`)
      );
    const shrink = async () => {
      // Room for exactly one of the largest plan in the whole region (default alert: below 2).
      await stack
        .sql`update public.ptero_nodes set memory_mb = 1 where region = ${region} and enabled`;
      await stack
        .sql`update public.ptero_nodes set memory_mb = ${largest.memory_mb}
        where id = ${nodes[0].id}`;
    };
    const restore = async () => {
      for (const n of nodes) {
        await stack
          .sql`update public.ptero_nodes set memory_mb = ${n.memory_mb} where id = ${n.id}`;
      }
    };

    assert.equal((await s.sweep()).outcomes["capacity.alert"], undefined);
    await shrink();
    assert.equal((await s.sweep()).outcomes["capacity.alert"], 1);
    assert.equal((await s.sweep()).outcomes["capacity.alert"], undefined);
    assert.equal(about().length, 1);
    assert.match(
      about()[0].content,
      new RegExp(`Room for 1 more ${largest.id}`),
    );
    await restore();
    await s.sweep();
    await shrink();
    assert.equal((await s.sweep()).outcomes["capacity.alert"], 1);
    assert.equal(about().length, 2);
    await restore();
  } finally {
    await s.close();
    await receiver.close();
    await stack.close();
  }
});
