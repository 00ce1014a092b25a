import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { KEY_MODES, type KeyMode } from "../local/stack.ts";
import { checkoutFromEnv } from "../supabase/functions/create-checkout-session/handler.ts";
import { panelUserFromEnv } from "../supabase/functions/create-pterodactyl-user/handler.ts";
import { provisionFromEnv } from "../supabase/functions/servers-provision/handler.ts";
import { webhookFromEnv } from "../supabase/functions/stripe-webhook/handler.ts";
import { ConfigError } from "../supabase/functions/_shared/platform/errors.ts";
import { errorCode, invoke, post } from "./_fixtures.ts";
import { completeCheckout, openCheckout, order } from "./_purchase.ts";
import { startTestStack, type TestStack, type TestUser } from "./_stack.ts";

const KEY_VARIABLES = [
  "SUPABASE_ANON_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_PUBLISHABLE_KEYS",
  "SUPABASE_SECRET_KEYS",
];

const EXPECTED_VARIABLES: Record<KeyMode, string[]> = {
  new: ["SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_SECRET_KEYS"],
  legacy: ["SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"],
  both: KEY_VARIABLES,
};

/** Headers of each call to servers-provision made from this process. */
function recordProvisionCalls(): { calls: Headers[]; restore(): void } {
  const calls: Headers[] = [];
  const original = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const request = new Request(input, init);
    if (new URL(request.url).pathname.endsWith("/servers-provision")) {
      calls.push(new Headers(request.headers));
    }
    return original(input, init);
  };
  return { calls, restore: () => (globalThis.fetch = original) };
}

async function provisionWith(
  stack: TestStack,
  headers: Record<string, string>,
): Promise<{ status: number; code: unknown }> {
  const res = await fetch(
    `${stack.gateway.url}/functions/v1/servers-provision`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      // An unknown order: a service caller gets 404, anyone else 401/403.
      body: JSON.stringify({ order_id: crypto.randomUUID() }),
    },
  );
  return { status: res.status, code: errorCode(await res.json()) };
}

for (const mode of KEY_MODES) {
  Deno.test(`API keys "${mode}": a purchase reaches provisioning and service-only stays service-only`, async (t) => {
    const recorder = recordProvisionCalls();
    const stack = await startTestStack({ keyMode: mode });
    let bought:
      | { orderId: string; client: TestUser["client"] }
      | undefined;
    try {
      const keys = stack.keys;
      await t.step(
        "the functions see exactly this mode's key variables",
        () => {
          assert.deepEqual(
            KEY_VARIABLES.filter((name) => stack.env[name] !== undefined),
            EXPECTED_VARIABLES[mode],
          );
        },
      );

      await t.step(
        "a customer buys with the mode's client key; the webhook hands off to provisioning",
        async () => {
          const buyer = await stack.user();
          const clientKey = mode === "legacy"
            ? keys.anonKey
            : keys.publishableKey;
          const client = createClient(stack.gateway.url, clientKey, {
            auth: { persistSession: false, autoRefreshToken: false },
            global: { headers: { Authorization: `Bearer ${buyer.token}` } },
          });
          const checkout = await openCheckout(stack, {}, { ...buyer, client });
          bought = { orderId: checkout.orderId, client };
          await completeCheckout(stack, checkout.sessionId);
          await stack.idle();
          const row = await order(stack, checkout.orderId);
          assert.ok(
            ["installing", "active"].includes(row.status),
            `order is ${row.status}: ${row.error_message}`,
          );
          assert.ok(row.pterodactyl_server_id);

          assert.ok(
            recorder.calls.length >= 1,
            "servers-provision was invoked",
          );
          const handoff = recorder.calls[0];
          if (mode === "legacy") {
            assert.equal(
              handoff.get("Authorization"),
              `Bearer ${keys.serviceRoleKey}`,
            );
          } else {
            // A secret key is not a JWT: it goes in apikey, never as a bearer token.
            assert.equal(handoff.get("apikey"), keys.secretKey);
            assert.ok(!handoff.get("Authorization")?.includes(keys.secretKey));
          }
        },
      );

      await t.step(
        "plan changes and the billing portal with the mode's keys",
        async () => {
          assert.ok(bought);
          const preview = {
            order_id: bought.orderId,
            plan_id: "mc-java-8gb",
            preview: true,
          };
          const mine = await invoke(
            bought.client,
            "change-server-plan",
            preview,
          );
          assert.equal(mine.status, 200, JSON.stringify(mine.body));
          const portal = await invoke(
            bought.client,
            "create-billing-portal-session",
            { order_id: bought.orderId },
          );
          assert.equal(portal.status, 200, JSON.stringify(portal.body));
          // An admin previews any order with this mode's service key.
          const admin = await post(
            stack,
            "change-server-plan",
            JSON.stringify(preview),
            mode === "legacy"
              ? { Authorization: `Bearer ${keys.serviceRoleKey}` }
              : { apikey: keys.secretKey },
          );
          assert.equal(admin.status, 200, JSON.stringify(admin.body));
        },
      );

      await t.step("servers-provision refuses a user's token", async () => {
        const user = await stack.user();
        const res = await invoke(user.client, "servers-provision", {
          order_id: crypto.randomUUID(),
        });
        assert.equal(res.status, 403);
        assert.equal(errorCode(res.body), "forbidden");
        const withApikey = await provisionWith(stack, {
          Authorization: `Bearer ${user.token}`,
          apikey: mode === "legacy" ? keys.anonKey : keys.publishableKey,
        });
        assert.deepEqual(withApikey, { status: 403, code: "forbidden" });
      });

      await t.step(
        "servers-provision accepts this mode's service keys only",
        async () => {
          const secret = await provisionWith(stack, { apikey: keys.secretKey });
          const role = await provisionWith(stack, {
            Authorization: `Bearer ${keys.serviceRoleKey}`,
          });
          const accepted = { status: 404, code: "order_not_found" };
          const refused = { status: 403, code: "forbidden" };
          assert.deepEqual(secret, mode === "legacy" ? refused : accepted);
          assert.deepEqual(role, mode === "new" ? refused : accepted);
        },
      );
    } finally {
      recorder.restore();
      await stack.close();
    }
  });
}

