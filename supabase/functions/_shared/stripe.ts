/**
 * The Stripe client: the real SDK with its pinned API version, using fetch (the only
 * HTTP client that works in Deno) and pointed at STRIPE_API_BASE when it is set.
 *
 * @module
 */
import Stripe from "stripe";

/** Creates the Stripe client. */
export function createStripe(secretKey: string, apiBase?: string): Stripe {
  const base = apiBase ? new URL(apiBase) : undefined;
  return new Stripe(secretKey, {
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: 2,
    timeout: 20_000,
    ...(base
      ? {
        host: base.hostname,
        port: Number(base.port || (base.protocol === "https:" ? 443 : 80)),
        protocol: base.protocol === "https:" ? "https" : "http",
      }
      : {}),
  });
}

/** Crypto for webhook signatures in Deno (constructEventAsync needs SubtleCrypto). */
export const stripeCrypto = Stripe.createSubtleCryptoProvider();

export { Stripe };

/**
 * Whether a failed Stripe call may succeed if tried again: no answer (network,
 * timeout), 409 (a lock held by another request), 429 or 5xx. Any other 4xx answer
 * (invalid request, no such object, authentication, permission) is final.
 */
export function isTemporaryStripeError(error: unknown): boolean {
  if (!(error instanceof Stripe.errors.StripeError)) return false;
  if (error instanceof Stripe.errors.StripeConnectionError) return true;
  const status = error.statusCode;
  return status === undefined || status === 409 || status === 429 ||
    status >= 500;
}
