/**
 * The Stripe API under `/v1`: authentication, idempotency keys, routing, `expand[]`,
 * and Stripe's error bodies (recording and faults come first, in `mod.ts`).
 *
 * @module
 */
import { cancelSubscription, getSubscription } from "./_billing.ts";
import {
  createPriceWithLookupKey,
  listPricesByLookupKey,
  updatePrice,
  updateProduct,
} from "./_catalog_writes.ts";
import { createSession, expireSession, getSession } from "./_checkout.ts";
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listEndpoints,
  updateEndpoint,
} from "./_endpoints.ts";
import {
  json,
  missingParam,
  noSuch,
  StripeApiError,
  unrecognizedUrl,
} from "./_errors.ts";
import { listEvents } from "./_events.ts";
import type { FormObject } from "./_form.ts";
import { canonical, parseForm } from "./_form.ts";
import { newId } from "./_objects.ts";
import { expand, page } from "./_page.ts";
import { optString } from "./_params.ts";
import { listInvoicePayments } from "./_payments.ts";
import {
  createCustomer,
  createProduct,
  deleteCustomer,
  get,
  listCustomers,
  listProducts,
  retrieveCustomer,
  searchCustomers,
  updateCustomer,
} from "./_resources.ts";
import type { EventRequest, State } from "./_state.ts";
import { previewInvoice } from "./_prorations.ts";
import { payInvoice, updateSubscription } from "./_subscription_update.ts";
import {
  cancelSchedule,
  createSchedule,
  getSchedule,
  releaseSchedule,
  updateSchedule,
} from "./_schedules.ts";
import {
  createConfiguration,
  createPortalSession,
  getConfiguration,
} from "./_portal.ts";

interface Call {
  state: State;
  params: FormObject;
  /** the id in the path, if the route has one */
  id: string;
  request: EventRequest;
}

type Route = [method: string, path: RegExp, handler: (call: Call) => unknown];

const ID = "([^/]+)";

