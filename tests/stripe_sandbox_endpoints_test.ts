/**
 * The Stripe sandbox's webhook endpoints and event filters, through the real SDK:
 * CRUD and Stripe's validation, the secret only on create, delivery only to enabled
 * subscribed endpoints signed with each one's secret, `pending_webhooks`,
 * `events.list` filters, `setWebhookUrl` on top of endpoints, and `npm start`'s
 * registration across restarts.
 */
import assert from "node:assert/strict";
import Stripe from "stripe";
import { loadCatalogue, priceId } from "../local/catalogue.ts";
import { HANDLED_EVENT_TYPES } from "../local/handled_events.ts";
import {
  type Delivery,
  startStripeSandbox,
  type StripeSandbox,
} from "../local/stripe-sandbox/mod.ts";
import {
  sandboxClient,
  startWebhookReceiver,
  type WebhookReceiver,
} from "../local/stripe-sandbox/testing.ts";
import { startTestStack } from "./_stack.ts";

const KEY = "sk_test_local_0123456789abcdef";
const UNREACHABLE = "http://127.0.0.1:9/nobody";

interface Env {
  sandbox: StripeSandbox;
  stripe: Stripe;
  /** An endpoint with a receiver verifying its own secret (answers `statuses`). */
  endpoint(
    events: Stripe.WebhookEndpointCreateParams.EnabledEvent[],
    statuses?: number[],
  ): Promise<{ endpoint: Stripe.WebhookEndpoint; receiver: WebhookReceiver }>;
}

/** A sandbox with no endpoint until the test makes them. */
async function withEndpoints(fn: (env: Env) => Promise<void>): Promise<void> {
  const sandbox = await startStripeSandbox({
    catalogue: await loadCatalogue(),
    secretKey: KEY,
    retryDelaysMs: [20, 20],
  });
  const stripe = sandboxClient(sandbox, KEY);
  const receivers: WebhookReceiver[] = [];
  try {
    await fn({
      sandbox,
      stripe,
      async endpoint(events, statuses = []) {
        // The secret comes with create; the receiver needs it, so the URL follows.
        const created = await stripe.webhookEndpoints.create({
          url: UNREACHABLE,
          enabled_events: events,
        });
        const receiver = await startWebhookReceiver(created.secret!, statuses);
        receivers.push(receiver);
        const endpoint = await stripe.webhookEndpoints.update(created.id, {
          url: receiver.url,
        });
        return { endpoint: { ...endpoint, secret: created.secret }, receiver };
      },
    });
  } finally {
    await sandbox.close();
    for (const receiver of receivers) await receiver.close();
  }
}

