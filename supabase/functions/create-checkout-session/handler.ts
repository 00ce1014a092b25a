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
import {
  lockRegionRooms,
  type Offer,
  resolveOffer,
  TERMS,
} from "../_shared/catalog.ts";
import {
  clientKey,
  type Env,
  siteEnv,
  stripeEnv,
  supabaseUserEnv,
} from "../_shared/config.ts";
import type { Sql, Tx } from "../_shared/db.ts";
import {
  changeOrder,
  createOrder,
  type Order,
  readOpenOrder,
  readOrder,
  recordOrderEvent,
} from "../_shared/orders.ts";
import { DomainError, HttpError } from "../_shared/errors.ts";
import { chooseNode } from "../_shared/placement.ts";
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
  /** Open checkouts one customer may hold at once (default 5). */
  maxOpenCheckouts?: number;
  now?: () => Date;
}

/** No control characters: Postgres refuses NUL in text, and none belongs in an id. */
const PRINTABLE = /^\P{Cc}*$/u;

const CheckoutRequest = z.strictObject({
  plan_id: z.string().trim().min(1).max(64).regex(
    PRINTABLE,
    "must not contain control characters",
  ),
  term: z.enum(TERMS),
  region: z.string().trim().min(1).max(32).regex(
    PRINTABLE,
    "must not contain control characters",
  ),
  server_name: z.string().trim().min(3).max(40).regex(
    /^[\p{L}\p{N} _.'-]+$/u,
    "may contain letters, digits, spaces and _ . ' -",
  ),
});
type CheckoutRequest = z.infer<typeof CheckoutRequest>;

/** The checkout's own settings, read from the environment. */
export const checkoutEnv = z.object({
  MAX_OPEN_CHECKOUTS: z.coerce.number().int().min(1).max(1000).default(5),
});

/** How long a checkout stays open (Stripe allows 30 minutes to 24 hours). */
const CHECKOUT_TTL_MS = 60 * 60 * 1000;
const DEFAULT_MAX_OPEN_CHECKOUTS = 5;

const ACTOR = "create-checkout-session";

/** What opening a checkout found: an order to make a session for, or one to reuse. */
type Opened =
  | { order: Order; reuse: false }
  | { order: Order & { stripe_checkout_session_id: string }; reuse: true };

/** An answer for a checkout that exists. */
function checkoutReply(order: Order, sessionId: string, url: string) {
  return json({ order_id: order.id, session_id: sessionId, url });
}

/**
 * Whether an order's Stripe session can still be paid, asked of Stripe before the order
 * is expired: an `open` session is expired first, a `complete` one is left to the
 * webhook. An order without a session never handed out a URL, so nobody can pay it.
 */
async function checkoutPayable(stripe: Stripe, order: Order): Promise<boolean> {
  if (!order.stripe_checkout_session_id) return false;
  try {
    const session = await stripe.checkout.sessions.retrieve(
      order.stripe_checkout_session_id,
    );
    if (session.status === "complete") return true;
    if (session.status === "open") {
      await stripe.checkout.sessions.expire(session.id);
    }
    return false;
  } catch (error) {
    // A session these keys do not know (test keys switched to live, say) cannot be
    // paid with them: the order is closed and a new checkout opened.
    if (
      error instanceof Stripe.errors.StripeError && error.statusCode === 404
    ) return false;
    throw new DomainError(
      "upstream",
      "stripe_error",
      "The payment provider is unavailable; try again",
      { cause: error },
    );
  }
}

/**
 * Finds the customer's open checkout for the same request, or creates the order with
 * its node reserved. Serialised per customer (an advisory lock), so the open-checkout
 * limit holds under concurrency; the region's node rows are locked while booking.
 */
async function openOrder(
  deps: CheckoutDeps,
  user: AuthUser,
  request: CheckoutRequest,
  offer: Offer,
  now: Date,
): Promise<Opened> {
  const key = {
    user_id: user.id,
    plan_id: offer.planId,
    term: offer.term,
    region: offer.region,
    server_name: request.server_name,
  };
  return await deps.sql.begin(async (tx): Promise<Opened> => {
    await tx`select pg_advisory_xact_lock(hashtextextended(${`checkout:${user.id}`}, 0))`;
    // Held until commit, so the user cannot vanish between this check and the insert.
    const [known] = await tx`
      select id from auth.users where id = ${user.id} for key share`;
    if (!known) {
      throw new HttpError(
        401,
        "user_not_found",
        "The signed-in user no longer exists; sign in again",
      );
    }
    const existing = await readOpenOrder(tx, key);
    if (existing && existing.checkout_expires_at! > now) {
      const sessionId = existing.stripe_checkout_session_id;
      return sessionId && existing.stripe_checkout_url
        ? {
          order: { ...existing, stripe_checkout_session_id: sessionId },
          reuse: true,
        }
        : { order: existing, reuse: false };
    }
    if (existing) {
      if (await checkoutPayable(deps.stripe, existing)) {
        throw new DomainError(
          "conflict",
          "checkout_completed",
          "This order was just paid; its server is on its way",
          { details: { order_id: existing.id } },
        );
      }
      await changeOrder(tx, existing.id, {
        to: "expired",
        onlyFrom: ["pending"],
        actor: ACTOR,
        reason: "Checkout expired before payment",
      });
    }

    const max = deps.maxOpenCheckouts ?? DEFAULT_MAX_OPEN_CHECKOUTS;
    const [{ open }] = await tx<{ open: number }[]>`
      select count(*)::int as open from public.orders
      where user_id = ${user.id} and status = 'pending'
        and checkout_expires_at > ${now}`;
    if (open >= max) {
      throw new DomainError(
        "rate_limited",
        "too_many_open_checkouts",
        `You already have ${open} checkouts open; pay or cancel one, or wait until it expires`,
        { details: { open_checkouts: open, max_open_checkouts: max } },
      );
    }

    // The pending order reserves its room now, so a paid order always finds it.
    const node = chooseNode(await lockRegionRooms(tx, offer.region), {
      region: offer.region,
      memory_mb: offer.memoryMb,
      disk_mb: offer.diskMb,
    });
    if (!node) throw soldOut(offer);
    const created = await createOrder(tx, {
      ...key,
      stripe_price_id: offer.stripePriceId,
      amount_cents: offer.amountCents,
      currency: offer.currency,
      memory_mb: offer.memoryMb,
      disk_mb: offer.diskMb,
      node_id: node.id,
      checkout_expires_at: new Date(now.getTime() + CHECKOUT_TTL_MS),
    }, ACTOR);
    if (!created) {
      throw new Error("An identical open order appeared despite the lock");
    }
    return { order: created, reuse: false };
  });
}

/**
 * The customer's Stripe customer id, created once (idempotently) on first purchase.
 * `gone` is a stored id Stripe no longer knows: a new customer replaces it.
 */
async function ensureStripeCustomer(
  tx: Tx,
  stripe: Stripe,
  user: AuthUser,
  gone?: string,
): Promise<string> {
  const [known] = await tx<{ stripe_customer_id: string }[]>`
    select stripe_customer_id from public.stripe_customers where user_id = ${user.id}`;
  if (known && known.stripe_customer_id !== gone) {
    return known.stripe_customer_id;
  }
  const customer = await stripe.customers.create(
    {
      ...(user.email ? { email: user.email } : {}),
      metadata: { user_id: user.id },
    },
    {
      // A replacement needs its own key: the first one would replay the lost customer.
      idempotencyKey: gone
        ? `customer-${user.id}-replacing-${gone}`
        : `customer-${user.id}`,
    },
  );
  if (gone) {
    await tx`
      update public.stripe_customers set stripe_customer_id = ${customer.id}
      where user_id = ${user.id} and stripe_customer_id = ${gone}`;
  }
  // No conflict target: concurrent first purchases (one customer id, thanks to the
  // idempotency key) wait for each other on either unique key instead of failing.
  await tx`
    insert into public.stripe_customers (user_id, stripe_customer_id)
    values (${user.id}, ${customer.id})
    on conflict do nothing`;
  const [row] = await tx<{ stripe_customer_id: string }[]>`
    select stripe_customer_id from public.stripe_customers where user_id = ${user.id}`;
  return row.stripe_customer_id;
}

/** Whether Stripe refused a request because the customer it names does not exist. */
function customerMissing(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeInvalidRequestError &&
    error.code === "resource_missing" && error.param === "customer";
}

/** Creates the Stripe-facing part of the checkout; deterministic for one order. */
async function createStripeSession(
  deps: CheckoutDeps,
  tx: Tx,
  user: AuthUser,
  order: Order,
  offer: Offer,
): Promise<Stripe.Checkout.Session> {
  const metadata = {
    order_id: order.id,
    user_id: user.id,
    item_type: "game",
    plan_id: offer.planId,
    term: offer.term,
    region: offer.region,
    server_name: order.server_name,
  };
  const site = deps.siteUrl.replace(/\/$/, "");
  const create = (customer: string, idempotencyKey: string) =>
    deps.stripe.checkout.sessions.create(
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
        expires_at: Math.floor(order.checkout_expires_at!.getTime() / 1000),
      },
      { idempotencyKey },
    );
  const customer = await ensureStripeCustomer(tx, deps.stripe, user);
  try {
    return await create(customer, `checkout-session-${order.id}`);
  } catch (error) {
    if (!customerMissing(error)) throw error;
    // Deleted in the dashboard, or the keys moved from test to live: start afresh.
    deps.log.warn("Stored Stripe customer is unknown to Stripe; replacing it", {
      user_id: user.id,
      stripe_customer_id: customer,
    });
    const replacement = await ensureStripeCustomer(
      tx,
      deps.stripe,
      user,
      customer,
    );
    return await create(
      replacement,
      `checkout-session-${order.id}-${replacement}`,
    );
  }
}

