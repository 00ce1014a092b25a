/**
 * `sync-server-status`. A signed-in customer gets their own orders, each with its
 * status, a message, what the panel shows, the live state (with a client key), limits
 * and paid-until date; their installing orders are refreshed from the panel, at most
 * once per order every few seconds. The service role (or a secret key) runs the sweep
 * with `{}` (the schedule), or converges and refreshes one order with `{"order_id"}`.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import type {
  OrderView,
  PlanChangeView,
  SyncResponse,
} from "../_shared/contract.ts";
import { z } from "zod";
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
  applyObservation,
  type ConvergeDeps,
  convergeDue,
  viewOf,
} from "../_shared/panel/converge.ts";
import type { Sql } from "../_shared/platform/db.ts";
import { DomainError, HttpError } from "../_shared/platform/errors.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { customerMessage, resumedStatus } from "../_shared/orders/lifecycle.ts";
import { type LifecycleConfig } from "../_shared/orders/lifecycle_config.ts";
import type { Logger } from "../_shared/platform/log.ts";
import {
  changeOrder,
  type Order,
  ordersOfUser,
  readOrder,
  recordOrderEvent,
  statusBeforeSuspension,
} from "../_shared/orders/orders.ts";
import {
  type PanelClient,
  type PanelClientApi,
  panelClientApiFromConfig,
  PanelError,
  panelFromConfig,
} from "../_shared/panel/client.ts";
import { DEFAULT_RETRY_POLICY } from "../_shared/orders/retry.ts";
import {
  latestPlanChanges,
  type PlanChange,
  planChangeView,
} from "../_shared/orders/plan_changes.ts";
import { createStripe, type Stripe } from "../_shared/stripe/client.ts";
import { sweep } from "../_shared/sweep/mod.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";

/** The panel clients of one request, counting every request they make. */
export type PanelConnector = (
  onCall: () => void,
) => { panel: PanelClient; client: PanelClientApi | null };

/** What the handler needs. */
export interface SyncDeps {
  sql: Sql;
  connectPanel: PanelConnector;
  /** The sweep settles abandoned checkouts with it. */
  stripe: Stripe;
  alert: ConvergeDeps["alert"];
  log: Logger;
  verifyUser: UserVerifier;
  credentials: ServiceCredentials;
  lifecycle:
    & Pick<
      LifecycleConfig,
      | "PROVISION_MAX_ATTEMPTS"
      | "PAYMENT_GRACE_SECONDS"
      | "RETENTION_SECONDS"
    >
    & {
      SWEEP_BUDGET_SECONDS: number;
      CAPACITY_ALERT_PLANS?: number;
    };
  now?: () => Date;
  /** How long one server's panel view is reused for a customer (default 10 s). */
  cacheMs?: number;
}

const SyncRequest = z.strictObject({
  order_id: z.uuid().optional(),
  /** An admin lifts the order's suspension (a dispute settled, say). */
  lift_suspension: z.literal(true).optional(),
}).refine((body) => !body.lift_suspension || body.order_id, {
  message: "lift_suspension needs an order_id",
  path: ["order_id"],
});

/** What a customer sees of their latest plan change: one on its way, or a recent end. */
function planChangeOf(
  change: PlanChange | undefined,
  now: Date,
): PlanChangeView | null {
  if (!change) return null;
  const recent = change.settled_at === null ||
    now.getTime() - change.settled_at.getTime() < 7 * 86_400_000;
  return recent ? planChangeView(change) : null;
}

