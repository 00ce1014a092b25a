/**
 * The local stack's signing key and API keys, shaped like a Supabase project's: an
 * ES256 key (served as JWKS) that signs the legacy `anon` / `service_role` JWT keys and
 * user access tokens, plus `sb_publishable_…` / `sb_secret_…` keys.
 *
 * @module
 */
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";

/** Everything a local project needs to issue and check credentials. */
export interface LocalKeys {
  privateJwk: JWK;
  publicJwk: JWK;
  anonKey: string;
  serviceRoleKey: string;
  publishableKey: string;
  secretKey: string;
  stripeSecretKey: string;
  /** the signing secret of the stack's Stripe webhook endpoint (see `webhook_endpoint.ts`) */
  stripeWebhookSecret: string;
  /** that endpoint's id, once registered: the secret above is its own */
  stripeWebhookEndpointId?: string;
  panelApiKey: string;
  panelClientKey: string;
}

const TEN_YEARS_S = 10 * 365 * 24 * 3600;

function randomToken(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Signs a JWT with the local key (ES256, with its `kid`). */
export async function signJwt(
  keys: Pick<LocalKeys, "privateJwk">,
  claims: Record<string, unknown>,
): Promise<string> {
  const key = await importJWK(keys.privateJwk, "ES256");
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: keys.privateJwk.kid })
    .sign(key);
}

/** Makes a new key set. */
export async function generateLocalKeys(): Promise<LocalKeys> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", {
    extractable: true,
  });
  const kid = crypto.randomUUID();
  const privateJwk = {
    ...(await exportJWK(privateKey)),
    kid,
    alg: "ES256",
    use: "sig",
  };
  const publicJwk = {
    ...(await exportJWK(publicKey)),
    kid,
    alg: "ES256",
    use: "sig",
  };
  const iat = Math.floor(Date.now() / 1000);
  const apiKey = (role: string) =>
    signJwt({ privateJwk }, {
      iss: "supabase-local",
      ref: "local",
      role,
      iat,
      exp: iat + TEN_YEARS_S,
    });
  return {
    privateJwk,
    publicJwk,
    anonKey: await apiKey("anon"),
    serviceRoleKey: await apiKey("service_role"),
    publishableKey: `sb_publishable_${randomToken(16)}`,
    secretKey: `sb_secret_${randomToken(16)}`,
    stripeSecretKey: `sk_test_local${randomToken(20)}`,
    stripeWebhookSecret: `whsec_${randomToken(24)}`,
    panelApiKey: `ptla_${randomToken(20)}`,
    panelClientKey: `ptlc_${randomToken(20)}`,
  };
}

/** Reads the key set kept in `path`, creating it on first use. */
export async function loadOrCreateKeys(path: string): Promise<LocalKeys> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as LocalKeys;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const keys = await generateLocalKeys();
  await saveKeys(path, keys);
  return keys;
}

/** Writes a key set to `path` (readable by its owner only). */
export async function saveKeys(path: string, keys: LocalKeys): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(keys, null, 2), {
    mode: 0o600,
  });
}

/** An access token for a user, with the claims Supabase Auth puts in one. */
export async function userAccessToken(
  keys: Pick<LocalKeys, "privateJwk">,
  options: {
    supabaseUrl: string;
    userId: string;
    email: string;
    ttlSeconds?: number;
  },
): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return await signJwt(keys, {
    iss: `${options.supabaseUrl}/auth/v1`,
    aud: "authenticated",
    exp: iat + (options.ttlSeconds ?? 3600),
    iat,
    sub: options.userId,
    email: options.email,
    phone: "",
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: {},
    role: "authenticated",
    aal: "aal1",
    amr: [{ method: "password", timestamp: iat }],
    session_id: crypto.randomUUID(),
    is_anonymous: false,
  });
}
