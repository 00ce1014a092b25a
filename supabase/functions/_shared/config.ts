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
const keyMap = z.string().transform((text, ctx) => {
  try {
    const parsed = z.record(z.string(), z.string().min(1)).parse(
      JSON.parse(text),
    );
    return Object.values(parsed);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: "must be a JSON object of named keys",
    });
    return z.NEVER;
  }
});

/** Variables the Supabase platform provides to every function. */
export const supabaseEnv = z.object({
  SUPABASE_URL: url,
  SUPABASE_DB_URL: nonEmpty,
  SUPABASE_ANON_KEY: nonEmpty,
  SUPABASE_SERVICE_ROLE_KEY: nonEmpty,
  SUPABASE_SECRET_KEYS: keyMap.optional(),
});

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
    `${issue.path.join(".")}: ${
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
