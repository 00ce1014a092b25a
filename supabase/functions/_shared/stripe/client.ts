/**
 * The Stripe client: the real SDK with its pinned API version, using fetch (the only
 * HTTP client that works in Deno) and pointed at STRIPE_API_BASE when it is set.
 *
 * @module
 */
import Stripe from "stripe";

/** Creates the Stripe client (`options`: a shorter timeout, fewer retries). */
export function createStripe(
  secretKey: string,
  apiBase?: string,
  options: { timeoutMs?: number; retries?: number } = {},
): Stripe {
  const base = apiBase ? new URL(apiBase) : undefined;
  return new Stripe(secretKey, {
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: options.retries ?? 2,
    timeout: options.timeoutMs ?? 20_000,
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

/**
 * Checks a webhook's `Stripe-Signature` against its raw body with the SDK's own check
 * (Stripe's scheme and tolerance), without parsing the body: the caller parses it once.
 * Throws `Stripe.errors.StripeSignatureVerificationError` when it does not match.
 */
export async function verifyStripeSignature(
  stripe: Stripe,
  body: string,
  header: string,
  secret: string,
): Promise<void> {
  const signature = stripe.webhooks.signature;
  if (!signature) throw new Error("The Stripe SDK has no signature check");
  await signature.verifyHeaderAsync(
    body,
    header,
    secret,
    undefined,
    stripeCrypto,
  );
}

/**
 * The largest webhook body the shop reads: 1 MiB. A Stripe event carries one API object
 * whose embedded lists stop at their first page (10 items) and whose metadata is capped
 * (50 keys of 500 characters), so real events weigh a few KB to a few tens of KB; 1 MiB
 * keeps a wide margin above that while an unsigned 10 MB post is refused unread.
 */
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;

/**
 * Whether a `Stripe-Signature` header has the shape Stripe sends,
 * `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`: a timestamp and at least one v1
 * signature. Only the shape: the signature itself is checked on the body.
 */
export function isStripeSignatureHeader(header: string): boolean {
  const parts = header.split(",").map((part) => part.trim());
  return parts.some((part) => /^t=\d+$/.test(part)) &&
    parts.some((part) => /^v1=[0-9a-f]+$/i.test(part));
}

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
