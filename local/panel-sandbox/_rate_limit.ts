/**
 * A rolling one-minute request window per API key, like the panel's
 * `throttle:api.application` limiter.
 *
 * @module
 */

/** Request times per key. */
export type RateWindows = Map<string, number[]>;

/** The limiter's verdict and the headers the panel sends with it. */
export interface RateVerdict {
  allowed: boolean;
  headers: Record<string, string>;
}

const WINDOW_MS = 60_000;

/** Counts one request for the key unless the window is full. */
export function hitRateLimit(
  windows: RateWindows,
  key: string,
  limit: number,
  at: number = Date.now(),
): RateVerdict {
  const hits = (windows.get(key) ?? []).filter((t) => t > at - WINDOW_MS);
  windows.set(key, hits);
  if (hits.length >= limit) {
    const retryAfter = Math.max(
      1,
      Math.ceil((hits[0] + WINDOW_MS - at) / 1000),
    );
    return {
      allowed: false,
      headers: {
        "X-RateLimit-Limit": String(limit),
        "X-RateLimit-Remaining": "0",
        "Retry-After": String(retryAfter),
        "X-RateLimit-Reset": String(Math.ceil(at / 1000) + retryAfter),
      },
    };
  }
  hits.push(at);
  return {
    allowed: true,
    headers: {
      "X-RateLimit-Limit": String(limit),
      "X-RateLimit-Remaining": String(limit - hits.length),
    },
  };
}
