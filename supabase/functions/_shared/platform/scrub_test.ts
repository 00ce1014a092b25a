import assert from "node:assert/strict";
import { scrubSecrets, scrubValue } from "./scrub.ts";

Deno.test("scrubSecrets removes every kind of key the shop holds", () => {
  const text = [
    "Invalid API Key provided: sk_test_local0123abcdEF",
    "rk_live_ZZ9 whsec_abc123 ptla_0011aa ptlc_ffee99",
    "apikey sb_secret_abc-DEF_123",
    "Bearer eyJhbGciOiJFUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl",
    "postgres://postgres:hunter2@db.example.com:6543/postgres",
  ].join("\n");
  const scrubbed = scrubSecrets(text);
  for (
    const secret of [
      "sk_test_local0123abcdEF",
      "rk_live_ZZ9",
      "whsec_abc123",
      "ptla_0011aa",
      "ptlc_ffee99",
      "sb_secret_abc-DEF_123",
      "eyJhbGciOiJFUzI1NiJ9",
      "hunter2",
    ]
  ) assert.ok(!scrubbed.includes(secret), secret);
  assert.match(scrubbed, /postgres:\/\/postgres:\[redacted\]@db\.example\.com/);
  assert.match(scrubbed, /Invalid API Key provided: \[redacted\]/);
});

Deno.test("scrubSecrets leaves ordinary words, ids and publishable keys alone", () => {
  const text =
    "order 3f1c plan mc-java-4gb cs_test_a1 sub_123 cus_9 sb_publishable_x pk_test_1 skill_test";
  assert.equal(scrubSecrets(text), text);
});

Deno.test("scrubValue scrubs nested strings and keeps other values", () => {
  assert.deepEqual(
    scrubValue({ a: ["ptla_1a", 2, null], b: { c: "ok", d: true } }),
    { a: ["[redacted]", 2, null], b: { c: "ok", d: true } },
  );
});
