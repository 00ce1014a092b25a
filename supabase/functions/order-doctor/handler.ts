/**
 * `order-doctor`: explains an order (`{"query": "<order id | email | cs_… | sub_… |
 * panel server id or identifier>", "format"?: "json" | "text"}`) the way
 * `npm run doctor` does, for an admin in the Supabase dashboard. Service role or secret
 * key only; read-only (database reads, GETs on Stripe and the panel).
 *
 * @module
 */
import { z } from "zod";
import { FUNCTIONS } from "../_shared/manifest.ts";
import {
  requireService,
  type ServiceCredentials,
  serviceCredentials,
} from "../_shared/platform/auth.ts";
import { type Env } from "../_shared/platform/config.ts";
import { HttpError } from "../_shared/platform/errors.ts";
import {
  corsHeaders,
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import type { Logger } from "../_shared/platform/log.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";
import {
  doctorClients,
  type GatherDeps,
  renderText,
  runDoctor,
} from "../_shared/doctor/mod.ts";

const DoctorRequest = z.strictObject({
  query: z.string().trim().min(1).max(320),
  format: z.enum(["json", "text"]).default("json"),
});

/** Builds the handler. */
export function createDoctorHandler(
  deps: GatherDeps & { credentials: ServiceCredentials; log: Logger },
): Handler {
  return withErrorHandling(async (req) => {
    requireService(req, deps.credentials);
    const { query, format } = await readJson(req, DoctorRequest);
    const result = await runDoctor(deps, query);
    if (result.badInput) {
      throw new HttpError(422, "invalid_query", result.badInput);
    }
    if (format === "text") {
      return new Response(renderText(result, { color: false }) + "\n", {
        headers: {
          ...corsHeaders,
          "Content-Type": "text/plain; charset=utf-8",
        },
      });
    }
    return json(result.report);
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function doctorFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "order-doctor",
    FUNCTIONS["order-doctor"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createDoctorHandler({
        sql,
        ...doctorClients(config),
        supabaseUrl: config.SUPABASE_URL,
        credentials: serviceCredentials(config),
        log,
      }),
  );
}