async function control(
  sandbox: StripeSandbox,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(`${sandbox.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.ok, JSON.stringify(json));
  return json;
}

/** A paid checkout: checkout.session.completed, customer.subscription.created, invoice.paid. */
async function purchase(env: Env): Promise<string[]> {
  const session = await env.stripe.checkout.sessions.create({
    mode: "subscription",
    success_url: "https://shop.example/success",
    customer_email: "ada@example.com",
    line_items: [{ price: priceId("mc-java-4gb", "monthly"), quantity: 1 }],
  });
  const done = await control(
    env.sandbox,
    `/_sandbox/checkout/sessions/${session.id}/complete`,
    {},
  ) as { event_ids: string[] };
  await env.sandbox.idle();
  return done.event_ids;
}

async function refused(
  call: Promise<unknown>,
  param: string,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(call, (error: Stripe.errors.StripeError) => {
    assert.equal(error.statusCode, 400, error.message);
    assert.equal(error.type, "StripeInvalidRequestError");
    assert.equal(error.param, param, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

Deno.test("stripe sandbox webhook endpoints: create, list, retrieve, update, delete", async (t) => {
  await withEndpoints(async ({ stripe }) => {
    const created = await stripe.webhookEndpoints.create({
      url: "https://shop.example/hook",
      enabled_events: ["invoice.paid", "charge.refunded"],
      description: "billing",
      metadata: { team: "ops" },
      api_version: "2026-10-28.endive",
    });

    await t.step("create answers the endpoint with its secret", () => {
      assert.match(created.id, /^we_/);
      assert.match(created.secret!, /^whsec_/);
      assert.equal(created.object, "webhook_endpoint");
      assert.equal(created.url, "https://shop.example/hook");
      assert.deepEqual(created.enabled_events, [
        "invoice.paid",
        "charge.refunded",
      ]);
      assert.equal(created.status, "enabled");
      assert.equal(created.api_version, "2026-10-28.endive");
      assert.equal(created.application, null);
      assert.equal(created.livemode, false);
      assert.equal(created.description, "billing");
      assert.deepEqual(created.metadata, { team: "ops" });
      assert.equal(typeof created.created, "number");
    });

    await t.step("retrieve and list never show the secret", async () => {
      const got = await stripe.webhookEndpoints.retrieve(created.id);
      assert.equal("secret" in got, false);
      const { secret: _secret, lastResponse: _a, ...fields } = created;
      const { lastResponse: _b, ...gotFields } = got;
      assert.deepEqual(gotFields, fields);
      const list = await stripe.webhookEndpoints.list();
      assert.deepEqual(list.data.map((e) => e.id), [created.id]);
      assert.equal("secret" in list.data[0], false);
    });

    await t.step("lists page newest first", async () => {
      const more = [];
      for (const n of [1, 2, 3]) {
        more.push(
          await stripe.webhookEndpoints.create({
            url: `https://shop.example/hook${n}`,
            enabled_events: ["*"],
          }),
        );
      }
      const first = await stripe.webhookEndpoints.list({ limit: 2 });
      assert.deepEqual(first.data.map((e) => e.id), [more[2].id, more[1].id]);
      assert.equal(first.has_more, true);
      const next = await stripe.webhookEndpoints.list({
        limit: 2,
        starting_after: more[1].id,
      });
      assert.deepEqual(next.data.map((e) => e.id), [more[0].id, created.id]);
      assert.equal(next.has_more, false);
      const back = await stripe.webhookEndpoints.list({
        ending_before: more[0].id,
      });
      assert.deepEqual(back.data.map((e) => e.id), [more[2].id, more[1].id]);
      for (const e of more) await stripe.webhookEndpoints.del(e.id);
    });

    await t.step(
      "update moves url, events, status, description, metadata",
      async () => {
        const off = await stripe.webhookEndpoints.update(created.id, {
          disabled: true,
          url: "https://shop.example/v2",
          enabled_events: ["*"],
          description: "",
          metadata: { team: "", on_call: "ada" },
        });
        assert.equal(off.status, "disabled");
        assert.equal(off.url, "https://shop.example/v2");
        assert.deepEqual(off.enabled_events, ["*"]);
        assert.equal(off.description, null);
        assert.deepEqual(off.metadata, { on_call: "ada" });
        assert.equal("secret" in off, false);
        const on = await stripe.webhookEndpoints.update(created.id, {
          disabled: false,
        });
        assert.equal(on.status, "enabled");
      },
    );

    await t.step("delete answers the deleted stub, then 404", async () => {
      const gone = await stripe.webhookEndpoints.del(created.id);
      assert.deepEqual(
        { id: gone.id, object: gone.object, deleted: gone.deleted },
        { id: created.id, object: "webhook_endpoint", deleted: true },
      );
      await assert.rejects(
        stripe.webhookEndpoints.retrieve(created.id),
        (error: Stripe.errors.StripeError) =>
          error.statusCode === 404 && error.code === "resource_missing",
      );
      assert.deepEqual((await stripe.webhookEndpoints.list()).data, []);
    });
  });
});

Deno.test("stripe sandbox webhook endpoints refuse what Stripe refuses", async (t) => {
  await withEndpoints(async ({ stripe }) => {
    const raw = stripe.webhookEndpoints as unknown as {
      create(p: Record<string, unknown>): Promise<unknown>;
      update(id: string, p: Record<string, unknown>): Promise<unknown>;
    };
    await t.step("url and enabled_events are required", async () => {
      await refused(raw.create({ enabled_events: ["*"] }), "url");
      await refused(raw.create({ url: "https://x.example" }), "enabled_events");
    });
    await t.step("an unknown event type is refused", async () => {
      await refused(
        raw.create({
          url: "https://x.example",
          enabled_events: ["invoice.paid", "invoice.paidd"],
        }),
        "enabled_events",
        /invoice\.paidd/,
      );
    });
    await t.step("a URL that is not http(s) is refused", async () => {
      await refused(
        raw.create({ url: "not a url", enabled_events: ["*"] }),
        "url",
      );
      await refused(
        raw.create({ url: "ftp://x.example/hook", enabled_events: ["*"] }),
        "url",
      );
    });
    await t.step("parameters of the other call are unknown", async () => {
      await refused(
        raw.create({
          url: "https://x.example",
          enabled_events: ["*"],
          disabled: true,
        }),
        "disabled",
      );
      const { id } = await stripe.webhookEndpoints.create({
        url: "https://x.example",
        enabled_events: ["*"],
      });
      await refused(
        raw.update(id, { api_version: "2026-10-28.endive" }),
        "api_version",
      );
      await refused(
        raw.update(id, { enabled_events: ["nope"] }),
        "enabled_events",
      );
    });
    await t.step("an unknown API version is refused", async () => {
      await refused(
        raw.create({
          url: "https://x.example",
          enabled_events: ["*"],
          api_version: "2099-01-01.nope",
        }),
        "api_version",
      );
    });
    await t.step(
      "events.list refuses type with types, and 21 types",
      async () => {
        await refused(
          stripe.events.list({ type: "invoice.paid", types: ["invoice.paid"] }),
          "types",
        );
        await refused(
          stripe.events.list({ types: Array(21).fill("invoice.paid") }),
          "types",
        );
      },
    );
  });
});

