/**
 * `create-checkout-session`: a signed-in customer asks to buy a plan; the answer is a
 * Stripe Checkout URL for a `pending` order. Price and limits come from the database;
 * a sale that cannot be fulfilled is refused before the customer pays.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import { CheckoutRequest, type CheckoutResponse } from "../_shared/contract.ts";
import {
  type AuthUser,
  createUserVerifier,
  type UserVerifier,
} from "../_shared/platform/user_auth.ts";
import {
  lockRegionRooms,
  type Offer,
  resolveOffer,
} from "../_shared/orders/catalog.ts";
import { clientKey, type Env } from "../_shared/platform/config.ts";
import {
  closeCheckoutSession,
  type ClosedSession,
} from "../_shared/stripe/checkout_session.ts";
import type { Sql } from "../_shared/platform/db.ts";
import {
  changeOrder,
  createOrder,
  type Order,
  readOpenOrder,
  readOrder,
  recordOrderEvent,
} from "../_shared/orders/orders.ts";
import { DomainError, HttpError } from "../_shared/platform/errors.ts";
import { chooseNode } from "../_shared/orders/placement.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { type Logger } from "../_shared/platform/log.ts";
import { createStripe, Stripe } from "../_shared/stripe/client.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";

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

/**
 * How long a checkout (and its hold on a node) lives: Stripe's shortest, 30 minutes
 * after it creates the session, plus a margin for the call's own latency and clocks, so
 * Stripe never refuses the `expires_at` we compute just before calling.
 */
export const CHECKOUT_TTL_MS = 32 * 60 * 1000;
/** Stripe refuses an `expires_at` less than this after it creates the session. */
const STRIPE_MIN_TTL_MS = 30 * 60 * 1000;
/**
 * A session not yet created reuses its order's `expires_at` (and so its idempotency
 * key) while at least this is left beyond Stripe's minimum; else it computes a new one.
 */
const REUSE_MARGIN_MS = 30 * 1000;
const DEFAULT_MAX_OPEN_CHECKOUTS = 5;

const ACTOR = "create-checkout-session";

/** What opening a checkout found, decided under the customer's lock. */
type Opened =
  | { kind: "session"; order: Order }
  | { kind: "reuse"; order: Order; sessionId: string; url: string }
  /** The customer's earlier checkout for this server ended: close it first. */
  | { kind: "settle"; order: Order & { stripe_checkout_session_id: string } };

/** An answer for a checkout that exists. */
function checkoutReply(order: Order, sessionId: string, url: string) {
  return json(
    {
      order_id: order.id,
      session_id: sessionId,
      url,
    } satisfies CheckoutResponse,
  );
}

function stripeUnavailable(error: unknown): DomainError {
  return new DomainError(
    "upstream",
    "stripe_error",
    "The payment provider is unavailable; try again",
    { cause: error },
  );
}

/**
 * Finds the customer's open checkout for the same request, or creates the order with
 * its node reserved. Serialised per customer (an advisory lock), so the open-checkout
 * limit holds under concurrency; the region's node rows are locked while booking. No
 * network call: an ended checkout whose session exists is answered as `settle`.
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
          kind: "reuse",
          order: existing,
          sessionId,
          url: existing.stripe_checkout_url,
        }
        : { kind: "session", order: existing };
    }
    if (existing?.stripe_checkout_session_id) {
      return {
        kind: "settle",
        order: {
          ...existing,
          stripe_checkout_session_id: existing.stripe_checkout_session_id,
        },
      };
    }
    if (existing) {
      // Its session was never recorded, so no URL reached anyone: nobody can pay it.
      await changeOrder(tx, existing.id, {
        to: "expired",
        onlyFrom: ["pending"],
        actor: ACTOR,
        reason: "Checkout expired before a session was opened",
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
      ...offer.limits,
      node_id: node.id,
      checkout_expires_at: new Date(now.getTime() + CHECKOUT_TTL_MS),
    }, ACTOR);
    if (!created) {
      throw new Error("An identical open order appeared despite the lock");
    }
    return { kind: "session", order: created };
  });
}

/**
 * Closes an ended checkout: Stripe first (an open session is expired, so nobody pays
 * for room given back), then the order, in a transaction guarded by the state it
 * expects. A session paid meanwhile keeps its order and room.
 */