const ROUTES: Route[] = [
  ["POST", /^\/v1\/customers$/, (c) => createCustomer(c.state, c.params)],
  [
    "GET",
    /^\/v1\/customers$/,
    (c) => page(listCustomers(c.state, c.params), c.params, "/v1/customers"),
  ],
  [
    "GET",
    /^\/v1\/customers\/search$/,
    (c) => searchCustomers(c.state, c.params),
  ],
  [
    "GET",
    route(`/v1/customers/${ID}`),
    (c) => retrieveCustomer(c.state, c.id),
  ],
  [
    "DELETE",
    route(`/v1/customers/${ID}`),
    (c) => deleteCustomer(c.state, c.id, c.request),
  ],
  [
    "POST",
    route(`/v1/customers/${ID}`),
    (c) => updateCustomer(c.state, c.id, c.params),
  ],
  ["POST", /^\/v1\/products$/, (c) => createProduct(c.state, c.params)],
  [
    "GET",
    /^\/v1\/products$/,
    (c) => page(listProducts(c.state, c.params), c.params, "/v1/products"),
  ],
  [
    "GET",
    route(`/v1/products/${ID}`),
    (c) => get(c.state.store.products, "product", c.id),
  ],
  [
    "POST",
    route(`/v1/products/${ID}`),
    (c) => updateProduct(c.state, c.id, c.params),
  ],
  [
    "POST",
    /^\/v1\/prices$/,
    (c) => createPriceWithLookupKey(c.state, c.params),
  ],
  [
    "GET",
    /^\/v1\/prices$/,
    (c) =>
      page(listPricesByLookupKey(c.state, c.params), c.params, "/v1/prices"),
  ],
  [
    "POST",
    route(`/v1/prices/${ID}`),
    (c) => updatePrice(c.state, c.id, c.params),
  ],
  [
    "GET",
    route(`/v1/prices/${ID}`),
    (c) => get(c.state.store.prices, "price", c.id),
  ],
  [
    "POST",
    /^\/v1\/checkout\/sessions$/,
    (c) => createSession(c.state, c.params),
  ],
  ["GET", /^\/v1\/checkout\/sessions$/, listSessions],
  [
    "GET",
    route(`/v1/checkout/sessions/${ID}`),
    (c) => getSession(c.state, c.id).session,
  ],
  [
    "GET",
    route(`/v1/checkout/sessions/${ID}/line_items`),
    (c) =>
      page(
        getSession(c.state, c.id).lineItems,
        c.params,
        `/v1/checkout/sessions/${c.id}/line_items`,
      ),
  ],
  ["POST", route(`/v1/checkout/sessions/${ID}/expire`), (c) => {
    const { session, events } = expireSession(c.state, c.id, c.request);
    c.state.webhooks.deliver(events, "normal");
    return session;
  }],
  ["GET", /^\/v1\/subscriptions$/, listSubscriptions],
  [
    "GET",
    route(`/v1/subscriptions/${ID}`),
    (c) => getSubscription(c.state, c.id),
  ],
  [
    "POST",
    route(`/v1/subscriptions/${ID}`),
    (c) => updateSubscription(c.state, c.id, c.params, c.request),
  ],
  [
    "DELETE",
    route(`/v1/subscriptions/${ID}`),
    (c) => cancelSubscription(c.state, c.id, c.params, c.request),
  ],
  [
    "GET",
    /^\/v1\/invoices$/,
    (c) =>
      page(
        filter(c.state.store.invoices, c.params, ["customer", "status"]),
        c.params,
        "/v1/invoices",
      ),
  ],
  [
    "POST",
    /^\/v1\/invoices\/create_preview$/,
    (c) => previewInvoice(c.state, c.params),
  ],
  [
    "GET",
    route(`/v1/invoices/${ID}`),
    (c) => get(c.state.store.invoices, "invoice", c.id),
  ],
  [
    "POST",
    route(`/v1/invoices/${ID}/pay`),
    (c) =>
      payInvoice(
        c.state,
        get(c.state.store.invoices, "invoice", c.id),
        c.params,
        c.request,
      ),
  ],
  [
    "POST",
    /^\/v1\/subscription_schedules$/,
    (c) => createSchedule(c.state, c.params, c.request),
  ],
  [
    "GET",
    /^\/v1\/subscription_schedules$/,
    (c) =>
      page(
        filter(c.state.store.subscriptionSchedules, c.params, ["customer"]),
        c.params,
        "/v1/subscription_schedules",
      ),
  ],
  [
    "GET",
    route(`/v1/subscription_schedules/${ID}`),
    (c) => getSchedule(c.state, c.id),
  ],
  [
    "POST",
    route(`/v1/subscription_schedules/${ID}`),
    (c) => updateSchedule(c.state, c.id, c.params, c.request),
  ],
  [
    "POST",
    route(`/v1/subscription_schedules/${ID}/release`),
    (c) => releaseSchedule(c.state, c.id, c.params, c.request),
  ],
  [
    "POST",
    route(`/v1/subscription_schedules/${ID}/cancel`),
    (c) => cancelSchedule(c.state, c.id, c.params, c.request),
  ],
  [
    "POST",
    /^\/v1\/billing_portal\/sessions$/,
    (c) => createPortalSession(c.state, c.params),
  ],
  [
    "POST",
    /^\/v1\/billing_portal\/configurations$/,
    (c) => createConfiguration(c.state, c.params),
  ],
  [
    "GET",
    /^\/v1\/billing_portal\/configurations$/,
    (c) =>
      page(
        [...c.state.store.portalConfigurations.values()],
        c.params,
        "/v1/billing_portal/configurations",
      ),
  ],
  [
    "GET",
    route(`/v1/billing_portal/configurations/${ID}`),
    (c) => getConfiguration(c.state, c.id),
  ],
  [
    "GET",
    route(`/v1/invoices/${ID}/lines`),
    (c) =>
      page(
        get(c.state.store.invoices, "invoice", c.id).lines.data,
        c.params,
        `/v1/invoices/${c.id}/lines`,
      ),
  ],
  ["GET", /^\/v1\/subscription_items$/, listSubscriptionItems],
  [
    "GET",
    route(`/v1/subscription_items/${ID}`),
    (c) => subscriptionItem(c.state, c.id),
  ],
  [
    "GET",
    /^\/v1\/payment_intents$/,
    (c) =>
      page(
        filter(c.state.store.paymentIntents, c.params, ["customer"]),
        c.params,
        "/v1/payment_intents",
      ),
  ],
  [
    "GET",
    route(`/v1/payment_intents/${ID}`),
    (c) => get(c.state.store.paymentIntents, "payment_intent", c.id),
  ],
  [
    "GET",
    /^\/v1\/charges$/,
    (c) =>
      page(
        filter(c.state.store.charges, c.params, ["customer", "payment_intent"]),
        c.params,
        "/v1/charges",
      ),
  ],
  [
    "GET",
    route(`/v1/charges/${ID}`),
    (c) => get(c.state.store.charges, "charge", c.id),
  ],
  [
    "GET",
    /^\/v1\/invoice_payments$/,
    (c) =>
      page(
        listInvoicePayments(c.state, c.params),
        c.params,
        "/v1/invoice_payments",
      ),
  ],
  [
    "GET",
    route(`/v1/invoice_payments/${ID}`),
    (c) => get(c.state.store.invoicePayments, "invoice_payment", c.id),
  ],
  [
    "GET",
    /^\/v1\/disputes$/,
    (c) =>
      page(
        filter(c.state.store.disputes, c.params, ["charge", "payment_intent"]),
        c.params,
        "/v1/disputes",
      ),
  ],
  [
    "GET",
    route(`/v1/disputes/${ID}`),
    (c) => get(c.state.store.disputes, "dispute", c.id),
  ],
  [
    "GET",
    /^\/v1\/refunds$/,
    (c) =>
      page(
        filter(c.state.store.refunds, c.params, ["charge", "payment_intent"]),
        c.params,
        "/v1/refunds",
      ),
  ],
  [
    "GET",
    route(`/v1/refunds/${ID}`),
    (c) => get(c.state.store.refunds, "refund", c.id),
  ],
  [
    "GET",
    /^\/v1\/events$/,
    (c) => page(listEvents(c.state.store, c.params), c.params, "/v1/events"),
  ],
  [
    "GET",
    route(`/v1/events/${ID}`),
    (c) => get(c.state.store.events, "event", c.id),
  ],
  [
    "POST",
    /^\/v1\/webhook_endpoints$/,
    (c) => createEndpoint(c.state, c.params),
  ],
  [
    "GET",
    /^\/v1\/webhook_endpoints$/,
    (c) =>
      page(
        listEndpoints(c.state.store),
        c.params,
        "/v1/webhook_endpoints",
      ),
  ],
  [
    "GET",
    route(`/v1/webhook_endpoints/${ID}`),
    (c) => getEndpoint(c.state.store, c.id).endpoint,
  ],
  [
    "POST",
    route(`/v1/webhook_endpoints/${ID}`),
    (c) => updateEndpoint(c.state, c.id, c.params),
  ],
  [
    "DELETE",
    route(`/v1/webhook_endpoints/${ID}`),
    (c) => deleteEndpoint(c.state, c.id),
  ],
]; // deno-fmt-ignore

