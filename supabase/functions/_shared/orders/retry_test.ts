import assert from "node:assert/strict";
import { DEFAULT_RETRY_POLICY, nextAttempt } from "./retry.ts";

const now = new Date("2026-11-30T12:00:00Z");

Deno.test("nextAttempt backs off exponentially up to the cap", () => {
  const delays = [1, 2, 3, 4, 7].map((attempt) => {
    const decision = nextAttempt({ attempt, now });
    assert.ok(decision.retry);
    return decision.delayMs;
  });
  assert.deepEqual(delays, [30_000, 60_000, 120_000, 240_000, 1_920_000]);
  const capped = nextAttempt({ attempt: 12, now }, {
    ...DEFAULT_RETRY_POLICY,
    maxAttempts: 20,
  });
  assert.ok(capped.retry);
  assert.equal(capped.delayMs, 3_600_000);
});

Deno.test("nextAttempt never comes back sooner than Retry-After", () => {
  const decision = nextAttempt({ attempt: 1, retryAfterSeconds: 120, now });
  assert.ok(decision.retry);
  assert.equal(decision.delayMs, 120_000);
  assert.equal(decision.at.toISOString(), "2026-11-30T12:02:00.000Z");
});

Deno.test("nextAttempt gives up after the last attempt", () => {
  assert.deepEqual(nextAttempt({ attempt: 8, now }), { retry: false });
  assert.deepEqual(
    nextAttempt({ attempt: 3, now }, {
      ...DEFAULT_RETRY_POLICY,
      maxAttempts: 3,
    }),
    { retry: false },
  );
  assert.ok(nextAttempt({ attempt: 7, now }).retry);
});