async function settleEnded(
  deps: CheckoutDeps,
  order: Order & { stripe_checkout_session_id: string },
): Promise<void> {
  let closed: ClosedSession;
  try {
    closed = await closeCheckoutSession(
      deps.stripe,
      order.stripe_checkout_session_id,
    );
  } catch (error) {
    throw stripeUnavailable(error);
  }
  if ("session" in closed && closed.session.status === "complete") {
    throw new DomainError(
      "conflict",
      "checkout_completed",
      "This order was just paid; its server is on its way",
      { details: { order_id: order.id } },
    );
  }
  // A session these keys do not know (test keys switched to live, say) cannot be
  // paid with them: the order is closed and a new checkout opened.
  await deps.sql.begin(async (tx) => {
    const current = await readOrder(tx, order.id, { lock: true });
    if (
      current?.status !== "pending" ||
      current.stripe_checkout_session_id !== order.stripe_checkout_session_id
    ) return;
    await changeOrder(tx, order.id, {
      to: "expired",
      onlyFrom: ["pending"],
      actor: ACTOR,
      reason: "unknown" in closed
        ? "Checkout ended; Stripe does not know its session"
        : closed.closedNow
        ? "Checkout ended before payment: its session was expired in Stripe"
        : "Checkout expired before payment",
    });
  });
}

/**
 * The customer's Stripe customer id, created once (idempotently) on first purchase.
 * `gone` is a stored id Stripe no longer knows: a new customer replaces it. The Stripe
 * call runs outside any transaction; its idempotency key makes concurrent first
 * purchases get one customer.
 */
async function ensureStripeCustomer(
  deps: CheckoutDeps,
  user: AuthUser,
  gone?: string,
): Promise<string> {
  const [known] = await deps.sql<{ stripe_customer_id: string }[]>`
    select stripe_customer_id from public.stripe_customers where user_id = ${user.id}`;
  if (known && known.stripe_customer_id !== gone) {
    return known.stripe_customer_id;
  }
  const customer = await deps.stripe.customers.create(
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
  return await deps.sql.begin(async (tx) => {
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
  });
}

/** Whether Stripe refused a request because the customer it names does not exist. */
function customerMissing(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeInvalidRequestError &&
    error.code === "resource_missing" && error.param === "customer";
}

/**
 * Creates the order's Checkout Session; deterministic for one order and `expires_at`
 * (the idempotency key carries both), so a concurrent or retried request gets the same
 * session from Stripe.
 */
async function createStripeSession(
  deps: CheckoutDeps,
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
  const expiresAt = Math.floor(order.checkout_expires_at!.getTime() / 1000);
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
        expires_at: expiresAt,
      },
      { idempotencyKey },
    );
  const customer = await ensureStripeCustomer(deps, user);
  try {
    return await create(customer, `checkout-session-${order.id}-${expiresAt}`);
  } catch (error) {
    if (!customerMissing(error)) throw error;
    // Deleted in the dashboard, or the keys moved from test to live: start afresh.
    deps.log.warn("Stored Stripe customer is unknown to Stripe; replacing it", {
      user_id: user.id,
      stripe_customer_id: customer,
    });
    const replacement = await ensureStripeCustomer(deps, user, customer);
    return await create(
      replacement,
      `checkout-session-${order.id}-${expiresAt}-${replacement}`,
    );
  }
}

/**
 * Decides under the order's row lock what the session will be (its `expires_at`, the
 * intent a concurrent request shares), commits, calls Stripe, then records the session
 * in a transaction guarded by the state it expects. Answers null when the order was
 * closed meanwhile (its new session is then expired in Stripe, unpaid and unseen).
 */