function route(pattern: string): RegExp {
  return new RegExp(`^${pattern}$`);
}

function listSessions(c: Call) {
  const sessions = [...c.state.store.sessions.values()].map((r) => r.session);
  return page(
    filter(sessions, c.params, ["customer", "subscription", "status"]),
    c.params,
    "/v1/checkout/sessions",
  );
}

function listSubscriptionItems(c: Call) {
  const id = optString(c.params, "subscription");
  if (id === undefined) throw missingParam("subscription");
  return page(
    getSubscription(c.state, id).items.data,
    c.params,
    `/v1/subscription_items?subscription=${id}`,
  );
}

function subscriptionItem(state: State, id: string) {
  for (const sub of state.store.subscriptions.values()) {
    const item = sub.items.data.find((i) => i.id === id);
    if (item !== undefined) return item;
  }
  throw noSuch("subscription_item", id);
}

function listSubscriptions(c: Call) {
  const status = optString(c.params, "status");
  const subs = filter(c.state.store.subscriptions, c.params, ["customer"])
    .filter((s) =>
      status === "all" ||
      (status === undefined
        ? s.status !== "canceled" && s.status !== "incomplete_expired"
        : s.status === status)
    );
  return page(subs, c.params, "/v1/subscriptions");
}

function filter<T extends object>(
  items: Iterable<T> | Map<string, T>,
  params: FormObject,
  keys: string[],
): T[] {
  const all = items instanceof Map ? [...items.values()] : [...items];
  return all.filter((item) =>
    keys.every((key) => {
      const wanted = optString(params, key);
      return wanted === undefined ||
        (item as Record<string, unknown>)[key] === wanted;
    })
  );
}

