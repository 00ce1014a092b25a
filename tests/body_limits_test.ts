import assert from "node:assert/strict";
import { z } from "zod";
import { FUNCTIONS } from "../local/functions.ts";
import { HttpError } from "../supabase/functions/_shared/platform/errors.ts";
import {
  JSON_BODY_LIMIT,
  readBody,
  readJson,
} from "../supabase/functions/_shared/platform/http.ts";
import { WEBHOOK_BODY_LIMIT } from "../supabase/functions/_shared/stripe/client.ts";
import {
  type CountedBody,
  countedBody,
  errorCode,
  footprint,
  MALFORMED_BODIES,
  rawPost,
} from "./_fixtures.ts";
import { startTestStack } from "./_stack.ts";

const CHUNK = 4096;

/** A POST request carrying `body`, in process (no HTTP in between). */
function request(
  body: CountedBody | string | undefined,
  headers: Record<string, string> = {},
): Request {
  return new Request("http://127.0.0.1/fn", {
    method: "POST",
    headers,
    body: typeof body === "object" ? body.stream : body,
  });
}

/** The HttpError a promise is rejected with. */
async function refusal(promise: Promise<unknown>): Promise<HttpError> {
  const error = await promise.then(() => null, (error) => error);
  assert.ok(error instanceof HttpError, `expected an HttpError: ${error}`);
  return error;
}

Deno.test("readBody refuses a body over its limit without reading the rest", async (t) => {
  await t.step(
    "a declared Content-Length over the limit: 413 before reading anything",
    async () => {
      const body = countedBody({ total: 64 * CHUNK, chunk: CHUNK });
      const error = await refusal(
        readBody(request(body, { "Content-Length": "10000000" }), 1024),
      );
      assert.equal(error.status, 413);
      assert.equal(error.code, "payload_too_large");
      assert.equal(body.pulled(), 0);
      assert.ok(body.cancelled());
    },
  );

  await t.step(
    "no Content-Length: 413 at the chunk passing the limit, then cancelled",
    async () => {
      const body = countedBody({ total: 64 * CHUNK, chunk: CHUNK });
      const limit = 10 * CHUNK;
      const error = await refusal(readBody(request(body), limit));
      assert.equal(error.status, 413);
      assert.equal(error.code, "payload_too_large");
      assert.equal(body.pulled(), limit + CHUNK);
      assert.ok(body.cancelled());
    },
  );

  await t.step("a body of exactly the limit is read whole", async () => {
    const body = countedBody({ total: 3 * CHUNK, chunk: CHUNK });
    assert.equal((await readBody(request(body), 3 * CHUNK)).length, 3 * CHUNK);
    assert.ok(!body.cancelled());
  });

  await t.step(
    "UTF-8 split across chunks decodes as req.text() does",
    async () => {
      const text = '\uFEFF{"name":"Überwelt ✓"}';
      const bytes = new TextEncoder().encode(text);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 3) {
            controller.enqueue(bytes.slice(i, i + 3));
          }
          controller.close();
        },
      });
      const req = new Request("http://127.0.0.1/fn", {
        method: "POST",
        body: stream,
      });
      assert.equal(
        await readBody(req, 1024),
        await new Response(text).text(),
      );
    },
  );
});

Deno.test("readJson reads at most its limit and answers as before", async (t) => {
  const Schema = z.strictObject({ order_id: z.uuid().optional() });

  await t.step("over the default limit: 413 payload_too_large", async () => {
    const body = countedBody({ total: 4 * JSON_BODY_LIMIT, chunk: CHUNK });
    const error = await refusal(readJson(request(body), Schema));
    assert.equal(error.status, 413);
    assert.equal(error.code, "payload_too_large");
    assert.equal(body.pulled(), JSON_BODY_LIMIT + CHUNK);
  });

  await t.step("an empty body: invalid_json, or {} when optional", async () => {
    assert.equal(
      (await refusal(readJson(request(undefined), Schema))).code,
      "invalid_json",
    );
    assert.deepEqual(
      await readJson(request(undefined), Schema, { optional: true }),
      {},
    );
    assert.deepEqual(
      await readJson(request(" \n"), Schema, { optional: true }),
      {},
    );
  });

  await t.step(
    "malformed bodies: 400 invalid_request, or invalid_json when not JSON",
    async () => {
      for (
        const [body, code] of MALFORMED_BODIES
      ) {
        const error = await refusal(
          readJson(request(body), Schema, { optional: true }),
        );
        assert.deepEqual([error.status, error.code], [400, code], body);
      }
    },
  );
});