async function openSession(
  deps: CheckoutDeps,
  user: AuthUser,
  orderId: string,
  offer: Offer,
  now: () => Date,
): Promise<Response | null> {
  const log = deps.log.child({ order_id: orderId, user_id: user.id });
  const intent = await deps.sql.begin(async (tx) => {
    const order = await readOrder(tx, orderId, { lock: true });
    if (order?.status !== "pending") return null;
    if (order.stripe_checkout_session_id && order.stripe_checkout_url) {
      return order;
    }
    const at = now().getTime();
    if (
      order.checkout_expires_at!.getTime() >=
        at + STRIPE_MIN_TTL_MS + REUSE_MARGIN_MS
    ) return order;
    // Too close to Stripe's minimum for a new session: a new end, and a new key.
    return await changeOrder(tx, orderId, {
      onlyFrom: ["pending"],
      set: { checkout_expires_at: new Date(at + CHECKOUT_TTL_MS) },
      actor: ACTOR,
    });
  });
  if (!intent) return null;
  if (intent.stripe_checkout_session_id && intent.stripe_checkout_url) {
    log.info("Reusing the open checkout of an identical request", {
      session_id: intent.stripe_checkout_session_id,
    });
    return checkoutReply(
      intent,
      intent.stripe_checkout_session_id,
      intent.stripe_checkout_url,
    );
  }

  let session: Stripe.Checkout.Session;
  try {
    session = await createStripeSession(deps, user, intent, offer);
    if (!session.url) {
      throw new Error(`Checkout session ${session.id} has no URL`);
    }
  } catch (error) {
    const reason = error instanceof Stripe.errors.StripeError
      ? `Stripe refused the checkout session: ${error.message}`
      : "Stripe could not be reached to create the checkout session";
    log.error("Checkout session creation failed", { error });
    await deps.sql.begin(async (tx) => {
      const current = await readOrder(tx, orderId, { lock: true });
      // A concurrent request recorded a session: that one stands.
      if (current?.stripe_checkout_session_id) return;
      // No session was recorded, so no URL reached anyone: the order (and its
      // reserved room) can be closed.
      await changeOrder(tx, orderId, {
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
    });
    throw new HttpError(
      502,
      "stripe_error",
      "The payment provider is unavailable; try again",
    );
  }
  const url = session.url;

  const recorded = await deps.sql.begin(async (tx) => {
    const current = await readOrder(tx, orderId, { lock: true });
    if (current?.status !== "pending") return null;
    if (
      current.stripe_checkout_session_id && current.stripe_checkout_url
    ) {
      return {
        order: current,
        sessionId: current.stripe_checkout_session_id,
        url: current.stripe_checkout_url,
        created: false,
      };
    }
    await changeOrder(tx, orderId, {
      onlyFrom: ["pending"],
      set: {
        stripe_checkout_session_id: session.id,
        stripe_checkout_url: url,
        checkout_expires_at: new Date(session.expires_at * 1000),
        stripe_customer_id: typeof session.customer === "string"
          ? session.customer
          : session.customer?.id ?? null,
      },
      actor: ACTOR,
    });
    await recordOrderEvent(tx, orderId, {
      kind: "checkout",
      message: "Checkout session created",
      detail: { session_id: session.id, price: offer.stripePriceId },
      actor: ACTOR,
      customerMessage: "Checkout opened",
    });
    return { order: current, sessionId: session.id, url, created: true };
  });
  if (!recorded || recorded.sessionId !== session.id) {
    // The order was closed (or got another session) while Stripe answered: this
    // session's URL never left here; expire it so it can never be paid.
    await closeCheckoutSession(deps.stripe, session.id).catch((error) =>
      log.warn("Could not expire an unused checkout session", {
        session_id: session.id,
        error,
      })
    );
  }
  if (!recorded) return null;
  log.info(
    recorded.created
      ? "Checkout session created"
      : "Reusing the open checkout of an identical request",
    { session_id: recorded.sessionId },
  );
  return checkoutReply(recorded.order, recorded.sessionId, recorded.url);
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
    // failed), and an ended checkout is closed before a new one opens: a few rounds.
    for (let round = 0; round < 3; round++) {
      const opened = await openOrder(deps, user, request, offer, now());
      if (opened.kind === "reuse") {
        deps.log.info("Reusing the open checkout of an identical request", {
          order_id: opened.order.id,
          user_id: user.id,
        });
        return checkoutReply(opened.order, opened.sessionId, opened.url);
      }
      if (opened.kind === "settle") {
        await settleEnded(deps, opened.order);
        continue;
      }
      const reply = await openSession(deps, user, opened.order.id, offer, now);
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
    FUNCTIONS["create-checkout-session"].env,
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
