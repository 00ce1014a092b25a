import assert from "node:assert/strict";
import { createLogger } from "./log.ts";

/** The lines a logger writes, parsed. */
function capture(): {
  lines: Record<string, unknown>[];
  write(line: string): void;
} {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (line) => lines.push(JSON.parse(line)) };
}

Deno.test("log lines write Date values as ISO strings, nested ones too", () => {
  const out = capture();
  const at = new Date("2026-11-30T12:34:56.789Z");
  createLogger({ fn: "test", started: at }, { write: out.write }).info(
    "dated",
    {
      at,
      order: { next_attempt_at: at, history: [at, { seen: at }] },
      invalid: new Date(Number.NaN),
    },
  );
  const [line] = out.lines;
  const iso = "2026-11-30T12:34:56.789Z";
  assert.equal(line.started, iso);
  assert.equal(line.at, iso);
  assert.deepEqual(line.order, {
    next_attempt_at: iso,
    history: [iso, { seen: iso }],
  });
  // As JSON.stringify writes an invalid date.
  assert.equal(line.invalid, null);
});

Deno.test("a Date under a secret-looking key is still redacted", () => {
  const out = capture();
  createLogger({}, { write: out.write }).info("x", {
    token_expires: new Date(0),
  });
  assert.equal(out.lines[0].token_expires, "[redacted]");
});

Deno.test("values under secret-looking keys are redacted, nested and in lists too", () => {
  const out = capture();
  const secrets = {
    authorization: "Bearer eyJhbGciOi.x.y",
    Authorization: "Basic dXNlcjpwYXNz",
    token: "tok_1",
    access_token: "tok_2",
    password: "hunter2",
    api_key: "ptla_abc",
    apiKey: "ptlc_abc",
    apikey: "sb_secret_abc",
    signature: "t=1,v1=abc",
    "Stripe-Signature": "t=2,v1=def",
    client_secret: "cs_secret",
  };
  createLogger({}, { write: out.write }).info("request", {
    ...secrets,
    headers: { ...secrets },
    attempts: [{ password: "hunter3", order_id: "o-1" }],
    order_id: "o-1",
  });
  const [line] = out.lines;
  const text = JSON.stringify(line);
  for (const [key, value] of Object.entries(secrets)) {
    assert.equal(line[key], "[redacted]", key);
    assert.equal((line.headers as Record<string, unknown>)[key], "[redacted]");
    assert.ok(!text.includes(value), `${key}: ${value} leaked`);
  }
  assert.ok(!text.includes("hunter3"));
  // Keys that only look ordinary keep their values.
  assert.equal(line.order_id, "o-1");
  assert.deepEqual(line.attempts, [{
    password: "[redacted]",
    order_id: "o-1",
  }]);
});