/**
 * Makes the order's Stripe session, holding the order's row lock from reading it to
 * writing the session, so a double submit waits for the first and reuses its session,
 * and a failure closes an order nobody else is writing to. Answers null when the order
 * was closed meanwhile.
 */
async function openSession(
  deps: CheckoutDeps,
  user: AuthUser,
  orderId: string,
  offer: Offer,
): Promise<Response | null> {
  const outcome = await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, { lock: true });
    if (order?.status !== "pending") return null;
    if (order.stripe_checkout_session_id && order.stripe_checkout_url) {
      return {
        order,
        sessionId: order.stripe_checkout_session_id,
        url: order.stripe_checkout_url,
      };
    }
    let session: Stripe.Checkout.Session;
    try {
      session = await createStripeSession(deps, tx, user, order, offer);
      if (!session.url) {
        throw new Error(`Checkout session ${session.id} has no URL`);
      }
    } catch (error) {
      const reason = error instanceof Stripe.errors.StripeError
        ? `Stripe refused the checkout session: ${error.message}`
        : "Stripe could not be reached to create the checkout session";
      // Under the row lock no session was written, and no URL reached anyone: the
      // order (and its reserved room) can be closed.
      await changeOrder(tx, order.id, {
        to: "expired",
        onlyFrom: ["pending"],
        set: {
          error_message: reason,
          customer_message:
            "The payment provider could not open your checkout; please try again",
        },
        actor: ACTOR,
        reason,
      });
      return { failed: error };
    }
    await changeOrder(tx, order.id, {
      onlyFrom: ["pending"],
      set: {
        stripe_checkout_session_id: session.id,
        stripe_checkout_url: session.url,
        checkout_expires_at: new Date(session.expires_at * 1000),
        stripe_customer_id: typeof session.customer === "string"
          ? session.customer
          : session.customer?.id ?? null,
      },
      actor: ACTOR,
    });
    await recordOrderEvent(tx, order.id, {
      kind: "checkout",
      message: "Checkout session created",
      detail: { session_id: session.id, price: offer.stripePriceId },
      actor: ACTOR,
      customerMessage: "Checkout opened",
    });
    return { order, sessionId: session.id, url: session.url, created: true };
  });
  if (!outcome) return null;
  const log = deps.log.child({ order_id: orderId, user_id: user.id });
  if ("failed" in outcome) {
    log.error("Checkout session creation failed", { error: outcome.failed });
    throw new HttpError(
      502,
      "stripe_error",
      "The payment provider is unavailable; try again",
    );
  }
  log.info(
    "created" in outcome
      ? "Checkout session created"
      : "Reusing the open checkout of an identical request",
    { session_id: outcome.sessionId },
  );
  return checkoutReply(outcome.order, outcome.sessionId, outcome.url);
}

function soldOut(offer: Offer): DomainError {
  return new DomainError(
    "conflict",
    "region_sold_out",
    `Region "${offer.region}" has no capacity left for plan "${offer.planId}"`,
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
    // A concurrent identical request may close the order we found (its Stripe call
    // failed): then open a fresh one, once.
    for (let round = 0; round < 2; round++) {
      const opened = await openOrder(deps, user, request, offer, now());
      if (opened.reuse) {
        deps.log.info("Reusing the open checkout of an identical request", {
          order_id: opened.order.id,
          user_id: user.id,
        });
        return checkoutReply(
          opened.order,
          opened.order.stripe_checkout_session_id,
          opened.order.stripe_checkout_url!,
        );
      }
      const reply = await openSession(deps, user, opened.order.id, offer);
      if (reply) return reply;
    }
    throw new DomainError(
      "conflict",
      "checkout_in_progress",
      "Another checkout for this server is being opened; try again",
    );
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function checkoutFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "create-checkout-session",
    supabaseUserEnv.and(stripeEnv).and(siteEnv).and(checkoutEnv),
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
        maxOpenCheckouts: config.MAX_OPEN_CHECKOUTS,
        log,
      }),
  );
}