/** Answers one request on the Stripe API. */
export async function handleApi(state: State, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const body = parseForm(req.method === "GET" ? "" : await req.text());
  const query = parseForm(url.search.slice(1));
  const idempotencyKey = req.headers.get("idempotency-key");
  const path = url.pathname;
  const requestId = newId("req", 14);
  const headers = {
    "request-id": requestId,
    "stripe-version": state.apiVersion,
  };
  try {
    authenticate(state, req);
    const found = ROUTES.find(([m, re]) => m === req.method && re.test(path));
    const match = found?.[1].exec(path);
    if (found === undefined || match == null) {
      throw unrecognizedUrl(req.method, path);
    }
    const handler = found[2];
    const params = { ...query, ...body };
    const idempotent = req.method === "POST" && idempotencyKey !== null;
    const fingerprint = `${req.method} ${path} ${canonical(params)}`;
    if (idempotent) {
      const replay = replayed(state, idempotencyKey, fingerprint);
      if (replay !== undefined) return replay;
    }
    const call: Call = {
      state,
      params,
      id: decodeURIComponent(match[1] ?? ""),
      request: { id: requestId, idempotency_key: idempotencyKey },
    };
    const result = expand(state.store, handler(call), params, {
      line_items: (session) => lineItemsOf(state, session),
    });
    const text = JSON.stringify(result, null, 2);
    if (idempotent) {
      state.idempotency.set(idempotencyKey, {
        fingerprint,
        status: 200,
        body: text,
        requestId,
      });
    }
    return new Response(text, {
      status: 200,
      headers: { ...headers, "content-type": "application/json" },
    });
  } catch (error) {
    if (error instanceof StripeApiError) {
      return json(error.status, error.body(), headers);
    }
    console.error("Stripe sandbox failed on a request:", error);
    return json(500, {
      error: {
        type: "api_error",
        message: "An unexpected error occurred in the Stripe sandbox",
      },
    }, headers);
  }
}

function lineItemsOf(state: State, session: unknown) {
  const id = (session as { id?: unknown }).id;
  const record = state.store.sessions.get(typeof id === "string" ? id : "");
  return page(
    record?.lineItems ?? [],
    { limit: "100" },
    `/v1/checkout/sessions/${String(id)}/line_items`,
  ); // deno-fmt-ignore
}

function authenticate(state: State, req: Request): void {
  const header = req.headers.get("authorization") ?? "";
  let key: string | undefined;
  if (header.startsWith("Bearer ")) key = header.slice(7).trim();
  else if (header.startsWith("Basic ")) {
    try {
      key = atob(header.slice(6).trim()).split(":")[0];
    } catch {
      key = "";
    }
  }
  if (key === undefined || key === "") {
    throw new StripeApiError(
      401,
      "invalid_request_error",
      "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
    );
  }
  if (key !== state.secretKey) {
    throw new StripeApiError(
      401,
      "invalid_request_error",
      `Invalid API Key provided: ${maskKey(key)}`,
    );
  }
}

/** A key as Stripe shows it in errors: its prefix and last four characters. */
export function maskKey(key: string): string {
  const prefix = key.match(/^[a-z]+_(test_|live_)?/)?.[0] ?? "";
  if (key.length - prefix.length <= 8) return `${prefix}${"*".repeat(8)}`;
  return `${prefix}${"*".repeat(key.length - prefix.length - 4)}${
    key.slice(-4)
  }`;
}

function replayed(
  state: State,
  key: string,
  fingerprint: string,
): Response | undefined {
  if (key.length > 255) {
    throw new StripeApiError(
      400,
      "invalid_request_error",
      `Idempotency key is too long: it has ${key.length} characters, at most 255 are allowed`,
      { param: "Idempotency-Key" },
    );
  }
  const stored = state.idempotency.get(key);
  if (stored === undefined) return undefined;
  if (stored.fingerprint !== fingerprint) {
    throw new StripeApiError(
      400,
      "idempotency_error",
      `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
    );
  }
  return new Response(stored.body, {
    status: stored.status,
    headers: {
      "content-type": "application/json",
      "request-id": stored.requestId,
      "stripe-version": state.apiVersion,
      "idempotent-replayed": "true",
      "original-request": stored.requestId,
    },
  });
}
