import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import { FUNCTIONS, readVerifyJwt } from "../local/functions.ts";
import { FUNCTIONS as SERVICE_FUNCTIONS } from "../supabase/functions/_shared/manifest.ts";
import { signJwt, userAccessToken } from "../local/keys.ts";
import { postAsUser } from "../local/token.ts";
import { errorCode, footprint, post } from "./_fixtures.ts";
import { startTestStack } from "./_stack.ts";

const USER_FUNCTIONS = ["create-checkout-session", "create-pterodactyl-user"];

function base64url(value: unknown): string {
  return btoa(typeof value === "string" ? value : JSON.stringify(value))
    .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("config.toml turns the gateway's JWT check off for every function", async () => {
  const settings = await readVerifyJwt();
  for (const name of Object.keys(FUNCTIONS)) {
    assert.equal(settings.get(name), false, name);
  }
});

Deno.test("a bad token sent straight to a user function gets the function's own 401", async (t) => {
  const stack = await startTestStack();
  try {
    const user = await stack.user();
    const kid = String(stack.keys.privateJwk.kid);
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: `${stack.gateway.url}/auth/v1`,
      aud: "authenticated",
      sub: user.id,
      email: user.email,
      role: "authenticated",
      iat: now,
      exp: now + 3600,
    };
    const other = await generateKeyPair("ES256", { extractable: true });
    const [header, , signature] = user.token.split(".");
    const tokens: Record<string, string> = {
      expired: await userAccessToken(stack.keys, {
        supabaseUrl: stack.gateway.url,
        userId: user.id,
        email: user.email,
        ttlSeconds: -60,
      }),
      "signed by another key under the project's kid": await new SignJWT(
        claims,
      )
        .setProtectedHeader({ alg: "ES256", typ: "JWT", kid })
        .sign(other.privateKey),
      "claims edited after signing": `${header}.${
        base64url({ ...claims, sub: crypto.randomUUID() })
      }.${signature}`,
      "alg none under the project's kid": `${
        base64url({ alg: "none", typ: "JWT", kid })
      }.${base64url(claims)}.`,
      "alg none without a kid": `${base64url({ alg: "none", typ: "JWT" })}.${
        base64url(claims)
      }.`,
      "HS256 signed with the anon key": await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .sign(new TextEncoder().encode(stack.keys.anonKey)),
      "RS256 header over an EC key": `${
        base64url({ alg: "RS256", typ: "JWT", kid })
      }.${base64url(claims)}.${signature}`,
      "a header that is not JSON": `${base64url("not json")}.${
        base64url(claims)
      }.${signature}`,
      "the public key as a token": base64url(
        await exportJWK(await importJWK(stack.keys.publicJwk, "ES256")),
      ),
    };
    const [{ before }] = await stack.sql`
      select (select count(*) from public.orders)::int
        + (select count(*) from public.external_accounts)::int as before`;
    for (const name of USER_FUNCTIONS) {
      for (const [label, token] of Object.entries(tokens)) {
        await t.step(`${name}: ${label}`, async () => {
          const res = await postAsUser(
            `${stack.gateway.url}/functions/v1/${name}`,
            { token, publishableKey: stack.keys.publishableKey },
            {
              plan_id: "mc-java-4gb",
              term: "monthly",
              region: "eu-west",
              server_name: "Forged",
            },
          );
          assert.equal(res.status, 401);
          assert.match(res.headers.get("Content-Type") ?? "", /json/);
          // The function's own error shape: the gateway no longer answers for it.
          const body = await res.json();
          assert.equal(body.error?.code, "unauthorized", JSON.stringify(body));
        });
      }
    }
    await t.step("nothing was written", async () => {
      const [{ after }] = await stack.sql`
        select (select count(*) from public.orders)::int
          + (select count(*) from public.external_accounts)::int as after`;
      assert.equal(after, before);
    });
  } finally {
    await stack.close();
  }
});