Deno.test("a function without the keys it needs does not start, and says which to set", async (t) => {
  const base = {
    SUPABASE_URL: "http://127.0.0.1:1",
    SUPABASE_DB_URL: "postgres://postgres:postgres@127.0.0.1:1/postgres",
    STRIPE_SECRET_KEY: "sk_test_x",
    STRIPE_WEBHOOK_SECRET: "whsec_x",
    SITE_URL: "http://127.0.0.1:3000",
  };
  await t.step("service functions: a secret or service-role key", () => {
    for (const factory of [webhookFromEnv, provisionFromEnv]) {
      assert.throws(
        () =>
          factory({
            ...base,
            SUPABASE_ANON_KEY: "anon",
            SUPABASE_PUBLISHABLE_KEYS: '{"default":"sb_publishable_x"}',
          }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes(
            "SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY",
          ),
      );
    }
  });
  await t.step("user functions: a publishable or anon key", () => {
    for (const factory of [checkoutFromEnv, panelUserFromEnv]) {
      assert.throws(
        () =>
          factory({
            ...base,
            SUPABASE_SECRET_KEYS: '{"default":"sb_secret_x"}',
          }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes(
            "SUPABASE_PUBLISHABLE_KEYS or SUPABASE_ANON_KEY",
          ),
      );
    }
  });
  await t.step("a key map holding the wrong kind of key", () => {
    assert.throws(
      () =>
        provisionFromEnv({
          ...base,
          SUPABASE_SECRET_KEYS: '{"default":"sb_publishable_x"}',
        }),
      /SUPABASE_SECRET_KEYS: must name at least one key, each starting with sb_secret_/,
    );
  });
});

Deno.test("a secret key sent from a browser (with an Origin) is 401 secret_key_from_browser", async (t) => {
  const stack = await startTestStack();
  try {
    const origin = { Origin: String(stack.env.SITE_URL) };
    const secret = stack.keys.secretKey;
    const syncWith = async (headers: Record<string, string>) => {
      const res = await post(
        stack,
        "sync-server-status",
        JSON.stringify({ order_id: crypto.randomUUID() }),
        headers,
      );
      return { status: res.status, code: errorCode(res.body) };
    };
    const refused = { status: 401, code: "secret_key_from_browser" };
    await t.step("servers-provision, the key in apikey", async () => {
      assert.deepEqual(
        await provisionWith(stack, { apikey: secret, ...origin }),
        refused,
      );
    });
    await t.step("servers-provision, the key as a bearer token", async () => {
      assert.deepEqual(
        await provisionWith(stack, {
          Authorization: `Bearer ${secret}`,
          ...origin,
        }),
        refused,
      );
    });
    await t.step("sync-server-status's service mode", async () => {
      assert.deepEqual(await syncWith({ apikey: secret, ...origin }), refused);
    });
    await t.step("without an Origin, the same key is the service", async () => {
      const notFound = { status: 404, code: "order_not_found" };
      assert.deepEqual(
        await provisionWith(stack, { apikey: secret }),
        notFound,
      );
      assert.deepEqual(await syncWith({ apikey: secret }), notFound);
    });
    await t.step(
      "the legacy service_role JWT is not covered by the rule",
      async () => {
        assert.deepEqual(
          await provisionWith(stack, {
            Authorization: `Bearer ${stack.keys.serviceRoleKey}`,
            ...origin,
          }),
          { status: 404, code: "order_not_found" },
        );
      },
    );
    await t.step("a signed-in user's browser call is unaffected", async () => {
      const user = await stack.user();
      const res = await post(stack, "sync-server-status", "{}", {
        Authorization: `Bearer ${user.token}`,
        apikey: stack.keys.publishableKey,
        ...origin,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    });
  } finally {
    await stack.close();
  }
});
