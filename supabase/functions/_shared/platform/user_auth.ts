/**
 * Who is calling a user function: the caller's access token verified with
 * `supabase.auth.getClaims` (ES256 tokens against the project's JWKS, cached; legacy
 * HS256 ones through Auth).
 *
 * @module
 */
import { createClient } from "@supabase/supabase-js";
import { z } from "zod";
import { bearerToken } from "./auth.ts";
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
