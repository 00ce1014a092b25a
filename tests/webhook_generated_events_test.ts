import assert from "node:assert/strict";
import { mulberry32 } from "./_chaos.ts";
import {
  clearStripeFaults,
  order,
  postEvent,
  purchase,
  startAlertReceiver,
  subscriptionControl,
  type WebhookReply,
} from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

/** A small seeded generator (mulberry32): the same seed, the same events. */
function generator(seed: number) {
  const next = mulberry32(seed);
  return {
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T =>
      items[Math.floor(next() * items.length)],
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = (string | number)[];

/** Every path below the root of a JSON value. */
function paths(value: Json, at: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [];
  const entries: [string | number, Json][] = Array.isArray(value)
    ? value.map((item, i) => [i, item])
    : Object.entries(value);
  return entries.flatMap(([key, item]) => [
    [...at, key],
    ...paths(item, [...at, key]),
  ]);
}

function parentOf(root: Json, path: Path): Record<string | number, Json> {
  let node = root as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) {
    node = node[key] as Record<string | number, Json>;
  }
  return node;
}

function get(root: Json, path: Path): Json {
  return parentOf(root, path)[path.at(-1)!];
}

function set(root: Json, path: Path, value: Json | undefined): void {
  const parent = parentOf(root, path);
  const key = path.at(-1)!;
  if (value !== undefined) parent[key] = value;
  else if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
}

/** Renames the key at `path` (order of keys aside). */
function rename(root: Json, path: Path, name: string): void {
  const parent = parentOf(root, path);
  if (Array.isArray(parent)) return;
  const key = path.at(-1)!;
  parent[name] = parent[key];
  delete parent[key];
}

const MUTATIONS = [
  "drop",
  "wrong_type",
  "null",
  "surrogate",
  "surrogate_key",
  "huge_string",
  "huge_number",
] as const;

/** One mutation of a valid event; answers what it did. */
function mutate(
  event: Json,
  rng: ReturnType<typeof generator>,
  n: number,
): string {
  const all = paths(event);
  const inObject = all.filter((p) => p[0] === "data" && p.length > 2);
  const path = rng.int(10) < 8 && inObject.length > 0
    ? rng.pick(inObject)
    : rng.pick(all);
  const kind = rng.pick(MUTATIONS);
  const where = path.join(".");
  switch (kind) {
    case "drop":
      set(event, path, undefined);
      break;
    case "wrong_type": {
      const current = get(event, path);
      const choices: Json[] = [
        12,
        -1.5,
        true,
        [1, `x${n}`],
        { a: { b: n } },
        `s${n}`,
      ].filter((v) => typeof v !== typeof current);
      set(event, path, rng.pick(choices));
      break;
    }
    case "null":
      set(event, path, null);
      break;
    case "surrogate": {
      const strings = all.filter((p) => typeof get(event, p) === "string");
      const target = rng.pick(strings);
      set(event, target, `${get(event, target)}\ud83d`);
      return `${kind} at ${target.join(".")}`;
    }
    case "surrogate_key":
      rename(event, path, `${path.at(-1)}\udc00`);
      break;
    case "huge_string":
      set(event, path, `${"x".repeat(70_000 + rng.int(3))}\ud83d\ude00`);
      break;
    case "huge_number":
      set(event, path, rng.pick([1e20, 2 ** 31, -(2 ** 40), 1.5]));
      break;
  }
  return `${kind} at ${where}`;
}

/** The handled types, each from a real delivery of the Stripe sandbox. */
const TYPES = [
  "checkout.session.completed",
  "invoice.paid",
  "invoice.payment_failed",
  "customer.subscription.updated",
  "charge.dispute.created",
  "charge.refunded",
];

async function templates(stack: TestStack): Promise<Map<string, Json>> {
  // One purchase, a failed renewal, recovery, a dispute; a second purchase refunded.
  const first = await purchase(stack, { server_name: "Generated A" });
  const sub = (await order(stack, first.orderId)).stripe_subscription_id;
  await subscriptionControl(stack, sub, "renew", { outcome: "failed" });
  await subscriptionControl(stack, sub, "recover");
  await subscriptionControl(stack, sub, "dispute");
  const second = await purchase(stack, { server_name: "Generated B" });
  await subscriptionControl(
    stack,
    (await order(stack, second.orderId)).stripe_subscription_id,
    "refund",
  );
  const found = new Map<string, Json>();
  for (const type of TYPES) {
    const rows = await stack.sql`select payload from public.stripe_events_log
      where type = ${type} and outcome = 'processed'
      order by received_at desc limit 1`;
    assert.equal(rows.length, 1, `a delivered ${type}`);
    found.set(type, rows[0].payload as Json);
  }
  return found;
}

/** A body whose 64,000th character is the first half of an emoji. */
function emojiAtTheCut(template: Json, id: string): Json {
  for (let pad = 0; pad < 2; pad++) {
    const event = structuredClone(template) as { [key: string]: Json };
    event.id = id;
    const object = (event.data as { object: Record<string, Json> }).object;
    object.currency = { not: "a currency" };
    object.description = "x".repeat(pad) + "\ud83d\ude00".repeat(40_000);
    const body = JSON.stringify(event);
    const unit = body.charCodeAt(63_999);
    if (unit >= 0xd800 && unit <= 0xdbff) return event;
  }
  throw new Error("no padding puts an emoji across the cut");
}

Deno.test("stripe-webhook never answers 5xx to generated signed events", async (t) => {
  const receiver = startAlertReceiver();
  const stack = await startTestStack({
    env: { ALERT_WEBHOOK_URL: receiver.url },
  });
  try {
    const valid = await templates(stack);
    const rng = generator(20261201);
    const cases: { name: string; event: Json }[] = [];
    let n = 0;
    for (const [type, template] of valid) {
      for (let i = 0; i < 14; i++) {
        const event = structuredClone(template) as { [key: string]: Json };
        event.id = `evt_gen_${++n}_${crypto.randomUUID().slice(0, 8)}`;
        const changes = Array.from(
          { length: 1 + rng.int(3) },
          () => mutate(event, rng, n),
        );
        cases.push({ name: `${type} #${i}: ${changes.join(", ")}`, event });
      }
    }
    // The cases issue 12 names, whatever the generator draws.
    const session = valid.get("checkout.session.completed")!;
    const invoice = valid.get("invoice.paid")!;
    const dispute = valid.get("charge.dispute.created")!;
    const fixed: [string, Json, (e: Record<string, Json>) => void][] = [
      ["currency a number", session, (e) => {
        (e.data as { object: Record<string, Json> }).object.currency = 978;
      }],
      ["currency an array", session, (e) => {
        (e.data as { object: Record<string, Json> }).object.currency = ["eur"];
      }],
      ["amount_total an object", session, (e) => {
        (e.data as { object: Record<string, Json> }).object.amount_total = {
          value: 999,
        };
      }],
      ["an invoice without lines", invoice, (e) => {
        delete (e.data as { object: Record<string, Json> }).object.lines;
      }],
      ["an invoice with malformed lines", invoice, (e) => {
        (e.data as { object: Record<string, Json> }).object.lines = {
          data: [{ period: { end: 1e15 } }],
        };
      }],
      ["an invoice without an id", invoice, (e) => {
        delete (e.data as { object: Record<string, Json> }).object.id;
      }],
      ["a dispute naming a very long payment intent", dispute, (e) => {
        (e.data as { object: Record<string, Json> }).object.payment_intent =
          `pi_${"x".repeat(70_000)}`;
      }],
    ];
    cases.push({
      name: "a lone surrogate in the event id",
      event: { ...(session as Record<string, Json>), id: `evt_a_${++n}\ud83d` },
    });
    for (const [name, template, change] of fixed) {
      const event = structuredClone(template) as Record<string, Json>;
      event.id = `evt_fixed_${++n}`;
      change(event);
      cases.push({ name, event });
    }
    cases.push({
      name: "an unusable body cut at 64,000 characters inside an emoji",
      event: emojiAtTheCut(session, `evt_cut_${++n}`),
    });

    await t.step(
      `${cases.length} events: each acknowledged 2xx and recorded exactly once`,
      async () => {
        const [{ before }] = await stack.sql`select count(*)::int as before
          from public.stripe_events_log`;
        const failures: string[] = [];
        const outcomes: Record<string, number> = {};
        const seen = new Set<string>();
        let recorded = 0;
        for (const { name, event } of cases) {
          const body = JSON.stringify(event);
          if (seen.has(body)) continue;
          seen.add(body);
          const first: WebhookReply = await postEvent(
            stack,
            event as Record<string, unknown>,
          );
          const again = await postEvent(
            stack,
            event as Record<string, unknown>,
          );
          if (first.status >= 300 || again.status >= 300) {
            failures.push(
              `${name}: ${first.status} ${
                JSON.stringify(first.body)
              }, then ${again.status}`,
            );
            continue;
          }
          if (first.body.duplicate || again.body.duplicate !== true) {
            failures.push(`${name}: not recorded exactly once`);
          }
          recorded++;
          const outcome = String(first.body.outcome);
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
        await stack.idle();
        assert.deepEqual(failures, []);
        const [{ after }] = await stack.sql`select count(*)::int as after
          from public.stripe_events_log`;
        assert.equal(after - before, recorded);
        // Every kind of answer happened: the generator reaches past the parser.
        for (const outcome of ["invalid", "processed"]) {
          assert.ok(outcomes[outcome] > 0, JSON.stringify(outcomes));
        }
        const stored = await stack.sql`select event_id, error,
          payload::text as payload from public.stripe_events_log`;
        for (const row of stored) {
          for (const text of [row.event_id, row.error ?? "", row.payload]) {
            assert.equal(text, text.toWellFormed());
          }
        }
      },
    );

    await t.step(
      "the named cases are recorded as invalid with the reason",
      async () => {
        const rows = await stack.sql`select event_id, outcome, error
          from public.stripe_events_log
          where starts_with(event_id, 'evt_fixed_') or starts_with(event_id, 'evt_cut_')
          order by event_id`;
        assert.equal(rows.length, fixed.length + 1);
        for (const row of rows) {
          assert.equal(row.outcome, "invalid", JSON.stringify(row));
          assert.ok(row.error, "the reason is kept");
        }
        // A lone surrogate is replaced, and the event is used as any other.
        const [surrogate] = await stack.sql`select event_id, outcome
          from public.stripe_events_log where starts_with(event_id, 'evt_a_')`;
        assert.ok(
          surrogate.event_id.endsWith("\ufffd"),
          JSON.stringify(surrogate),
        );
        assert.notEqual(surrogate.outcome, "invalid");
      },
    );
    const subscriptionEvent = (id: string) => ({
      ...(valid.get("customer.subscription.updated") as Record<string, Json>),
      id,
    });

    await t.step(
      "a Stripe 4xx on a read is final: recorded as failed, alerted, acknowledged",
      async () => {
        const alertsBefore = receiver.alerts.length;
        stack.stripe.addFault({
          method: "GET",
          path: "^/v1/subscriptions/",
          status: 400,
          type: "invalid_request_error",
          message: "Invalid subscription id (injected by the test)",
          times: 1,
        });
        const event = subscriptionEvent(`evt_refused_${++n}`);
        const res = await postEvent(stack, event);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.outcome, "failed");
        const [row] = await stack.sql`select outcome, error
          from public.stripe_events_log where event_id = ${event.id}`;
        assert.equal(row.outcome, "failed");
        assert.match(row.error, /Stripe refused \(400\)/);
        assert.equal((await postEvent(stack, event)).body.duplicate, true);
        await stack.idle();
        assert.equal(receiver.alerts.length, alertsBefore + 1);
      },
    );

    for (const status of [429, 500]) {
      await t.step(
        `a Stripe ${status} on a read is temporary: 503, and Stripe's retry is applied`,
        async () => {
          stack.stripe.addFault({
            method: "GET",
            path: "^/v1/subscriptions/",
            status,
          });
          const event = subscriptionEvent(`evt_busy_${status}_${++n}`);
          let res;
          try {
            res = await postEvent(stack, event);
          } finally {
            await clearStripeFaults(stack);
          }
          assert.equal(res.status, 503, JSON.stringify(res.body));
          const rows = await stack.sql`select 1 from public.stripe_events_log
            where event_id = ${event.id}`;
          assert.equal(rows.length, 0);
          const retried = await postEvent(stack, event);
          assert.equal(retried.status, 200, JSON.stringify(retried.body));
          assert.equal(retried.body.outcome, "processed");
        },
      );
    }
  } finally {
    await stack.close();
    await receiver.close();
  }
});
