/**
 * Credential-shaped strings removed from text the shop stores or sends on (order
 * messages, the timeline, alerts). An upstream error may echo the key it was sent; the
 * logger redacts the configured values, and this catches them by shape wherever the
 * text goes next.
 *
 * @module
 */

const CREDENTIALS: RegExp[] = [
  // Stripe secret, restricted and webhook keys.
  /\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+/g,
  /\bwhsec_[A-Za-z0-9]+/g,
  // Pterodactyl application and client keys.
  /\bptl[ac]_[A-Za-z0-9]+/g,
  // Supabase secret keys and JWTs (service_role and user tokens alike).
  /\bsb_secret_[A-Za-z0-9_-]+/g,
  /\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g,
];

/** Database URLs keep their host but lose the password. */
const URL_PASSWORD = /\b(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/g;

/** `text` with every credential-shaped part replaced by `[redacted]`. */
export function scrubSecrets(text: string): string {
  return CREDENTIALS.reduce(
    (out, pattern) => out.replace(pattern, "[redacted]"),
    text.replace(URL_PASSWORD, "$1[redacted]@"),
  );
}

/** A JSON-safe value of the same shape with every string in it scrubbed. */
export function scrubValue<T>(value: T): T {
  return scrub(value) as T;
}

function scrub(value: unknown): unknown {
  if (typeof value === "string") return scrubSecrets(value);
  if (Array.isArray(value)) return value.map(scrub);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, scrub(item)]),
    );
  }
  return value;
}
