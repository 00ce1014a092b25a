/**
 * Who is calling a service-only function: the service-role JWT as a bearer token or a
 * secret key (`sb_secret_…`) in the `apikey` header; users are refused. Users are
 * verified in `user_auth.ts` (it loads supabase-js, which a service-only function does
 * not need).
 *
 * @module
 */
import type { SupabaseEnv } from "./config.ts";
import { HttpError } from "./errors.ts";

/** The bearer token of a request, if any. */
export function bearerToken(req: Request): string | null {
  const header = req.headers.get("Authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : null;
}

function sameSecret(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  }
  return diff === 0;
}

/** Which credentials prove a service caller (whichever the project has). */
export interface ServiceCredentials {
  /** The legacy service-role JWT, accepted as a bearer token. */
  serviceRoleKey?: string;
  /** Secret keys (`sb_secret_…`), accepted in `apikey` or as a bearer token. */
  secretKeys?: string[];
}

/** The service credentials configured in the platform's variables. */
export function serviceCredentials(env: SupabaseEnv): ServiceCredentials {
  return {
    serviceRoleKey: env.SUPABASE_SERVICE_ROLE_KEY,
    secretKeys: env.SUPABASE_SECRET_KEYS,
  };
}

/**
 * Whether the request carries service credentials. A secret key (`sb_secret_…`) sent
 * from a browser (with an `Origin` header) is refused with 401
 * `secret_key_from_browser`, as the hosted platform refuses it: a secret key in a page
 * is a leaked key. The legacy service-role JWT is not covered by that rule.
 */
export function isServiceRequest(
  req: Request,
  credentials: ServiceCredentials,
): boolean {
  const token = bearerToken(req);
  const apikey = req.headers.get("apikey");
  const secrets = credentials.secretKeys ?? [];
  const role = credentials.serviceRoleKey;
  const secretKey =
    (token !== null && secrets.some((key) => sameSecret(token, key))) ||
    (apikey !== null && secrets.some((key) => sameSecret(apikey, key)));
  if (secretKey && req.headers.has("Origin")) {
    throw new HttpError(
      401,
      "secret_key_from_browser",
      "Secret API keys cannot be used from a browser (the request has an Origin header)",
    );
  }
  return secretKey ||
    (token !== null && role !== undefined && sameSecret(token, role));
}

/**
 * Requires service credentials: none at all is 401, a secret key from a browser 401
 * `secret_key_from_browser`, anything else (a user's token, the anon key) is 403.
 */
export function requireService(
  req: Request,
  credentials: ServiceCredentials,
): void {
  if (isServiceRequest(req, credentials)) return;
  const presented = bearerToken(req) !== null || req.headers.has("apikey");
  if (!presented) {
    throw new HttpError(401, "unauthorized", "Missing service credentials");
  }
  throw new HttpError(
    403,
    "forbidden",
    "This function is for the service role only",
  );
}
