/**
 * `create-billing-portal-session`: a signed-in customer opens Stripe's customer portal
 * for their own Stripe customer (card, invoices, cancellation). Plan switches are not
 * offered there: they go through `change-server-plan`, which checks the node's room
 * and the disk in use. A cancellation made in the portal comes back as
 * `customer.subscription.updated` with `cancel_at`, which the webhook follows.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import {
  createUserVerifier,
  type UserVerifier,
} from "../_shared/platform/user_auth.ts";
import { clientKey, type Env } from "../_shared/platform/config.ts";
import type { Sql } from "../_shared/platform/db.ts";
import { DomainError } from "../_shared/platform/errors.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import type { Logger } from "../_shared/platform/log.ts";
import { readOrder } from "../_shared/orders/orders.ts";
import {
  BillingPortalRequest,
  type BillingPortalResponse,
} from "../_shared/contract.ts";
import {
  createStripe,
  isTemporaryStripeError,
  type Stripe,
} from "../_shared/stripe/client.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";

/** What the handler needs. */
export interface PortalDeps {
  sql: Sql;
  stripe: Stripe;
  verifyUser: UserVerifier;
  /** The storefront: where the portal returns to, and the only origin it may. */
  siteUrl: string;
  /** A portal configuration without plan switches (`npm run setup` makes one). */
  configurationId?: string;
  log: Logger;
}

function noCustomer(): DomainError {
  return new DomainError(
    "conflict",
    "no_stripe_customer",
    "There is no billing account for you yet: it is made with your first purchase",
  );
}

/** Builds the handler. */
export function createPortalHandler(deps: PortalDeps): Handler {
  const site = new URL(deps.siteUrl);
  return withErrorHandling(async (req) => {
    const user = await deps.verifyUser(req);
    const body = await readJson(req, BillingPortalRequest, { optional: true });
    let returnUrl = `${site.origin}${site.pathname.replace(/\/$/, "")}/servers`;
    if (body.return_url !== undefined) {
      if (new URL(body.return_url).origin !== site.origin) {
        throw new DomainError(
          "invalid",
          "return_url_not_allowed",
          `return_url must be on the shop's site (${site.origin})`,
        );
      }
      returnUrl = body.return_url;
    }
    let customer: string | null = null;
    if (body.order_id !== undefined) {
      const order = await readOrder(deps.sql, body.order_id);
      if (!order || order.user_id !== user.id) {
        throw new DomainError(
          "not_found",
          "order_not_found",
          `Order ${body.order_id} was not found`,
        );
      }
      customer = order.stripe_customer_id;
    }
    if (customer === null) {
      const [known] = await deps.sql<{ stripe_customer_id: string }[]>`
        select stripe_customer_id from public.stripe_customers
        where user_id = ${user.id}`;
      customer = known?.stripe_customer_id ?? null;
    }
    if (customer === null) throw noCustomer();
    let session: Stripe.BillingPortal.Session;
    try {
      session = await deps.stripe.billingPortal.sessions.create({
        customer,
        return_url: returnUrl,
        ...(deps.configurationId
          ? { configuration: deps.configurationId }
          : {}),
      });
    } catch (error) {
      deps.log.error("Billing portal session failed", {
        user_id: user.id,
        error,
      });
      if (
        !isTemporaryStripeError(error) &&
        (error as { code?: string }).code === "resource_missing"
      ) throw noCustomer();
      throw new DomainError(
        isTemporaryStripeError(error) ? "unavailable" : "upstream",
        "stripe_error",
        "The payment provider could not open your billing page; try again",
        { cause: error },
      );
    }
    deps.log.info("Billing portal session created", {
      user_id: user.id,
      order_id: body.order_id,
    });
    return json({ url: session.url } satisfies BillingPortalResponse);
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function portalFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "create-billing-portal-session",
    FUNCTIONS["create-billing-portal-session"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createPortalHandler({
        sql,
        stripe: createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE),
        verifyUser: createUserVerifier(config.SUPABASE_URL, clientKey(config)),
        siteUrl: config.SITE_URL,
        configurationId: config.STRIPE_PORTAL_CONFIGURATION,
        log,
      }),
  );
}