/** A Stripe-Signature header of the right shape (not a valid signature). */
function wellFormedSignature(): string {
  return `t=${Math.floor(Date.now() / 1000)},v1=${"ab".repeat(32)}`;
}

Deno.test("every function refuses an oversized body with 413 and writes nothing", async (t) => {
  const stack = await startTestStack();
  try {
    const user = await stack.user();
    const asUser = {
      Authorization: `Bearer ${user.token}`,
      apikey: stack.keys.publishableKey,
    };
    const asService = { apikey: stack.keys.secretKey };
    const callers: [string, string, Record<string, string>][] = [
      ["create-checkout-session", "create-checkout-session", asUser],
      ["create-pterodactyl-user", "create-pterodactyl-user", asUser],
      ["sync-server-status as a user", "sync-server-status", asUser],
      ["sync-server-status as the service", "sync-server-status", asService],
      ["servers-provision", "servers-provision", asService],
      ["stripe-webhook", "stripe-webhook", {
        "Stripe-Signature": wellFormedSignature(),
      }],
    ];
    // Over every function's limit, the webhook's included.
    const size = 2 * WEBHOOK_BODY_LIMIT;
    const before = await footprint(stack);
    for (const [label, fn, headers] of callers) {
      await t.step(`${label}: a Content-Length over the limit`, async () => {
        const res = await rawPost(
          stack,
          fn,
          countedBody({ total: size }).stream,
          {
            ...headers,
            "Content-Length": String(size),
          },
        );
        assert.equal(res.status, 413, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "payload_too_large");
      });
      await t.step(
        `${label}: a chunked body without Content-Length`,
        async () => {
          const body = countedBody({ total: 4 * size });
          const res = await rawPost(stack, fn, body.stream, headers);
          assert.equal(res.status, 413, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "payload_too_large");
        },
      );
    }
    await t.step("nothing was written", async () => {
      assert.deepEqual(await footprint(stack), before);
    });
  } finally {
    await stack.close();
  }
});

Deno.test("stripe-webhook refuses a missing or malformed Stripe-Signature before reading the body", async (t) => {
  const stack = await startTestStack();
  // The function in process, so what it pulls from the body is counted exactly.
  const webhook = FUNCTIONS["stripe-webhook"](stack.env, { write: () => {} });
  try {
    const before = await footprint(stack);
    const hex = "ab".repeat(32);
    const headers: [string, string | null][] = [
      ["no header", null],
      ["an empty header", ""],
      ["not key=value pairs", "garbage"],
      ["no timestamp", `v1=${hex}`],
      ["a timestamp that is not digits", `t=soon,v1=${hex}`],
      ["no v1 signature", `t=1700000000,v0=${hex}`],
      ["a v1 signature that is not hex", "t=1700000000,v1=not-hex"],
    ];
    for (const [label, header] of headers) {
      await t.step(
        `${label}: 400 invalid_signature, nothing read`,
        async () => {
          // Counted: a read of any of it shows (and, finite, fails cleanly).
          const body = countedBody({ total: 2 * WEBHOOK_BODY_LIMIT });
          const res = await webhook.handler(
            request(
              body,
              header === null ? {} : { "Stripe-Signature": header },
            ),
          );
          const reply = await res.json();
          assert.equal(res.status, 400, JSON.stringify(reply));
          assert.equal(errorCode(reply), "invalid_signature");
          assert.equal(body.pulled(), 0);
        },
      );
    }
    await t.step(
      "a well-formed header: the body is read, and refused once past 1 MiB",
      async () => {
        const body = countedBody({ total: 4 * WEBHOOK_BODY_LIMIT });
        const res = await webhook.handler(
          request(body, { "Stripe-Signature": wellFormedSignature() }),
        );
        const reply = await res.json();
        assert.equal(res.status, 413, JSON.stringify(reply));
        assert.equal(errorCode(reply), "payload_too_large");
        assert.ok(body.pulled() > WEBHOOK_BODY_LIMIT, String(body.pulled()));
        assert.ok(
          body.pulled() <= WEBHOOK_BODY_LIMIT + 64 * 1024,
          String(body.pulled()),
        );
        assert.ok(body.cancelled());
      },
    );
    await t.step("nothing was written", async () => {
      assert.deepEqual(await footprint(stack), before);
    });
  } finally {
    await webhook.close();
    await stack.close();
  }
});
