/**
 * What must hold after any fault once the sweep has run, checked against the database,
 * the panel sandbox and the Stripe sandbox: every paid order is installing/active, a
 * visible error with a next attempt and an alert, or at a lifecycle end (suspended,
 * cancelled) with its server suspended; exactly one panel server per order, recorded
 * on it; every Stripe event recorded once and applied once; no node over its room;
 * every order's timeline of status rows adds up to its status.
 *
 * @module
 */
import assert from "node:assert/strict";
import { callPanel } from "../local/panel-sandbox/testing.ts";
import { isHandledEventType } from "../supabase/functions/_shared/manifest.ts";
import { sandboxEvents } from "./_purchase.ts";
import type { TestStack } from "./_stack.ts";

/** What the invariants counted, for a suite to compare with what it did. */
export interface InvariantCounts {
  /** Orders by status. */
  orders: Record<string, number>;
  /** Servers on the panel (each one an order's). */
  servers: number;
  /** Handled Stripe events the sandbox made (each in stripe_events_log once). */
  events: number;
  /** Of those, recorded by the sweep from Stripe's list (never delivered). */
  polled: number;
  /** Successful webhook deliveries beyond the first of an event (duplicates). */
  duplicateDeliveries: number;
  /** Status rows on the orders' timelines. */
  statusRows: number;
}

interface OrderFacts {
  id: string;
  status: string;
  paid: boolean;
  next_attempt_at: Date | null;
  alerted: boolean;
  pterodactyl_server_id: number | null;
  panel_state: string | null;
}

/** Paid orders end running, as a retried and alerted error, or at a lifecycle end. */
function checkOrders(orders: OrderFacts[]): string[] {
  const problems: string[] = [];
  for (const o of orders.filter((o) => o.paid)) {
    if (["installing", "active", "suspended", "canceled"].includes(o.status)) {
      continue;
    }
    if (o.status === "error" && o.next_attempt_at !== null && o.alerted) {
      continue;
    }
    problems.push(
      `paid order ${o.id} is "${o.status}" (next attempt ${
        o.next_attempt_at?.toISOString() ?? "none"
      }, ${o.alerted ? "alerted" : "no alert"})`,
    );
  }
  return problems;
}

/** One server per order, recorded on it; a running order has its server. */
function checkServers(
  stack: TestStack,
  orders: OrderFacts[],
): string[] {
  const problems: string[] = [];
  const byId = new Map(orders.map((o) => [o.id, o]));
  const perOrder = new Map<string, number[]>();
  for (const server of stack.panel.state().servers) {
    const owner = server.external_id ? byId.get(server.external_id) : undefined;
    if (!owner) {
      problems.push(
        `server ${server.id} names no order (${server.external_id})`,
      );
      continue;
    }
    perOrder.set(owner.id, [...perOrder.get(owner.id) ?? [], server.id]);
    if (owner.pterodactyl_server_id !== server.id) {
      problems.push(
        `server ${server.id} of order ${owner.id} is not recorded on it (${owner.pterodactyl_server_id})`,
      );
    }
    if (
      ["suspended", "canceled", "expired"].includes(owner.status) &&
      server.status !== "suspended"
    ) {
      problems.push(
        `server ${server.id} of ${owner.status} order ${owner.id} is not suspended`,
      );
    }
  }
  for (const [orderId, ids] of perOrder) {
    if (ids.length > 1) {
      problems.push(`order ${orderId} has ${ids.length} servers: ${ids}`);
    }
  }
  for (const o of orders) {
    if (
      ["installing", "active"].includes(o.status) && !perOrder.has(o.id)
    ) {
      problems.push(`${o.status} order ${o.id} has no server on the panel`);
    }
  }
  return problems;
}

/** Every handled event Stripe made is recorded once and applied once. */
async function checkEvents(
  stack: TestStack,
): Promise<
  { problems: string[]; events: number; polled: number; duplicates: number }
