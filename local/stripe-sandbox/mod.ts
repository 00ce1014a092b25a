/**
 * A stateful Stripe API sandbox on loopback: the real `stripe` SDK works against it
 * unchanged (`new Stripe(key, { host: "127.0.0.1", port, protocol: "http" })`).
 * Products and prices come from the catalogue; checkouts are completed through
 * `/_sandbox` control calls, which produce Stripe's events and deliver them, signed,
 * to the webhook URL.
 *
 * Webhook endpoints are Stripe's (`/v1/webhook_endpoints`, see `_endpoints.ts`):
 * each event goes to the enabled endpoints subscribed to its type, signed with
 * each one's secret. `setWebhookUrl` keeps the single-URL view tests use.
 *
 * Control calls (no auth, JSON bodies):
 * - `POST /_sandbox/checkout/sessions/{id}/complete` `{outcome?, delivery?}`: outcome
 *   `paid` (default), `async_pending`, `async_succeeded`, `async_failed` or `expired`;
 *   delivery `normal` (default), `duplicate` or `reverse`. Answers
 *   `{session, event_ids}` once each event's first delivery attempt was made.
 * - `POST /_sandbox/events/{id}/deliver` `{copies?, concurrent?, endpoint?}`:
 *   re-delivers an event to `endpoint`, or to every enabled endpoint subscribed to it.
 * - `GET /_sandbox/deliveries`, `GET /_sandbox/events`: what happened so far.
 * - `GET|DELETE /_sandbox/calls`, `GET /_sandbox/calls/counts`: the API calls received.
 * - `POST /_sandbox/faults` `{method?, path, status?, times?, every?, latencyMs?, timeout?,
 *   loseResponse?, retryAfterSeconds?, type?, code?, message?}` (`path` exact, or a
 *   regular expression starting with `^`; without `times` every match fails),
 *   `GET|DELETE /_sandbox/faults`. The kit's format (`../sandbox-kit/mod.ts`).
 * - `POST /_sandbox/webhook` `{url}`: like `setWebhookUrl` (null clears).
 * - `GET /_sandbox/pay/{id}`: the checkout page for humans.
 * - `POST /_sandbox/subscriptions/{id}/renew` `{outcome?: "paid"|"failed"}`,
 *   `/advance` `{outcome?}` (ends the period: `.deleted` when it cancels at period
 *   end, else a renewal), `/recover`, `/dunning_exhausted`
 *   `{result: "canceled"|"unpaid"|"paused"}`, `/dispute`, `/refund`: a
 *   subscription's life after checkout, each answering
 *   `{subscription, invoice?, charge?, event_ids}` (see `_lifecycle.ts`). Without
 *   `outcome`, a renewal's charge does what the customer's payment method says. At a
 *   renewal, a subscription schedule's next phase takes over before the new period
 *   is billed, and after its last phase the schedule is released (see `_schedules.ts`).
 *   `/recover` also applies a pending update waiting for the invoice it pays.
 * - `POST /_sandbox/subscriptions/{id}/expire_pending_update` `{delivery?}`: the
 *   pending update (`payment_behavior=pending_if_incomplete`) expires now, as at its
 *   `expires_at`: `customer.subscription.pending_update_expired` (the invoice stays
 *   open; paying it then changes nothing).
 * - `POST /_sandbox/customers/{id}/payment_method` `{"outcome": "succeeds"|"declines"}`:
 *   later charges of that customer (renewals, update invoices, `invoices.pay`)
 *   succeed or are declined (default: succeed).
 * - `GET /_sandbox/portal/{id}`: the customer portal page a `billing_portal.session`'s
 *   `url` opens: the customer's subscriptions with price and period end, a cancel
 *   or resume button each, and a link to `return_url`.
 * - `POST /_sandbox/billing_portal/sessions/{id}/cancel` `{subscription?, feedback?,
 *   comment?}` and `/resume` `{subscription?}`: what the portal's buttons do under
 *   flexible billing: cancel sets `cancel_at` to the period end (with
 *   `cancel_at_period_end` still false and `cancellation_details`), resume clears it;
 *   each records `customer.subscription.updated` with `previous_attributes`.
 *   `subscription` is needed when the customer has several; a form post (the page)
 *   is redirected back to the page. Answers `{subscription, event_ids}`.
 *
 * Plan changes (`_subscription_update.ts`, `_prorations.ts`, `_schedules.ts`):
 * `subscriptions.update` with `items[{id, price}]` (without `id`, an item is added),
 * `proration_behavior` and `proration_date` (prorated by the second), and
 * `payment_behavior` (`pending_if_incomplete` takes only Stripe's parameters beside
 * it); `invoices.createPreview`, `invoices.pay`; `subscriptionSchedules` made
 * `from_subscription`, updated with `phases` and `end_behavior`, released or
 * canceled. The customer portal (`_portal.ts`): `billingPortal.sessions.create` and
 * `billingPortal.configurations` (a default one is made on first use).
 *
 * With `stateFile`, the state survives a restart (see `_persist.ts`).
 *
 * @module
 */
