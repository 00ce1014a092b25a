/**
 * The retry policy of provisioning, as a plain function: when to try an order again
 * after a failed attempt, or that it is time to give up and ask an operator.
 *
 * @module
 */

/** How retries space out. */
export interface RetryPolicy {
  /** Attempts before giving up (no next attempt; an operator must act). */
  maxAttempts: number;
  /** Delay after the first failure; doubles each attempt. */
  baseDelayMs: number;
  /** Longest delay between two attempts. */
  maxDelayMs: number;
}

/** 8 attempts, 30 s doubling, at most an hour apart. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 8,
  baseDelayMs: 30_000,
  maxDelayMs: 3_600_000,
};

/** What to do after failed attempt number `attempt` (1-based). */
export type RetryDecision =
  | { retry: true; at: Date; delayMs: number }
  | { retry: false };

/**
 * Decides the next attempt: exponential backoff from the policy, never sooner than a
 * throttled service asked (`retryAfterSeconds`, 0 included), or give up after the last.
 */
export function nextAttempt(
  failure: { attempt: number; retryAfterSeconds?: number; now: Date },
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): RetryDecision {
  if (failure.attempt >= policy.maxAttempts) return { retry: false };
  const backoff = Math.min(
    policy.baseDelayMs * 2 ** Math.max(0, failure.attempt - 1),
    policy.maxDelayMs,
  );
  const asked = (failure.retryAfterSeconds ?? 0) * 1000;
  const delayMs = Math.max(backoff, asked);
  return {
    retry: true,
    at: new Date(failure.now.getTime() + delayMs),
    delayMs,
  };
}
