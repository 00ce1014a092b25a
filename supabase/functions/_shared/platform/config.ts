/**
 * Environment parsing. Every function parses the variables it needs once, at start-up,
 * with zod; a missing or malformed one stops start-up with an error naming it.
 *
 * @module
 */
import { z } from "zod";
import { ConfigError } from "./errors.ts";

/** The environment as a plain map (`Deno.env.toObject()` or the gateway's). */
export type Env = Record<string, string | undefined>;

const url = z.url({ protocol: /^https?$/ });
const nonEmpty = z.string().min(1);

/** JSON map of named keys, as in SUPABASE_SECRET_KEYS / SUPABASE_PUBLISHABLE_KEYS. */
const keyMap = (prefix: string) =>
  z.string().transform((text, ctx) => {
    let parsed: Record<string, string>;
    try {
      parsed = z.record(z.string(), z.string().min(1)).parse(JSON.parse(text));
    } catch {
      ctx.addIssue({
        code: "custom",
        message: "must be a JSON object of named keys",
      });
      return z.NEVER;
    }
    const keys = Object.values(parsed);
    if (keys.length === 0 || keys.some((key) => !key.startsWith(prefix))) {
      ctx.addIssue({
        code: "custom",
        message: `must name at least one key, each starting with ${prefix}`,
      });
      return z.NEVER;
    }
    // The key named "default" first: it is the one used for outgoing calls.
    return [
      ...(parsed.default ? [parsed.default] : []),
      ...Object.entries(parsed).filter(([name]) => name !== "default").map((
        [, key],
      ) => key),
    ];
  });

/**
 * Variables the Supabase platform provides to every function. API keys come in two
 * generations, and a project may have either or both: the legacy JWT keys
 * (SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY) and the named new ones
 * (SUPABASE_PUBLISHABLE_KEYS, SUPABASE_SECRET_KEYS). DB_POOLER_URL (an own secret) is
 * the transaction pooler, used instead of SUPABASE_DB_URL when set.
 */
export const supabaseEnv = z.object({
  SUPABASE_URL: url,
  SUPABASE_DB_URL: nonEmpty,
  DB_POOLER_URL: z.string().regex(
    /^postgres(ql)?:\/\//,
    "must be a postgres:// URL (the transaction pooler, port 6543)",
  ).optional(),
  SUPABASE_ANON_KEY: nonEmpty.optional(),
  SUPABASE_SERVICE_ROLE_KEY: nonEmpty.optional(),
  SUPABASE_PUBLISHABLE_KEYS: keyMap("sb_publishable_").optional(),
  SUPABASE_SECRET_KEYS: keyMap("sb_secret_").optional(),
});

/** The parsed platform variables. */
export type SupabaseEnv = z.infer<typeof supabaseEnv>;

/** The platform variables of a function serving users: a publishable or anon key. */
export const supabaseUserEnv = supabaseEnv.refine(
  (env) => env.SUPABASE_PUBLISHABLE_KEYS || env.SUPABASE_ANON_KEY,
  {
    message:
      "SUPABASE_PUBLISHABLE_KEYS or SUPABASE_ANON_KEY: missing (the project needs a publishable key or the legacy anon key)",
  },
);

/** The platform variables of a function acting as the service: a secret or service-role key. */
export const supabaseServiceEnv = supabaseEnv.refine(
  (env) => env.SUPABASE_SECRET_KEYS || env.SUPABASE_SERVICE_ROLE_KEY,
  {
    message:
      "SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY: missing (the project needs a secret key or the legacy service-role key)",
  },
);

/** The key a function sends as a client of the project: publishable, else legacy anon. */
export function clientKey(env: SupabaseEnv): string {
  const key = env.SUPABASE_PUBLISHABLE_KEYS?.[0] ?? env.SUPABASE_ANON_KEY;
  if (!key) {
    throw new ConfigError(
      "Invalid environment: SUPABASE_PUBLISHABLE_KEYS or SUPABASE_ANON_KEY: missing",
    );
  }
  return key;
}

/**
 * The key a function calls other functions with as the service: a secret key (sent
 * as `apikey` only, it is not a JWT), else the legacy service-role JWT.
 */
export function serviceKey(env: SupabaseEnv): string {
  const key = env.SUPABASE_SECRET_KEYS?.[0] ?? env.SUPABASE_SERVICE_ROLE_KEY;
  if (!key) {
    throw new ConfigError(
      "Invalid environment: SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY: missing",
    );
  }
  return key;
}

/** The database URL a function connects to: the pooler when configured. */
export function databaseUrl(env: SupabaseEnv): string {
  return env.DB_POOLER_URL ?? env.SUPABASE_DB_URL;
}

/** Stripe credentials; STRIPE_API_BASE points the SDK elsewhere (the local sandbox). */
export const stripeEnv = z.object({
  STRIPE_SECRET_KEY: z.string().regex(
    /^(sk|rk)_(test|live)_/,
    "must be a Stripe secret key",
  ),
  STRIPE_API_BASE: url.optional(),
});

/** Where the storefront lives (Checkout returns the customer there). */
export const siteEnv = z.object({ SITE_URL: url });

/** Parses `env` with `schema`, naming every bad variable in one error. */
export function parseEnv<T extends z.ZodType>(schema: T, env: Env): z.infer<T> {
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, value]) =>
      value !== undefined && value !== ""
    ),
  );
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) =>
    issue.path.length === 0
      ? issue.message
      : `${issue.path.join(".")}: ${
        issue.code === "invalid_type" && issue.input === undefined
          ? "missing"
          : issue.message
      }`
  );
  throw new ConfigError(`Invalid environment: ${problems.join("; ")}`);
}

/** The panel's Application API; optional so a missing key is reported on each order. */
export const panelEnv = z.object({
  PTERODACTYL_URL: url.optional(),
  PTERODACTYL_API_KEY: z.string().regex(
    /^ptla_\w+$/,
    "must be a ptla_ application key",
  )
    .optional(),
});

/** Where operator alerts are posted (Discord/Slack-style webhook). */
export const alertEnv = z.object({ ALERT_WEBHOOK_URL: url.optional() });

/** Stripe's webhook signing secret. */
export const webhookEnv = z.object({
  STRIPE_WEBHOOK_SECRET: z.string().regex(
    /^whsec_/,
    "must be a whsec_ signing secret",
  ),
});
