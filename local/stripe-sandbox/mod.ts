/**
 * A stateful Stripe API sandbox on loopback: the real `stripe` SDK works against it
 * unchanged (`new Stripe(key, { host: "127.0.0.1", port, protocol: "http" })`).
 * Products and prices come from the catalogue; checkouts are completed through
 * `/_sandbox` control calls, which produce Stripe's events and deliver them, signed,
 * to the webhook URL.
 *
 * Control calls (no auth, JSON bodies):
 * - `POST /_sandbox/checkout/sessions/{id}/complete` `{outcome?, delivery?}`: outcome
 *   `paid` (default), `async_pending`, `async_succeeded`, `async_failed` or `expired`;
 *   delivery `normal` (default), `duplicate` or `reverse`. Answers
 *   `{session, event_ids}` once each event's first delivery attempt was made.
 * - `POST /_sandbox/events/{id}/deliver` `{copies?, concurrent?}`: re-delivers an event.
 * - `GET /_sandbox/deliveries`, `GET /_sandbox/events`: what happened so far.
 * - `POST /_sandbox/faults` `{method?, path, status, times?, type?, code?, message?}`
 *   (`path` may end in `*`), `DELETE /_sandbox/faults`.
 * - `POST /_sandbox/webhook` `{url}`: sets (or, with null, clears) the webhook URL.
 * - `GET /_sandbox/pay/{id}`: the checkout page for humans.
 *
 * @module
 */
import Stripe from "stripe";
import type { Catalogue } from "../catalogue.ts";
import { handleApi } from "./_api.ts";
import { seedCatalogue } from "./_catalogue.ts";
import { handleControl } from "./_control.ts";
import type { SandboxRequest, State } from "./_state.ts";
import { emptyStore } from "./_state.ts";
import { WebhookDeliverer } from "./_webhooks.ts";

export type { SandboxRequest } from "./_state.ts";
export type { Delivery, DeliveryMode } from "./_webhooks.ts";
export { signPayload } from "./_webhooks.ts";
export type { FormObject, FormValue } from "./_form.ts";

/** Options of `startStripeSandbox`. */
export interface StripeSandboxOptions {
  /** the catalogue products and prices are made from (`local/catalogue.ts`) */
  catalogue: Catalogue;
  /** the only accepted API key; any other is answered with Stripe's 401 */
  secretKey: string;
  /** the `whsec_…` secret deliveries are signed with */
  webhookSecret: string;
  /** where events are POSTed; settable later */
  webhookUrl?: string;
  /** default 0 (ephemeral); the hostname is always 127.0.0.1 */
  port?: number;
  /** delays between retries of a failed delivery; default [1000, 5000, 30000, 120000] */
  retryDelaysMs?: number[];
}

/** A running sandbox. */
export interface StripeSandbox {
  /** "http://127.0.0.1:<port>", the STRIPE_API_BASE */
  url: string;
  port: number;
  /** Sets (or clears) the URL events are POSTed to. */
  setWebhookUrl(url: string | undefined): void;
  /** Requests received on the Stripe API (not /_sandbox), newest last. */
  requests(): SandboxRequest[];
  /** Waits until every delivery in flight (including scheduled retries) has settled. */
  idle(): Promise<void>;
  /** Stops the server, cancels retries and waits for deliveries in flight. */
  close(): Promise<void>;
}

/** Starts a Stripe sandbox on 127.0.0.1. */
export async function startStripeSandbox(
  options: StripeSandboxOptions,
): Promise<StripeSandbox> {
  const webhooks = new WebhookDeliverer(
    options.webhookSecret,
    options.retryDelaysMs ?? [1000, 5000, 30000, 120000],
    options.webhookUrl,
  );
  const state: State = {
    store: emptyStore(),
    apiVersion: Stripe.API_VERSION,
    baseUrl: "",
    secretKey: options.secretKey,
    webhooks,
    requests: [],
    faults: [],
    idempotency: new Map(),
  };
  seedCatalogue(state.store, options.catalogue);
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: ({ port }) => resolve(port),
    },
    (req) => {
      const path = new URL(req.url).pathname;
      return path === "/_sandbox" || path.startsWith("/_sandbox/")
        ? handleControl(state, req)
        : handleApi(state, req);
    },
  );
  const port = await listening;
  state.baseUrl = `http://127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url: state.baseUrl,
    port,
    setWebhookUrl(url) {
      webhooks.url = url;
    },
    requests: () => structuredClone(state.requests),
    idle: () => webhooks.idle(),
    close() {
      closed ??= (async () => {
        await webhooks.close();
        await server.shutdown();
      })();
      return closed;
    },
  };
}