/** Builds the handler. */
export function createSyncHandler(deps: SyncDeps): Handler {
  const cacheMs = deps.cacheMs ?? 10_000;
  // Live state per server identifier, kept briefly: a dashboard polls every few seconds.
  const live = new Map<string, { at: number; state: string | null }>();
  const now = () => deps.now?.() ?? new Date();

  function connect() {
    let calls = 0;
    const clients = deps.connectPanel(() => calls++);
    const converge: ConvergeDeps = {
      sql: deps.sql,
      panel: clients.panel,
      client: clients.client,
      alert: deps.alert,
      log: deps.log,
      now: deps.now,
    };
    return { converge, calls: () => calls };
  }

  async function runService(req: Request): Promise<Response> {
    const body = await readJson(req, SyncRequest, { optional: true });
    const { converge, calls } = connect();
    if (!body.order_id) {
      return json(
        await sweep({
          ...converge,
          stripe: deps.stripe,
          lifecycle: {
            paymentGraceSeconds: deps.lifecycle.PAYMENT_GRACE_SECONDS,
            retentionSeconds: deps.lifecycle.RETENTION_SECONDS,
          },
          retry: {
            ...DEFAULT_RETRY_POLICY,
            maxAttempts: deps.lifecycle.PROVISION_MAX_ATTEMPTS,
          },
          budgetMs: deps.lifecycle.SWEEP_BUDGET_SECONDS * 1000,
          capacityAlertPlans: deps.lifecycle.CAPACITY_ALERT_PLANS,
          panelCalls: calls,
        }),
      );
    }
    const orderId = body.order_id;
    const log = deps.log.child({ order_id: orderId });
    if (!await readOrder(deps.sql, orderId)) {
      throw new DomainError(
        "not_found",
        "order_not_found",
        `Order "${orderId}" does not exist`,
      );
    }
    if (body.lift_suspension) await liftSuspension(orderId);
    const actions = await convergeDue({ ...converge, log }, {
      actor: "sync-server-status",
      orderId,
    });
    await refresh(converge, orderId, log);
    const order = await readOrder(deps.sql, orderId);
    return json({
      order_id: orderId,
      status: order?.status,
      panel_target: order?.panel_target,
      panel_state: order?.panel_state,
      panel_action_due_at: order?.panel_action_due_at?.toISOString() ?? null,
      actions,
      panel_calls: calls(),
    });
  }

  /**
   * An admin lifts a suspension (any but a cancellation's: that subscription is over):
   * the target is running again; the order stays suspended until the panel confirms
   * the unsuspension (an order without a server goes back to where it was).
   */
  async function liftSuspension(orderId: string): Promise<void> {
    await deps.sql.begin(async (tx) => {
      const order = await readOrder(tx, orderId, { lock: true });
      if (order?.panel_target !== "suspended" || !order.suspend_reason) {
        throw new DomainError(
          "conflict",
          "order_not_suspended",
          `Order "${orderId}" is not suspended`,
        );
      }
      if (order.suspend_reason === "canceled") {
        throw new DomainError(
          "conflict",
          "order_canceled",
          `Order "${orderId}" was canceled; its subscription has ended`,
        );
      }
      // With a server, the status follows what the panel confirms (converge's
      // unsuspend moves it); without one, it goes back to where it was.
      const back = order.pterodactyl_server_id === null
        ? resumedStatus({
          statusBeforeSuspension: await statusBeforeSuspension(tx, orderId),
          pterodactyl_server_id: null,
        })
        : null;
      await changeOrder(tx, orderId, {
        to: order.status === "suspended" && back ? back : undefined,
        set: {
          panel_target: "running",
          suspend_reason: null,
          suspend_at: null,
          panel_action_due_at: now(),
          panel_action_attempts: 0,
          // Never provisioned: the sweep provisions it now.
          ...(back === "paid" ? { next_attempt_at: now() } : {}),
        },
        actor: "admin",
        reason: `Suspension (${order.suspend_reason}) lifted by an admin`,
      });
      if (!back) {
        await recordOrderEvent(tx, orderId, {
          kind: "note",
          message:
            `Suspension (${order.suspend_reason}) lifted by an admin: unsuspending the server`,
          actor: "admin",
          customerMessage:
            "Your suspension was lifted: your server is resuming",
        });
      }
    });
  }

  /** Reads the order's server from the panel and records what it shows. */
  async function refresh(
    converge: ConvergeDeps,
    orderId: string,
    log: Logger,
  ): Promise<void> {
    const order = await readOrder(deps.sql, orderId);
    if (
      !order || order.pterodactyl_server_id === null ||
      order.panel_state === "deleted"
    ) return;
    try {
      const server = await converge.panel.getServerByExternalId(orderId);
      await applyObservation(
        converge,
        orderId,
        server ? viewOf(server) : null,
        {
          actor: "sync-server-status",
          seen: true,
        },
      );
    } catch (error) {
      if (!(error instanceof PanelError || error instanceof DomainError)) {
        throw error;
      }
      // The customer still gets the last known state.
      log.warn("Could not refresh the server from the panel", {
        error: error.message,
      });
    }
  }

  async function liveState(
    client: PanelClientApi | null,
    order: Order,
    log: Logger,
  ): Promise<string | null> {
    const identifier = order.pterodactyl_server_identifier;
    if (!client || !identifier || order.status !== "active") return null;
    const cached = live.get(identifier);
    if (cached && now().getTime() - cached.at < cacheMs) return cached.state;
    let state: string | null = null;
    try {
      state = (await client.resources(identifier)).current_state;
    } catch (error) {
      if (!(error instanceof PanelError || error instanceof DomainError)) {
        throw error;
      }
      log.warn("Could not read the server's live state", {
        error: error.message,
      });
    }
    live.set(identifier, { at: now().getTime(), state });
    return state;
  }

  async function runUser(req: Request): Promise<Response> {
    const user = await deps.verifyUser(req);
    // The function's one body shape: a customer's order_id is ignored (they get all
    // of their orders), a malformed body is refused as it is from the service, and
    // lifting a suspension is the operators' alone.
    const body = await readJson(req, SyncRequest, { optional: true });
    if (body.lift_suspension) {
      throw new HttpError(
        403,
        "forbidden",
        "Only the shop's operators can lift a suspension",
      );
    }
    const log = deps.log.child({ user_id: user.id });
    const { converge } = connect();
    let orders = await ordersOfUser(deps.sql, user.id);
    const stale = orders.filter((order) =>
      order.status === "installing" &&
      (order.panel_seen_at === null ||
        now().getTime() - order.panel_seen_at.getTime() >= cacheMs)
    );
    for (const order of stale) {
      await refresh(converge, order.id, log.child({ order_id: order.id }));
    }
    if (stale.length > 0) orders = await ordersOfUser(deps.sql, user.id);
    const changes = await latestPlanChanges(
      deps.sql,
      orders.map((order) => order.id),
    );
    const views: OrderView[] = [];
    for (const order of orders) {
      views.push({
        order_id: order.id,
        server_name: order.server_name,
        plan_id: order.plan_id,
        region: order.region,
        status: order.status,
        message: customerMessage(order),
        server: {
          identifier: order.pterodactyl_server_identifier,
          panel_status: order.panel_state,
          live_state: await liveState(converge.client, order, log),
        },
        limits: {
          memory_mb: order.memory_mb,
          disk_mb: order.disk_mb,
          cpu_percent: order.cpu_percent,
          databases: order.databases,
          backups: order.backups,
          allocations: order.allocations,
        },
        paid_until: order.paid_until?.toISOString() ?? null,
        cancel_at_period_end: order.cancel_at_period_end,
        cancel_at: order.cancel_at?.toISOString() ?? null,
        plan_change: planChangeOf(changes.get(order.id), now()),
        suspend_reason: order.suspend_reason,
        delete_at: order.delete_at?.toISOString() ?? null,
      });
    }
    return json({ orders: views } satisfies SyncResponse);
  }

  return withErrorHandling(
    (req) =>
      isServiceRequest(req, deps.credentials) ? runService(req) : runUser(req),
    { log: deps.log, methods: ["GET", "POST"] },
  );
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function syncFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "sync-server-status",
    FUNCTIONS["sync-server-status"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createSyncHandler({
        sql,
        connectPanel: (onCall) => ({
          panel: panelFromConfig(config, { onCall }),
          client: panelClientApiFromConfig(config, { onCall }),
        }),
        stripe: createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE),
        alert: createAlerter({
          sql,
          log,
          webhookUrl: config.ALERT_WEBHOOK_URL,
        }),
        log,
        verifyUser: createUserVerifier(config.SUPABASE_URL, clientKey(config)),
        credentials: serviceCredentials(config),
        lifecycle: config,
      }),
  );
}