import Stripe from "stripe";
import type { Catalogue } from "../catalogue.ts";
import {
  CallRecorder,
  commonRoutes,
  controlRouter,
  createStateFile,
  type FaultLike,
  FaultList,
  intercept,
  type SandboxCall,
  serveLoopback,
} from "../sandbox-kit/mod.ts";
import { handleApi } from "./_api.ts";
import { seedCatalogue } from "./_catalogue.ts";
import {
  controlError,
  controlRoutes,
  faultAnswer,
  lostAnswer,
} from "./_control.ts";
import {
  awaiting,
  markDelivered,
  pointWebhook,
  subscribers,
} from "./_endpoints.ts";
import { parseForm } from "./_form.ts";
import { newId } from "./_objects.ts";
import { restore, snapshot, SnapshotSchema } from "./_persist.ts";
import type { SandboxRequest, State } from "./_state.ts";
import { emptyStore } from "./_state.ts";
import { WebhookDeliverer } from "./_webhooks.ts";

export type { SandboxRequest } from "./_state.ts";
export type { Delivery, DeliveryMode } from "./_webhooks.ts";
export { signPayload } from "./_webhooks.ts";
export type { FormObject, FormValue } from "./_form.ts";
export type { DeletedWebhookEndpoint, WebhookEndpoint } from "./_endpoints.ts";

/** Options of `startStripeSandbox`. */
export interface StripeSandboxOptions {
  /**
   * the catalogue products and prices are made from (`catalogue.json`); without
   * it the sandbox starts with none, like a new Stripe account
   */
  catalogue?: Catalogue;
  /** the only accepted API key; any other is answered with Stripe's 401 */
  secretKey: string;
  /**
   * the `whsec_…` secret of the endpoint `setWebhookUrl` and `webhookUrl` make;
   * default a random one (endpoints made through the API get their own)
   */
  webhookSecret?: string;
  /** like `setWebhookUrl(webhookUrl)` once started */
  webhookUrl?: string;
  /** default 0 (ephemeral); the hostname is always 127.0.0.1 */
  port?: number;
  /** delays between retries of a failed delivery; default [1000, 5000, 30000, 120000] */
  retryDelaysMs?: number[];
  /**
   * A JSON file the state is loaded from on start and saved to after each
   * change, so a restart keeps customers, subscriptions, events…; default none
   */
  stateFile?: string;
}

/** A running sandbox. */
export interface StripeSandbox {
  /** "http://127.0.0.1:<port>", the STRIPE_API_BASE */
  url: string;
  port: number;
  /**
   * A lost webhook and its return: `undefined` disables every endpoint (nothing is
   * delivered; events created meanwhile are never sent, as in Stripe); a URL
   * enables the endpoints at that URL again, or else points the sandbox's own
   * endpoint (all events, `webhookSecret`) at it. See `pointWebhook`.
   */
  setWebhookUrl(url: string | undefined): void;
  /** Requests received on the Stripe API (not /_sandbox), newest last. */
  requests(): SandboxRequest[];
  /** The same requests as the kit's call log (status, duration, masked key). */
  calls(): SandboxCall[];
  /** Adds a fault in the kit's format (like `POST /_sandbox/faults`). */
  addFault(fault: FaultLike): void;
  /** Waits until every delivery in flight (including scheduled retries) has settled. */
  idle(): Promise<void>;
  /** Stops the server, cancels retries and waits for deliveries in flight. */
  close(): Promise<void>;
}

