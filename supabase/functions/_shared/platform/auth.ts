/**
 * Who is calling. User functions verify the caller's access token with
 * `supabase.auth.getClaims` (ES256 tokens against the project's JWKS, cached; legacy
 * HS256 ones through Auth). Service-only functions accept the service-role JWT as a
 * bearer token or a secret key (`sb_secret_…`) in the `apikey` header, and refuse users.
 *
 * @module
 */
import { createClient } from "@supabase/supabase-js";
import { z } from "zod";
import type { SupabaseEnv } from "./config.ts";
import { HttpError } from "./errors.ts";

/** A signed-in customer. */
export interface AuthUser {
  id: string;
  email: string | null;
}

/** Verifies the bearer token of a request and answers its user. */
export type UserVerifier = (req: Request) => Promise<AuthUser>;

/**
 * The claims of an access token Supabase Auth issued to a signed-in user of the project
 * whose Auth issues as `issuer`: audience `authenticated` (a string or a list holding
 * it), the project's own issuer and a subject.
 */
function userClaims(issuer: string) {
  return z.object({
    iss: z.literal(issuer),
    aud: z.union([
      z.literal("authenticated"),
      z.array(z.string()).refine((aud) => aud.includes("authenticated"), {
        message: "must include authenticated",
      }),
    ]),
    sub: z.uuid(),
    role: z.literal("authenticated"),
    email: z.string().optional(),
  });
}

/** The bearer token of a request, if any. */
export function bearerToken(req: Request): string | null {
  const header = req.headers.get("Authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : null;
}

/**
 * A verifier for user access tokens issued by the project at `supabaseUrl`;
 * `clientKey` is its publishable key or legacy anon key.
 */
export function createUserVerifier(
  supabaseUrl: string,
  clientKey: string,
): UserVerifier {
  const supabase = createClient(supabaseUrl, clientKey, {
    auth: {
      persistSession: false,
      autoRefreshToken: false,
      detectSessionInUrl: false,
    },
  });
  const UserClaims = userClaims(`${supabaseUrl.replace(/\/+$/, "")}/auth/v1`);
  return async (req) => {
    const token = bearerToken(req);
    if (!token) {
      throw new HttpError(401, "unauthorized", "Missing bearer token");
    }
    // With verify_jwt = false this is the only check. getClaims throws (rather than
    // answering an error) on some malformed tokens, e.g. `alg: none` or a header that
    // is not JSON: those are bad credentials too, never a 500.
    const verified = await supabase.auth.getClaims(token).catch(() => null);
    if (!verified || verified.error || !verified.data) {
      throw new HttpError(
        401,
        "unauthorized",
        "Invalid or expired access token",
      );
    }
    const { data } = verified;
    const claims = UserClaims.safeParse(data.claims);
    if (!claims.success) {
      throw new HttpError(
        401,
        "unauthorized",
        "A signed-in user's access token is required",
      );
    }
    return { id: claims.data.sub, email: claims.data.email ?? null };
  };
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
