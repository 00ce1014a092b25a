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