/** Starts a Stripe sandbox on 127.0.0.1. */
export async function startStripeSandbox(
  options: StripeSandboxOptions,
): Promise<StripeSandbox> {
  const webhookSecret = options.webhookSecret ?? newId("whsec", 32);
  const webhooks = new WebhookDeliverer(
    options.retryDelaysMs ?? [1000, 5000, 30000, 120000],
    {
      enabled(id) {
        const record = state.store.webhookEndpoints.get(id);
        return record?.endpoint.status === "enabled"
          ? { url: record.endpoint.url, secret: record.secret }
          : undefined;
      },
      awaiting: (event) => awaiting(state.store, event),
      subscribers: (event) => subscribers(state.store, event.type),
      delivered: (event, id) => markDelivered(state.store, event, id),
    },
  );
  const state: State = {
    store: emptyStore(),
    apiVersion: Stripe.API_VERSION,
    baseUrl: "",
    secretKey: options.secretKey,
    webhooks,
    webhookSecret,
    requests: [],
    idempotency: new Map(),
  };
  const file = options.stateFile === undefined
    ? undefined
    : createStateFile(options.stateFile, { parse: SnapshotSchema.parse });
  const saved = await file?.load();
  if (saved !== undefined) restore(state, saved);
  // The catalogue wins over saved copies of its products and prices.
  if (options.catalogue !== undefined) {
    seedCatalogue(state.store, options.catalogue);
  }
  if (options.webhookUrl !== undefined) {
    pointWebhook(state, options.webhookUrl, webhookSecret);
  }
  // Saved in the background: a reply never waits for the disk (close flushes).
  const persist = (method: string) => {
    if (file === undefined || method === "GET" || method === "HEAD") return;
    file.save(() => snapshot(state)).catch((error) => {
      console.error(JSON.stringify({
        level: "error",
        msg: "Stripe sandbox could not save its state",
        path: options.stateFile,
        error: error instanceof Error ? error.message : String(error),
      }));
    });
  };
  const calls = new CallRecorder();
  const faults = new FaultList();
  const closing = new AbortController();
  const control = controlRouter(
    { ...commonRoutes(calls, faults), ...controlRoutes(state) },
    { mapError: controlError },
  );
  const server = serveLoopback(async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/_sandbox" || path.startsWith("/_sandbox/")) {
      const answer = await control(req);
      persist(req.method);
      return answer;
    }
    state.requests.push(await describe(req));
    const answer = await intercept(req, {
      faults,
      calls,
      token: apiKey(req),
      closing: closing.signal,
      answer: (r) => handleApi(state, r),
      faultAnswer,
      lostAnswer,
    });
    persist(req.method);
    return answer;
  }, { port: options.port });
  const port = server.port;
  state.baseUrl = server.url;
  let closed: Promise<void> | undefined;
  return {
    url: state.baseUrl,
    port,
    setWebhookUrl(url) {
      pointWebhook(state, url, webhookSecret);
    },
    requests: () => structuredClone(state.requests),
    calls: () => calls.list(),
    addFault: (fault) => faults.add(fault),
    idle: () => webhooks.idle(),
    close() {
      closed ??= (async () => {
        closing.abort();
        await webhooks.close();
        await server.close();
        // Deliveries settled since the last change are kept too.
        persist("POST");
        await file?.flush();
      })();
      return closed;
    },
  };
}

/** What `requests()` keeps of a request (read from a clone; the API reads the body). */
async function describe(req: Request): Promise<SandboxRequest> {
  const url = new URL(req.url);
  return {
    method: req.method,
    path: url.pathname,
    idempotencyKey: req.headers.get("idempotency-key"),
    body: parseForm(req.method === "GET" ? "" : await req.clone().text()),
    query: parseForm(url.search.slice(1)),
  };
}

/** The key a request carries (Bearer, or Basic with the key as user name). */
function apiKey(req: Request): string | undefined {
  const header = req.headers.get("authorization") ?? "";
  if (header.startsWith("Bearer ")) return header.slice(7).trim();
  if (!header.startsWith("Basic ")) return undefined;
  try {
    return atob(header.slice(6).trim()).split(":")[0];
  } catch {
    return undefined;
  }
}
