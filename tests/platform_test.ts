import assert from "node:assert/strict";
import { FUNCTIONS } from "../local/functions.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { startTestStack } from "./_stack.ts";

// What supabase-js (functions.invoke, postgrest retries, trace propagation) sends,
// written out independently of the code under test.
const SUPABASE_JS_HEADERS = [
  "authorization",
  "x-client-info",
  "apikey",
  "content-type",
  "x-retry-count",
  "traceparent",
  "tracestate",
  "baggage",
  "x-region",
];

Deno.test("a preflight from the storefront passes for every header supabase-js sends", async (t) => {
  const stack = await startTestStack();
  try {
    const origin = String(stack.env.SITE_URL);
    for (const name of Object.keys(FUNCTIONS)) {
      await t.step(name, async () => {
        for (const header of SUPABASE_JS_HEADERS) {
          const res = await fetch(
            `${stack.gateway.url}/functions/v1/${name}`,
            {
              method: "OPTIONS",
              headers: {
                Origin: origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": header,
              },
            },
          );
          await res.body?.cancel();
          assert.ok(res.ok, `${header}: ${res.status}`);
          const allowOrigin = res.headers.get("Access-Control-Allow-Origin");
          assert.ok(allowOrigin === "*" || allowOrigin === origin);
          const allowed =
            (res.headers.get("Access-Control-Allow-Headers") ?? "")
              .split(",").map((h) => h.trim().toLowerCase());
          assert.ok(allowed.includes(header), `${name} allows ${header}`);
          assert.match(
            res.headers.get("Access-Control-Allow-Methods") ?? "",
            /\bPOST\b/,
          );
        }
      });
    }
  } finally {
    await stack.close();
  }
});

Deno.test("log lines reach the console method of their level", () => {
  const seen: [string, string][] = [];
  const original = {
    log: console.log,
    warn: console.warn,
    error: console.error,
  };
  console.log = (line: string) => seen.push(["log", line]);
  console.warn = (line: string) => seen.push(["warn", line]);
  console.error = (line: string) => seen.push(["error", line]);
  try {
    const log = createLogger({ fn: "test" }).child({ order_id: "o1" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
  } finally {
    Object.assign(console, original);
  }
  assert.deepEqual(
    seen.map(([method, line]) => {
      const parsed = JSON.parse(line);
      return [method, parsed.level, parsed.msg, parsed.order_id];
    }),
    [
      ["log", "debug", "d", "o1"],
      ["log", "info", "i", "o1"],
      ["warn", "warn", "w", "o1"],
      ["error", "error", "e", "o1"],
    ],
  );
});
