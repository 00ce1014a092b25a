import assert from "node:assert/strict";
import { signPayload } from "../local/stripe-sandbox/mod.ts";
import {
  errorCode,
  footprint,
  invoke,
  MALFORMED_BODIES,
  post,
} from "./_fixtures.ts";
import { openCheckout, startAlertReceiver } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

const BODY = {
  plan_id: "mc-java-4gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Fuzzed",
};

async function signedWebhook(stack: TestStack, payload: string) {
  return await post(stack, "stripe-webhook", payload, {
    "Stripe-Signature": await signPayload(
      stack.keys.stripeWebhookSecret,
      payload,
    ),
  });
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-")
    .replaceAll("/", "_");
}

Deno.test("bad input never answers 500 and changes nothing", async (t) => {
  const receiver = startAlertReceiver();
  const stack = await startTestStack({
    env: { ALERT_WEBHOOK_URL: receiver.url },
  });
  try {
    await t.step(
      "a NUL byte in plan_id or region: 400 invalid_request",
      async () => {
        const user = await stack.user();
        const before = await footprint(stack);
        const calls = stack.stripe.requests().length;
        for (
          const body of [
            { ...BODY, plan_id: "mc-java-4gb\u0000" },
            { ...BODY, region: "eu-\u0000west" },
            { ...BODY, plan_id: "\u0000" },
          ]
        ) {
          const res = await invoke(
            user.client,
            "create-checkout-session",
            body,
          );
          assert.equal(res.status, 400, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "invalid_request");
        }
        assert.deepEqual(await footprint(stack), before);
        assert.equal(stack.stripe.requests().length, calls);
      },
    );

    await t.step(
      "a validly signed token whose user no longer exists: 401 user_not_found",
      async () => {
        const user = await stack.user();
        await stack.sql`delete from auth.users where id = ${user.id}`;
        const before = await footprint(stack);
        const checkout = await invoke(
          user.client,
          "create-checkout-session",
          BODY,
        );
        assert.equal(checkout.status, 401, JSON.stringify(checkout.body));
        assert.equal(errorCode(checkout.body), "user_not_found");
        const panel = await invoke(user.client, "create-pterodactyl-user");
        assert.equal(panel.status, 401, JSON.stringify(panel.body));
        assert.equal(errorCode(panel.body), "user_not_found");
        assert.deepEqual(await footprint(stack), before);
      },
    );

    await t.step(
      "an alg:none token sent straight to a function: 401 JSON",
      async () => {
        const user = await stack.user();
        const now = Math.floor(Date.now() / 1000);
        const token = `${base64url({ alg: "none", typ: "JWT" })}.${
          base64url({
            sub: user.id,
            role: "authenticated",
            aud: "authenticated",
            email: user.email,
            iat: now,
            exp: now + 3600,
          })
        }.`;
        const before = await footprint(stack);
        for (
          const fn of ["create-checkout-session", "create-pterodactyl-user"]
        ) {
          const res = await post(stack, fn, JSON.stringify(BODY), {
            Authorization: `Bearer ${token}`,
          });
          assert.equal(res.status, 401, `${fn}: ${JSON.stringify(res.body)}`);
        }
        assert.deepEqual(await footprint(stack), before);
      },
    );

    await t.step(
      "a malformed body to sync-server-status or create-pterodactyl-user: 400, nothing written",
      async () => {
        const user = await stack.user();
        const headers = {
          Authorization: `Bearer ${user.token}`,
          apikey: stack.keys.publishableKey,
        };
        const before = await footprint(stack);
        const panelCalls = stack.panel.calls().length;
        for (const fn of ["sync-server-status", "create-pterodactyl-user"]) {
          for (
            const [body, code] of MALFORMED_BODIES
          ) {
            const res = await post(stack, fn, body, headers);
            assert.deepEqual(
              [res.status, errorCode(res.body)],
              [400, code],
              `${fn} ${body}: ${JSON.stringify(res.body)}`,
            );
          }
        }
        assert.deepEqual(await footprint(stack), before);
        assert.equal(stack.panel.calls().length, panelCalls);
        // An empty body, or {}, is still a call without parameters.
        for (const fn of ["sync-server-status", "create-pterodactyl-user"]) {
          for (const body of ["", "{}"]) {
            const res = await post(stack, fn, body, headers);
            assert.equal(res.status, 200, `${fn} ${JSON.stringify(body)}`);
          }
        }
      },
    );

    await t.step(
      "validly signed events we cannot use are recorded as invalid, alerted and acknowledged",
      async () => {
        const checkout = await openCheckout(stack, BODY);
        const now = Math.floor(Date.now() / 1000);
        const usable = {
          id: "evt_fuzz_template",
          object: "event",
          api_version: "2026-10-28.endive",
          created: now,
          type: "checkout.session.completed",
          livemode: false,
          pending_webhooks: 1,
          request: { id: null, idempotency_key: null },
        };
        const payloads = {
          array: JSON.stringify([{ ...usable, id: "evt_fuzz_array" }]),
          no_data: JSON.stringify({ ...usable, id: "evt_fuzz_no_data" }),
          nul: JSON.stringify({
            ...usable,
            id: "evt_fuzz_nul",
            data: {
              object: {
                id: checkout.sessionId,
                object: "checkout.session",
                client_reference_id: checkout.orderId,
                metadata: { order_id: checkout.orderId, note: "a\u0000b" },
              },
            },
          }),
          not_json: "not json at all",
          nul_in_id: JSON.stringify({
            ...usable,
            id: "evt_\u0000",
            data: { object: {} },
          }),
        };
        const before = await footprint(stack);
        const alertsBefore = receiver.alerts.length;
        for (const [name, payload] of Object.entries(payloads)) {
          const res = await signedWebhook(stack, payload);
          assert.equal(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.outcome, "invalid", name);
          // Stripe retries what it sends again: the same body is acknowledged once more.
          const again = await signedWebhook(stack, payload);
          assert.equal(again.status, 200, name);
          assert.equal(again.body.duplicate, true, name);
        }
        const after = await footprint(stack);
        assert.deepEqual(after, {
          ...before,
          stripe_events_log: before.stripe_events_log +
            Object.keys(payloads).length,
        });
        const recorded = await stack.sql`
          select event_id, outcome, order_id, error from public.stripe_events_log
          where outcome = 'invalid' order by received_at`;
        assert.equal(recorded.length, Object.keys(payloads).length);
        assert.ok(recorded.every((r) => r.order_id === null && r.error));
        assert.ok(recorded.some((r) => r.event_id === "evt_fuzz_no_data"));
        await stack.idle();
        assert.equal(
          receiver.alerts.length - alertsBefore,
          Object.keys(payloads).length,
        );
        const [order] = await stack.sql`select status from public.orders
          where id = ${checkout.orderId}`;
        assert.equal(order.status, "pending");
      },
    );

    await t.step(
      "an unsigned or wrongly signed body is still refused with 400",
      async () => {
        const payload = JSON.stringify([1, 2, 3]);
        const before = await footprint(stack);
        const none = await post(stack, "stripe-webhook", payload, {});
        assert.equal(none.status, 400);
        const wrong = await post(stack, "stripe-webhook", payload, {
          "Stripe-Signature": await signPayload("whsec_wrong", payload),
        });
        assert.equal(wrong.status, 400);
        assert.equal(errorCode(wrong.body), "invalid_signature");
        assert.deepEqual(await footprint(stack), before);
      },
    );
  } finally {
    await stack.close();
    await receiver.close();
  }
});