Deno.test("stripe sandbox delivers each event to the enabled endpoints subscribed to it", async (t) => {
  await withEndpoints(async (env) => {
    const invoices = await env.endpoint(["invoice.paid"], [500, 500, 500]);
    const all = await env.endpoint(["*"]);
    const off = await env.endpoint(["checkout.session.completed"]);
    await env.stripe.webhookEndpoints.update(off.endpoint.id, {
      disabled: true,
    });
    const ids = await purchase(env);

    await t.step(
      "each endpoint gets only its types, none when disabled",
      () => {
        assert.deepEqual(
          invoices.receiver.received.map((r) => r.event?.type),
          ["invoice.paid", "invoice.paid", "invoice.paid"],
        );
        assert.deepEqual(all.receiver.received.map((r) => r.event?.id), ids);
        assert.equal(off.receiver.received.length, 0);
      },
    );

    await t.step(
      "each is signed with its endpoint's secret (real SDK)",
      async () => {
        for (
          const r of [...invoices.receiver.received, ...all.receiver.received]
        ) {
          assert.ok(r.event, "verified by constructEventAsync");
        }
        const [theirs] = all.receiver.received;
        await assert.rejects(
          new Stripe(KEY).webhooks.constructEventAsync(
            theirs.body,
            theirs.signature,
            invoices.endpoint.secret!,
            undefined,
            Stripe.createSubtleCryptoProvider(),
          ),
        );
      },
    );

    await t.step(
      "pending_webhooks counts endpoints without a 2xx yet",
      async () => {
        const pending = Object.fromEntries(
          await Promise.all(ids.map(async (id) => {
            const event = await env.stripe.events.retrieve(id);
            return [event.type, event.pending_webhooks];
          })),
        );
        // invoice.paid went to two endpoints, one of them never answered 2xx
        assert.deepEqual(pending, {
          "checkout.session.completed": 0,
          "customer.subscription.created": 0,
          "invoice.paid": 1,
        });
      },
    );

    await t.step(
      "the deliveries log names the endpoint of each attempt",
      async () => {
        const log = await control(
          env.sandbox,
          "/_sandbox/deliveries",
        ) as Delivery[];
        const to = (id: string) => log.filter((d) => d.endpoint === id);
        assert.deepEqual(to(invoices.endpoint.id).map((d) => d.status), [
          500,
          500,
          500,
        ]);
        assert.equal(to(all.endpoint.id).length, 3);
        assert.equal(to(off.endpoint.id).length, 0);
      },
    );

    await t.step(
      "an event nobody listens to has pending_webhooks 0",
      async () => {
        for (const e of [invoices, all]) {
          await env.stripe.webhookEndpoints.del(e.endpoint.id);
        }
        const customer = await env.stripe.customers.create({ email: "x@y.z" });
        await env.stripe.customers.del(customer.id);
        const [deleted] = (await env.stripe.events.list({
          type: "customer.deleted",
        })).data;
        assert.equal(deleted.pending_webhooks, 0);
      },
    );
  });
});

