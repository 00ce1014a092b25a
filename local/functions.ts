/**
 * The functions the local gateway serves, each wired from the environment by the same
 * code its `index.ts` uses when deployed.
 *
 * @module
 */
import type { Env } from "../supabase/functions/_shared/platform/config.ts";
import type {
  WiredFunction,
  WiringOptions,
} from "../supabase/functions/_shared/platform/wiring.ts";
import { changePlanFromEnv } from "../supabase/functions/change-server-plan/handler.ts";
import { portalFromEnv } from "../supabase/functions/create-billing-portal-session/handler.ts";
import { checkoutFromEnv } from "../supabase/functions/create-checkout-session/handler.ts";
import { panelUserFromEnv } from "../supabase/functions/create-pterodactyl-user/handler.ts";
import { doctorFromEnv } from "../supabase/functions/order-doctor/handler.ts";
import { provisionFromEnv } from "../supabase/functions/servers-provision/handler.ts";
import { webhookFromEnv } from "../supabase/functions/stripe-webhook/handler.ts";
import { syncFromEnv } from "../supabase/functions/sync-server-status/handler.ts";

/** A function wired from an environment. */
export type FunctionFactory = (
  env: Env,
  options: WiringOptions,
) => WiredFunction;

/** Every deployed function, by name (its URL segment). */
export const FUNCTIONS: Record<string, FunctionFactory> = {
  "change-server-plan": changePlanFromEnv,
  "create-billing-portal-session": portalFromEnv,
  "create-checkout-session": checkoutFromEnv,
  "create-pterodactyl-user": panelUserFromEnv,
  "order-doctor": doctorFromEnv,
  "servers-provision": provisionFromEnv,
  "stripe-webhook": webhookFromEnv,
  "sync-server-status": syncFromEnv,
};

/** Reads `verify_jwt` of each `[functions.<name>]` section of supabase/config.toml. */
export async function readVerifyJwt(): Promise<Map<string, boolean>> {
  const text = await Deno.readTextFile(
    new URL("../supabase/config.toml", import.meta.url),
  );
  const result = new Map<string, boolean>();
  let current: string | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const section = /^\[functions\.([\w-]+)\]$/.exec(line);
    if (section) {
      current = section[1];
      result.set(current, true);
      continue;
    }
    if (line.startsWith("[")) current = null;
    const setting = /^verify_jwt\s*=\s*(true|false)$/.exec(line);
    if (current && setting) result.set(current, setting[1] === "true");
  }
  return result;
}