Deno.test("a token of another issuer or audience, or without a subject, is 401", async (t) => {
  const stack = await startTestStack();
  try {
    const user = await stack.user();
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: `${stack.gateway.url}/auth/v1`,
      aud: "authenticated",
      sub: user.id,
      email: user.email,
      role: "authenticated",
      iat: now,
      exp: now + 3600,
    };
    /** A token signed with the project's own key over `claims` changed by `edit`. */
    const signed = (edit: Record<string, unknown>, drop?: string) =>
      signJwt(
        stack.keys,
        Object.fromEntries(
          Object.entries({ ...claims, ...edit }).filter(([name]) =>
            name !== drop
          ),
        ),
      );
    const tokens: Record<string, string> = {
      "another project's issuer": await signed({
        iss: "https://another-project.supabase.co/auth/v1",
      }),
      "the project's URL without /auth/v1 as issuer": await signed({
        iss: stack.gateway.url,
      }),
      "no issuer": await signed({}, "iss"),
      "another audience": await signed({ aud: "other-app" }),
      "a list of audiences without authenticated": await signed({
        aud: ["other-app"],
      }),
      "no audience": await signed({}, "aud"),
      "no subject": await signed({}, "sub"),
    };
    const headers = (token: string) => ({
      Authorization: `Bearer ${token}`,
      apikey: stack.keys.publishableKey,
    });
    const before = await footprint(stack);
    for (const name of [...USER_FUNCTIONS, "sync-server-status"]) {
      for (const [label, token] of Object.entries(tokens)) {
        await t.step(`${name}: ${label}`, async () => {
          const res = await post(stack, name, "{}", headers(token));
          assert.equal(res.status, 401, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "unauthorized");
        });
      }
    }
    await t.step("nothing was written", async () => {
      assert.deepEqual(await footprint(stack), before);
    });
    await t.step(
      "the stack's own tokens, and a list of audiences holding authenticated, pass",
      async () => {
        for (
          const token of [
            user.token,
            await signed({ aud: ["other-app", "authenticated"] }),
          ]
        ) {
          const res = await post(
            stack,
            "sync-server-status",
            "{}",
            headers(token),
          );
          assert.equal(res.status, 200, JSON.stringify(res.body));
        }
      },
    );
  } finally {
    await stack.close();
  }
});

Deno.test("a service-only function refuses service claims under a forged signature", async (t) => {
  const stack = await startTestStack();
  try {
    const [header, payload] = stack.keys.serviceRoleKey.split(".");
    const claims = JSON.parse(
      atob(payload.replaceAll("-", "+").replaceAll("_", "/")),
    );
    const other = await generateKeyPair("ES256", { extractable: true });
    const kid = String(stack.keys.privateJwk.kid);
    const tokens: Record<string, string> = {
      "the service_role key's claims signed by another key": await new SignJWT(
        claims,
      ).setProtectedHeader({ alg: "ES256", typ: "JWT", kid }).sign(
        other.privateKey,
      ),
      "the service_role key with its signature replaced":
        `${header}.${payload}.${base64url("not the signature")}`,
      "the service_role key without a signature": `${header}.${payload}.`,
      "service claims under alg none": `${
        base64url({ alg: "none", typ: "JWT" })
      }.${payload}.`,
      "service claims HS256-signed with the anon key": await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .sign(new TextEncoder().encode(stack.keys.anonKey)),
    };
    const service = Object.entries(SERVICE_FUNCTIONS).filter(([, f]) =>
      f.caller === "service"
    ).map(([name]) => name);
    assert.ok(service.includes("servers-provision"));
    const orderId = crypto.randomUUID();
    const before = await footprint(stack);
    stack.panel.resetCalls();
    for (const name of service) {
      for (const [label, token] of Object.entries(tokens)) {
        await t.step(`${name}: ${label}`, async () => {
          const variants: Record<string, string>[] = [
            { Authorization: `Bearer ${token}` },
            { Authorization: `Bearer ${token}`, apikey: token },
          ];
          for (const headers of variants) {
            const res = await post(
              stack,
              name,
              JSON.stringify({ order_id: orderId, query: orderId }),
              headers,
            );
            assert.equal(res.status, 403, JSON.stringify(res.body));
            assert.equal(errorCode(res.body), "forbidden");
          }
        });
      }
    }
    await t.step(
      "nothing was written and the panel was not called",
      async () => {
        assert.deepEqual(await footprint(stack), before);
        assert.deepEqual(stack.panel.calls(), []);
      },
    );
  } finally {
    await stack.close();
  }
});