Deno.test("stripe sandbox events.list filters like Stripe (real SDK)", async (t) => {
  await withEndpoints(async (env) => {
    const failing = await env.endpoint(["invoice.paid"], Array(10).fill(500));
    await env.endpoint(["*"]);
    const first = await purchase(env);
    const firstAt = (await env.stripe.events.retrieve(first[0])).created;
    // the next batch is created in a later second
    await new Promise((r) => setTimeout(r, 1100));
    const second = await purchase(env);
    const secondAt = (await env.stripe.events.retrieve(second[0])).created;
    const list = async (params: Stripe.EventListParams) =>
      (await env.stripe.events.list({ limit: 100, ...params })).data.map((e) =>
        e.id
      );
    const typeOf = new Map(
      (await env.stripe.events.list({ limit: 100 })).data.map((e) => [
        e.id,
        e.type,
      ]),
    );
    /** The ids of both purchases whose type passes, newest first. */
    const expected = (keep: (type: string) => boolean) =>
      [...first, ...second].filter((id) => keep(typeOf.get(id)!)).reverse();

    await t.step("newest first", async () => {
      assert.deepEqual(await list({}), [...first, ...second].reverse());
    });

    await t.step("types[] selects those names", async () => {
      const types = ["invoice.paid", "checkout.session.completed"];
      assert.deepEqual(
        await list({ types }),
        expected((type) => types.includes(type)),
      );
      assert.equal((await list({ types })).length, 4);
    });

    await t.step("type takes one name or a * wildcard", async () => {
      const paid = expected((type) => type === "invoice.paid");
      assert.equal(paid.length, 2);
      assert.deepEqual(await list({ type: "invoice.paid" }), paid);
      assert.deepEqual(await list({ type: "invoice.pa*" }), paid);
      assert.deepEqual(
        await list({ type: "customer.*" }),
        expected((type) => type.startsWith("customer.")),
      );
      assert.deepEqual(
        await list({ type: "checkout.session.*" }),
        expected((type) => type === "checkout.session.completed"),
      );
      assert.deepEqual(await list({ type: "charge.*" }), []);
    });

    await t.step("created: exact or a range", async () => {
      assert.deepEqual(
        await list({ created: { gte: secondAt } }),
        [
          ...second,
        ].reverse(),
      );
      assert.deepEqual(
        await list({ created: { lt: secondAt } }),
        [
          ...first,
        ].reverse(),
      );
      assert.deepEqual(
        await list({ created: firstAt }),
        [...first].reverse(),
      );
      assert.deepEqual(await list({ created: { gt: secondAt } }), []);
      assert.deepEqual(
        await list({ created: { lte: secondAt, gte: secondAt } }),
        [...second].reverse(),
      );
    });

    await t.step(
      "delivery_success=false: failed at one endpoint at least",
      async () => {
        assert.deepEqual(
          await list({ delivery_success: false }),
          expected((type) => type === "invoice.paid"),
        );
        assert.deepEqual(
          await list({ delivery_success: true }),
          expected((type) => type !== "invoice.paid"),
        );
        assert.ok(failing.receiver.received.length > 0);
      },
    );

    await t.step("filters page like any list", async () => {
      const page = await env.stripe.events.list({
        delivery_success: false,
        limit: 1,
      });
      assert.deepEqual(
        page.data.map((e) => e.id),
        expected((type) => type === "invoice.paid").slice(0, 1),
      );
      assert.equal(page.has_more, true);
    });
  });
});

Deno.test("stripe sandbox disabled endpoints: nothing sent, failures stay listed", async (t) => {
  await withEndpoints(async (env) => {
    const { endpoint, receiver } = await env.endpoint(
      ["*"],
      Array(9).fill(503), // 3 events, each tried 3 times
    );
    const failed = await purchase(env);
    await env.stripe.webhookEndpoints.update(endpoint.id, { disabled: true });
    const received = receiver.received.length;
    const meanwhile = await purchase(env);

    await t.step("events created while disabled are not sent", async () => {
      assert.equal(receiver.received.length, received);
      for (const id of meanwhile) {
        // Stripe never sends them, so they are not pending for it either
        assert.equal(
          (await env.stripe.events.retrieve(id)).pending_webhooks,
          0,
        );
      }
    });

    await t.step(
      "what failed before is listed by delivery_success: false",
      async () => {
        const undelivered = await env.stripe.events.list({
          delivery_success: false,
        });
        assert.deepEqual(
          undelivered.data.map((e) => e.id),
          [...failed].reverse(),
        );
      },
    );

    await t.step(
      "enabled again, new events are delivered, old ones not",
      async () => {
        await env.stripe.webhookEndpoints.update(endpoint.id, {
          disabled: false,
        });
        const after = await purchase(env);
        const got = receiver.received.slice(received).map((r) => r.event?.id);
        assert.deepEqual(got, after);
      },
    );
  });
});

