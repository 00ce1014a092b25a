/**
 * `create-checkout-session`: a signed-in customer asks to buy a plan; the answer is a
 * Stripe Checkout URL for a `pending` order. Price and limits come from the database;
 * a sale that cannot be fulfilled is refused before the customer pays.
 *
 * @module
 */
import { z } from "zod";
import {
  type AuthUser,
  createUserVerifier,
  type UserVerifier,
} from "../_shared/auth.ts";
import { type Offer, resolveOffer, TERMS } from "../_shared/catalog.ts";
import {
  clientKey,
  type Env,
  siteEnv,
  stripeEnv,
  supabaseUserEnv,
} from "../_shared/config.ts";
import { setActor, type Sql } from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/http.ts";
import { type Logger } from "../_shared/log.ts";
import { createStripe, Stripe } from "../_shared/stripe.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/wiring.ts";

/** What the handler needs. */
export interface CheckoutDeps {
  sql: Sql;
  stripe: Stripe;
  verifyUser: UserVerifier;
  siteUrl: string;
  log: Logger;
  now?: () => Date;
}

const CheckoutRequest = z.strictObject({
  plan_id: z.string().trim().min(1).max(64),
  term: z.enum(TERMS),
  region: z.string().trim().min(1).max(32),
  server_name: z.string().trim().min(3).max(40).regex(
    /^[\p{L}\p{N} _.'-]+$/u,
    "may contain letters, digits, spaces and _ . ' -",
  ),
});
type CheckoutRequest = z.infer<typeof CheckoutRequest>;

/** How long a checkout stays open (Stripe allows 30 minutes to 24 hours). */
const CHECKOUT_TTL_MS = 60 * 60 * 1000;

interface OpenOrder {
  id: string;
  created_at: Date;
  stripe_checkout_session_id: string | null;
  stripe_checkout_url: string | null;
}

/** Finds the customer's open checkout for the same request, or creates the order. */
async function openOrder(
  sql: Sql,
  user: AuthUser,
  request: CheckoutRequest,
  offer: Offer,
  now: Date,
): Promise<OpenOrder> {
  return await sql.begin(async (tx) => {
    await setActor(tx, "create-checkout-session");
    const [existing] = await tx<
      (OpenOrder & { checkout_expires_at: Date | null })[]
    >`
      select id, created_at, stripe_checkout_session_id, stripe_checkout_url, checkout_expires_at
      from public.orders
      where user_id = ${user.id} and plan_id = ${offer.planId} and term = ${offer.term}
        and region = ${offer.region} and server_name = ${request.server_name}
        and status = 'pending'
      for update`;
    if (
      existing &&
      (!existing.checkout_expires_at || existing.checkout_expires_at > now)
    ) {
      return existing;
    }
    if (existing) {
      await setActor(
        tx,
        "create-checkout-session",
        "Checkout expired before payment",
      );
      await tx`update public.orders set status = 'expired' where id = ${existing.id}`;
    }
    const inserted = await tx<OpenOrder[]>`
      insert into public.orders (user_id, plan_id, term, region, server_name, stripe_price_id,
        amount_cents, currency, memory_mb, disk_mb)
      values (${user.id}, ${offer.planId}, ${offer.term}, ${offer.region},
        ${request.server_name}, ${offer.stripePriceId}, ${offer.amountCents}, ${offer.currency},
        ${offer.memoryMb}, ${offer.diskMb})
      on conflict do nothing
      returning id, created_at, stripe_checkout_session_id, stripe_checkout_url`;
    if (inserted[0]) return inserted[0];
    // A concurrent identical request inserted it first: use theirs.
    const [theirs] = await tx<OpenOrder[]>`
      select id, created_at, stripe_checkout_session_id, stripe_checkout_url
      from public.orders
      where user_id = ${user.id} and plan_id = ${offer.planId} and term = ${offer.term}
        and region = ${offer.region} and server_name = ${request.server_name}
        and status = 'pending'`;
    if (!theirs) {
      throw new Error("Open order vanished while creating a checkout");
    }
    return theirs;
  });
}

/** The customer's Stripe customer id, created once (idempotently) on first purchase. */
async function ensureStripeCustomer(
  sql: Sql,
  stripe: Stripe,
  user: AuthUser,
): Promise<string> {
  const [known] = await sql<{ stripe_customer_id: string }[]>`
    select stripe_customer_id from public.stripe_customers where user_id = ${user.id}`;
  if (known) return known.stripe_customer_id;
  const customer = await stripe.customers.create(
    {
      ...(user.email ? { email: user.email } : {}),
      metadata: { user_id: user.id },
    },
    { idempotencyKey: `customer-${user.id}` },
  );
  await sql`
    insert into public.stripe_customers (user_id, stripe_customer_id)
    values (${user.id}, ${customer.id})
    on conflict (user_id) do nothing`;
  const [row] = await sql<{ stripe_customer_id: string }[]>`
    select stripe_customer_id from public.stripe_customers where user_id = ${user.id}`;
  return row.stripe_customer_id;
}

/** Creates the Stripe-facing part of the checkout; deterministic for one order. */
async function createStripeSession(
  deps: CheckoutDeps,
  user: AuthUser,
  order: OpenOrder,
  request: CheckoutRequest,
  offer: Offer,
): Promise<Stripe.Checkout.Session> {
  const customer = await ensureStripeCustomer(deps.sql, deps.stripe, user);
  const metadata = {
    order_id: order.id,
    user_id: user.id,
    item_type: "game",
    plan_id: offer.planId,
    term: offer.term,
    region: offer.region,
    server_name: request.server_name,
  };
  const site = deps.siteUrl.replace(/\/$/, "");
  return await deps.stripe.checkout.sessions.create(
    {
      mode: "subscription",
      customer,
      client_reference_id: order.id,
      line_items: [{ price: offer.stripePriceId, quantity: 1 }],
      metadata,
      subscription_data: { metadata },
      success_url:
        `${site}/checkout/success?order_id=${order.id}&session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: `${site}/checkout/canceled?order_id=${order.id}`,
      // Derived from the order, so a retried request sends identical parameters.
      expires_at: Math.floor(
        (order.created_at.getTime() + CHECKOUT_TTL_MS) / 1000,
      ),
    },
    { idempotencyKey: `checkout-session-${order.id}` },
  );
}

/** Builds the handler. */
export function createCheckoutHandler(deps: CheckoutDeps): Handler {
  const now = deps.now ?? (() => new Date());
  return withErrorHandling(async (req) => {
    const user = await deps.verifyUser(req);
    const request = await readJson(req, CheckoutRequest);
    const offer = await resolveOffer(deps.sql, {
      planId: request.plan_id,
      term: request.term,
      region: request.region,
    });
    const order = await openOrder(deps.sql, user, request, offer, now());
    const log = deps.log.child({ order_id: order.id, user_id: user.id });
    if (order.stripe_checkout_session_id && order.stripe_checkout_url) {
      log.info("Reusing the open checkout of an identical request");
      return json({
        order_id: order.id,
        session_id: order.stripe_checkout_session_id,
        url: order.stripe_checkout_url,
      });
    }

    let session: Stripe.Checkout.Session;
    try {
      session = await createStripeSession(deps, user, order, request, offer);
    } catch (error) {
      const reason = error instanceof Stripe.errors.StripeError
        ? `Stripe refused the checkout session: ${error.message}`
        : "Stripe could not be reached to create the checkout session";
      await deps.sql.begin(async (tx) => {
        await setActor(tx, "create-checkout-session", reason);
        await tx`
          update public.orders set status = 'expired', error_message = ${reason}
          where id = ${order.id} and status = 'pending' and stripe_checkout_session_id is null`;
      });
      log.error("Checkout session creation failed", { error });
      throw new HttpError(
        502,
        "stripe_error",
        "The payment provider is unavailable; try again",
      );
    }
    if (!session.url) {
      throw new Error(`Checkout session ${session.id} has no URL`);
    }

    await deps.sql.begin(async (tx) => {
      await setActor(tx, "create-checkout-session");
      await tx`
        update public.orders set
          stripe_checkout_session_id = ${session.id},
          stripe_checkout_url = ${session.url},
          checkout_expires_at = to_timestamp(${session.expires_at}),
          stripe_customer_id = ${
        typeof session.customer === "string"
          ? session.customer
          : session.customer?.id ?? null
      }
        where id = ${order.id}`;
      await tx`
        insert into public.order_events (order_id, user_id, kind, message, detail, actor)
        values (${order.id}, ${user.id}, 'checkout', 'Checkout session created',
          ${tx.json({ session_id: session.id, price: offer.stripePriceId })},
          'create-checkout-session')`;
    });
    log.info("Checkout session created", { session_id: session.id });
    return json({
      order_id: order.id,
      session_id: session.id,
      url: session.url,
    });
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function checkoutFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "create-checkout-session",
    supabaseUserEnv.and(stripeEnv).and(siteEnv),
    env,
    options,
    ({ config, sql, log }) =>
      createCheckoutHandler({
        sql,
        stripe: createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE),
        verifyUser: createUserVerifier(
          config.SUPABASE_URL,
          clientKey(config),
        ),
        siteUrl: config.SITE_URL,
        log,
      }),
  );
}
