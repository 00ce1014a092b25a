/**
 * `change-server-plan`: a signed-in customer (or an admin with a secret key, for any
 * order) changes a running server's plan between plans of the same game and egg.
 * `{order_id, plan_id, preview: true}` answers what would happen and costs nothing;
 * without `preview` an upgrade is charged now and applied once paid, a downgrade is
 * scheduled for the end of the paid period; `{order_id, cancel: true}` cancels a
 * scheduled downgrade. See `../_shared/plan_change/flow.ts` for the steps.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import { createAlerter } from "../_shared/platform/alerts.ts";
import {
  isServiceRequest,
  type ServiceCredentials,
  serviceCredentials,
} from "../_shared/platform/auth.ts";
import {
  createUserVerifier,
  type UserVerifier,
} from "../_shared/platform/user_auth.ts";
import { clientKey, type Env } from "../_shared/platform/config.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { planChangeView } from "../_shared/orders/plan_changes.ts";
import {
  cancelPlanChange,
  paymentFailed,
  type PlanChangeDeps,
  quotePlanChange,
  requestPlanChange,
} from "../_shared/plan_change/flow.ts";
import {
  type PanelClient,
  panelClientApiFromConfig,
  panelFromConfig,
} from "../_shared/panel/client.ts";
import { convergeDue } from "../_shared/panel/converge.ts";
import { createStripe } from "../_shared/stripe/client.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";
import {
  type ChangePlanPreviewResponse,
  type ChangePlanResponse,
  ChangeServerPlanRequest,
  type PlanChangePreview,
} from "../_shared/contract.ts";

/** What the handler needs. */
export interface ChangePlanDeps extends PlanChangeDeps {
  /** The panel's application API: a paid upgrade's build is changed at once. */
  panel: PanelClient;
  verifyUser: UserVerifier;
  credentials: ServiceCredentials;
}

const ACTOR = "change-server-plan";

/** Builds the handler. */
export function createChangePlanHandler(deps: ChangePlanDeps): Handler {
  return withErrorHandling(async (req) => {
    const admin = isServiceRequest(req, deps.credentials);
    const userId = admin ? null : (await deps.verifyUser(req)).id;
    const body = await readJson(req, ChangeServerPlanRequest);
    const log = deps.log.child({ order_id: body.order_id, user_id: userId });
    const actor = admin ? `${ACTOR} (admin)` : ACTOR;
    if ("cancel" in body) {
      const change = await cancelPlanChange(deps, {
        orderId: body.order_id,
        userId,
      }, actor);
      log.info("Plan change canceled", { change_id: change.id });
      return json(
        { change: planChangeView(change) } satisfies ChangePlanResponse,
      );
    }
    const quote = await quotePlanChange(deps, {
      orderId: body.order_id,
      planId: body.plan_id,
      userId,
    });
    if (body.preview) {
      const preview: PlanChangePreview = {
        kind: quote.kind,
        order_id: quote.order.id,
        from_plan_id: quote.order.plan_id,
        to_plan_id: quote.target.plan.id,
        amount_due_cents: quote.amountDue,
        currency: quote.currency,
        effective: quote.kind === "upgrade" ? "now" : "period_end",
        effective_at: quote.effectiveAt?.toISOString() ?? null,
        limits: {
          memory_mb: quote.target.plan.memory_mb,
          disk_mb: quote.target.plan.disk_mb,
        },
        restart_needed: quote.target.plan.memory_mb !== quote.order.memory_mb,
      };
      return json({ preview } satisfies ChangePlanPreviewResponse);
    }
    const { change, outcome } = await requestPlanChange(deps, quote, actor);
    log.info("Plan change requested", {
      change_id: change.id,
      kind: change.kind,
      outcome,
    });
    if (outcome === "awaiting_payment") throw paymentFailed(change);
    if (outcome === "applied") {
      // Paid: the server's build follows now (the sweep retries a failure).
      await convergeDue(deps, { actor, orderId: change.order_id });
    }
    return json(
      { change: planChangeView(change) } satisfies ChangePlanResponse,
      change.kind === "upgrade" ? 202 : 200,
    );
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function changePlanFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "change-server-plan",
    FUNCTIONS["change-server-plan"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createChangePlanHandler({
        sql,
        stripe: createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE),
        panel: panelFromConfig(config),
        client: panelClientApiFromConfig(config),
        alert: createAlerter({
          sql,
          log,
          webhookUrl: config.ALERT_WEBHOOK_URL,
        }),
        log,
        verifyUser: createUserVerifier(config.SUPABASE_URL, clientKey(config)),
        credentials: serviceCredentials(config),
      }),
  );
}