Deno.test("stripe sandbox setWebhookUrl works on endpoints", async (t) => {
  await withEndpoints(async (env) => {
    const { endpoint, receiver } = await env.endpoint(["*"]);

    await t.step(
      "undefined disables every endpoint: nothing delivered",
      async () => {
        env.sandbox.setWebhookUrl(undefined);
        const ids = await purchase(env);
        assert.equal(receiver.received.length, 0);
        const got = await env.stripe.webhookEndpoints.retrieve(endpoint.id);
        assert.equal(got.status, "disabled");
        assert.equal(
          (await env.stripe.events.retrieve(ids[0])).pending_webhooks,
          0,
        );
      },
    );

    await t.step(
      "an endpoint's URL enables it again, adding none",
      async () => {
        env.sandbox.setWebhookUrl(endpoint.url);
        const ids = await purchase(env);
        assert.deepEqual(receiver.received.map((r) => r.event?.id), ids);
        const list = await env.stripe.webhookEndpoints.list();
        assert.deepEqual(list.data.map((e) => [e.id, e.status]), [
          [endpoint.id, "enabled"],
        ]);
      },
    );

    await t.step(
      "another URL points the sandbox's own endpoint there",
      async () => {
        await control(env.sandbox, "/_sandbox/webhook", { url: UNREACHABLE });
        const list = await env.stripe.webhookEndpoints.list();
        assert.equal(list.data.length, 2);
        const own = list.data.find((e) => e.id !== endpoint.id)!;
        assert.equal(own.url, UNREACHABLE);
        assert.deepEqual(own.enabled_events, ["*"]);
        await control(env.sandbox, "/_sandbox/webhook", { url: null });
        const after = await env.stripe.webhookEndpoints.list();
        assert.deepEqual(after.data.map((e) => e.status), [
          "disabled",
          "disabled",
        ]);
      },
    );
  });
});

Deno.test("npm start registers one webhook endpoint and finds it after a restart", async (t) => {
  const stateDir = await Deno.makeTempDir({ prefix: "stack-endpoint-" });
  const endpoints = async (
    stack: { stripe: StripeSandbox; keys: { stripeSecretKey: string } },
  ) =>
    (await sandboxClient(stack.stripe, stack.keys.stripeSecretKey)
      .webhookEndpoints.list()).data;
  try {
    const first = await startTestStack({ stateDir, ephemeralKeys: false });
    let id: string;
    let secret: string;
    try {
      await t.step(
        "the endpoint is the function's, with the handled types",
        async () => {
          const [endpoint, ...more] = await endpoints(first);
          assert.deepEqual(more, []);
          assert.equal(
            endpoint.url,
            `${first.gateway.url}/functions/v1/stripe-webhook`,
          );
          assert.deepEqual(endpoint.enabled_events, [...HANDLED_EVENT_TYPES]);
          assert.equal(endpoint.status, "enabled");
          assert.equal(
            first.env.STRIPE_WEBHOOK_SECRET,
            first.keys.stripeWebhookSecret,
          );
          id = endpoint.id;
          secret = first.keys.stripeWebhookSecret;
          const kept = JSON.parse(
            await Deno.readTextFile(`${stateDir}/keys.json`),
          );
          assert.equal(kept.stripeWebhookEndpointId, id);
          assert.equal(kept.stripeWebhookSecret, secret);
        },
      );
    } finally {
      await first.close();
    }

    const again = await startTestStack({ stateDir, ephemeralKeys: false });
    try {
      await t.step(
        "a restart finds it, moves its URL and keeps its secret",
        async () => {
          const [endpoint, ...more] = await endpoints(again);
          assert.deepEqual(more, []);
          assert.equal(endpoint.id, id);
          assert.equal(
            endpoint.url,
            `${again.gateway.url}/functions/v1/stripe-webhook`,
          );
          assert.equal(again.env.STRIPE_WEBHOOK_SECRET, secret);
        },
      );
      await t.step(
        "its deliveries pass the function's signature check",
        async () => {
          const stripe = sandboxClient(
            again.stripe,
            again.keys.stripeSecretKey,
          );
          const session = await stripe.checkout.sessions.create({
            mode: "subscription",
            success_url: "https://shop.example/success",
            customer_email: "ada@example.com",
            line_items: [{
              price: priceId("mc-java-4gb", "monthly"),
              quantity: 1,
            }],
          });
          await stripe.checkout.sessions.expire(session.id);
          await again.idle();
          const log = await control(
            again.stripe,
            "/_sandbox/deliveries",
          ) as Delivery[];
          const last = log.at(-1)!;
          assert.deepEqual([last.type, last.endpoint, last.status], [
            "checkout.session.expired",
            id,
            200,
          ]);
        },
      );
    } finally {
      await again.close();
    }

    const lost = await startTestStack({ stateDir, ephemeralKeys: true });
    try {
      await t.step(
        "with its secret lost, the endpoint is rolled, not doubled",
        async () => {
          const [endpoint, ...more] = await endpoints(lost);
          assert.deepEqual(more, []);
          assert.notEqual(endpoint.id, id);
          assert.notEqual(lost.env.STRIPE_WEBHOOK_SECRET, secret);
        },
      );
    } finally {
      await lost.close();
    }
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});