> {
  const problems: string[] = [];
  const made = (await sandboxEvents(stack)).filter((e) =>
    isHandledEventType(e.type)
  );
  const logged = await stack.sql<
    { event_id: string; outcome: string; received_via: string }[]
  >`select event_id, outcome, received_via from public.stripe_events_log`;
  const byId = new Map(logged.map((row) => [row.event_id, row]));
  for (const event of made) {
    const row = byId.get(event.id);
    if (!row) problems.push(`${event.type} ${event.id} was never recorded`);
    else if (!["processed", "ignored"].includes(row.outcome)) {
      problems.push(`${event.type} ${event.id} ended "${row.outcome}"`);
    }
  }
  const madeIds = new Set(made.map((e) => e.id));
  for (const row of logged) {
    if (!madeIds.has(row.event_id)) {
      problems.push(`recorded event ${row.event_id} was never made by Stripe`);
    }
  }
  const twice = await stack.sql<
    { event_id: string; kind: string; messages: string[] }[]
  >`select detail->>'event_id' as event_id, kind,
      array_agg(message order by id) as messages
    from public.order_events where detail ? 'event_id'
    group by detail->>'event_id', kind, to_status, message having count(*) > 1`;
  for (const row of twice) {
    problems.push(
      `event ${row.event_id} wrote ${row.messages.length} "${row.kind}" rows (applied twice?): ${
        row.messages.join(" | ")
      }`,
    );
  }
  const res = await fetch(`${stack.stripe.url}/_sandbox/deliveries`);
  const deliveries = await res.json() as { event_id: string; status: number }[];
  const answered = deliveries.filter((d) => d.status >= 200 && d.status < 300);
  const duplicates = answered.length -
    new Set(answered.map((d) => d.event_id)).size;
  return {
    problems,
    events: made.length,
    polled: logged.filter((row) => row.received_via === "poll").length,
    duplicates,
  };
}

const NodeItem = (body: unknown) =>
  (body as {
    attributes: {
      name: string;
      memory: number;
      memory_overallocate: number;
      disk: number;
      disk_overallocate: number;
      allocated_resources: { memory: number; disk: number };
    };
  }).attributes;

/** No node holds more than its memory and disk, overallocation included. */
async function checkNodes(stack: TestStack): Promise<string[]> {
  const problems: string[] = [];
  for (const { id } of stack.panel.state().nodes) {
    const reply = await callPanel(
      stack.panel,
      "GET",
      `/api/application/nodes/${id}`,
      { key: stack.keys.panelApiKey },
    );
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const node = NodeItem(reply.body);
    const room = {
      memory: node.memory * (1 + node.memory_overallocate / 100),
      disk: node.disk * (1 + node.disk_overallocate / 100),
    };
    for (const what of ["memory", "disk"] as const) {
      if (node.allocated_resources[what] > room[what]) {
        problems.push(
          `node ${node.name} holds ${
            node.allocated_resources[what]
          } MB ${what}, room for ${room[what]}`,
        );
      }
    }
  }
  return problems;
}

/** Each order's status rows chain from one to the next and end at its status. */
async function checkTimelines(
  stack: TestStack,
): Promise<{ problems: string[]; rows: number }> {
  const rows = await stack.sql<
    {
      order_id: string;
      status: string;
      trail: { from: string | null; to: string }[];
    }[]
  >`select o.id as order_id, o.status::text as status,
      coalesce(jsonb_agg(jsonb_build_object('from', e.from_status, 'to', e.to_status)
        order by e.id) filter (where e.id is not null), '[]') as trail
    from public.orders o
    left join public.order_events e on e.order_id = o.id and e.kind = 'status'
    group by o.id`;
  const problems: string[] = [];
  let count = 0;
  for (const row of rows) {
    count += row.trail.length;
    let previous: string | null = null;
    for (const step of row.trail) {
      if (previous !== null && step.from !== previous) {
        problems.push(
          `order ${row.order_id}: status row from "${step.from}" follows "${previous}"`,
        );
      }
      previous = step.to;
    }
    if ((previous ?? "pending") !== row.status) {
      problems.push(
        `order ${row.order_id} is "${row.status}", its timeline ends at "${previous}"`,
      );
    }
  }
  return { problems, rows: count };
}

/**
 * Asserts every invariant (all problems in one failure) and answers the counts. Run it
 * with no faults in force: it reads the panel's nodes through its API.
 */
export async function assertInvariants(
  stack: TestStack,
): Promise<InvariantCounts> {
  await stack.idle();
  const orders = await stack.sql<OrderFacts[]>`
    select o.id, o.status::text as status, o.paid_at is not null as paid,
      o.next_attempt_at, o.pterodactyl_server_id, o.panel_state,
      exists (select 1 from public.order_events e
        where e.order_id = o.id and e.kind = 'alert') as alerted
    from public.orders o`;
  const events = await checkEvents(stack);
  const timelines = await checkTimelines(stack);
  const problems = [
    ...checkOrders(orders),
    ...checkServers(stack, orders),
    ...events.problems,
    ...await checkNodes(stack),
    ...timelines.problems,
  ];
  assert.deepEqual(problems, [], problems.join("\n"));
  const byStatus: Record<string, number> = {};
  for (const o of orders) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
  return {
    orders: byStatus,
    servers: stack.panel.state().servers.length,
    events: events.events,
    polled: events.polled,
    duplicateDeliveries: events.duplicates,
    statusRows: timelines.rows,
  };
}
