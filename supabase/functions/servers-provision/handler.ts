/**
 * `servers-provision`: the service (stripe-webhook, the sweep, an admin) asks for one
 * order to be provisioned. Service role or secret key only. Answers the order's state.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import { z } from "zod";
import {
  requireService,
  type ServiceCredentials,
  serviceCredentials,
} from "../_shared/platform/auth.ts";
import { createAlerter } from "../_shared/platform/alerts.ts";
import { type Env } from "../_shared/platform/config.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { panelFromConfig } from "../_shared/panel/client.ts";
import { DEFAULT_RETRY_POLICY } from "../_shared/orders/retry.ts";
import {
  type ProvisionDeps,
  provisionOrder,
} from "../_shared/panel/provision.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";

const ProvisionRequest = z.strictObject({ order_id: z.uuid() });

/** Builds the handler. */
export function createProvisionHandler(
  deps: ProvisionDeps & { credentials: ServiceCredentials },
): Handler {
  return withErrorHandling(async (req) => {
    requireService(req, deps.credentials);
    const { order_id } = await readJson(req, ProvisionRequest);
    return json(
      await provisionOrder(deps, order_id, { actor: "servers-provision" }),
    );
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function provisionFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "servers-provision",
    FUNCTIONS["servers-provision"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createProvisionHandler({
        sql,
        panel: panelFromConfig(config),
        alert: createAlerter({
          sql,
          log,
          webhookUrl: config.ALERT_WEBHOOK_URL,
        }),
        log,
        credentials: serviceCredentials(config),
        // The same limit as the sweep's retries: an admin call after the last one
        // makes one more attempt.
        retry: {
          ...DEFAULT_RETRY_POLICY,
          maxAttempts: config.PROVISION_MAX_ATTEMPTS,
        },
      }),
  );
}
