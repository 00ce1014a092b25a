/**
 * Webhook endpoints as Stripe has them (`/v1/webhook_endpoints`): each with its own
 * URL, subscribed event types (`*` for all), status and signing secret, which only
 * `create` answers with. Events go to the enabled endpoints subscribed to their type
 * when they are created; `pending_webhooks` counts those that have not answered 2xx.
 *
 * `setWebhookUrl` / `POST /_sandbox/webhook` (tests' "lost webhook") work on top of
 * endpoints, see `pointWebhook`.
 *
 * @module
 */
import { invalidRequest, missingParam, noSuch } from "./_errors.ts";
import { API_VERSIONS, ENABLED_EVENTS } from "./_event_types.ts";
import type { FormObject } from "./_form.ts";
import type { Metadata, StripeEvent } from "./_objects.ts";
import { newId, now } from "./_objects.ts";
import {
  mergeMetadata,
  onlyKnown,
  optArray,
  optBoolean,
  optMetadata,
  optString,
} from "./_params.ts";
import type { State, Store } from "./_state.ts";

/** The `webhook_endpoint` object, as every call but `create` answers it. */
export interface WebhookEndpoint {
  id: string;
  object: "webhook_endpoint";
  api_version: string | null;
  application: string | null;
  created: number;
  description: string | null;
  enabled_events: string[];
  livemode: false;
  metadata: Metadata;
  status: "enabled" | "disabled";
  url: string;
}

/** What `DELETE /v1/webhook_endpoints/{id}` answers. */
export interface DeletedWebhookEndpoint {
  id: string;
  object: "webhook_endpoint";
  deleted: true;
}

/** An endpoint with what Stripe keeps of it beyond the object. */
export interface EndpointRecord {
  endpoint: WebhookEndpoint;
  /** the `whsec_…` its deliveries are signed with */
  secret: string;
  /** created by `setWebhookUrl` rather than through the API */
  managed: boolean;
}

/** The endpoints an event was sent to that have not answered it with a 2xx yet. */
export interface EventDelivery {
  id: string;
  awaiting: string[];
}

/** Stripe's limit of webhook endpoints per account and mode. */
const MAX_ENDPOINTS = 16;

const CREATE_PARAMS = [
  "api_version",
  "connect",
  "description",
  "enabled_events",
  "expand",
  "metadata",
  "url",
];
const UPDATE_PARAMS = [
  "description",
  "disabled",
  "enabled_events",
  "expand",
  "metadata",
  "url",
];

/** A new `whsec_…` signing secret. */
function newSecret(): string {
  return newId("whsec", 32);
}

/** `POST /v1/webhook_endpoints`: the only answer that carries `secret`. */
export function createEndpoint(
  state: State,
  params: FormObject,
): WebhookEndpoint & { secret: string } {
  onlyKnown(params, CREATE_PARAMS);
  const url = endpointUrl(params);
  if (url === undefined) throw missingParam("url");
  const events = enabledEvents(params);
  if (events === undefined) throw missingParam("enabled_events");
  const apiVersion = optString(params, "api_version");
  if (apiVersion !== undefined && !API_VERSIONS.has(apiVersion)) {
    throw invalidRequest(`Invalid api_version: "${apiVersion}"`, {
      param: "api_version",
    });
  }
  // Connect endpoints get events of connected accounts; the sandbox has none.
  optBoolean(params, "connect");
  const record = addEndpoint(state.store, {
    url,
    events,
    apiVersion: apiVersion ?? null,
    description: description(params) ?? null,
    metadata: optMetadata(params, "metadata") ?? {},
    secret: newSecret(),
    managed: false,
  });
  return { ...record.endpoint, secret: record.secret };
}

/** `GET /v1/webhook_endpoints/{id}`. */
export function getEndpoint(store: Store, id: string): EndpointRecord {
  const record = store.webhookEndpoints.get(id);
  if (record === undefined) throw noSuch("webhook endpoint", id);
  return record;
}

/** Every endpoint, oldest first (`page` answers newest first). */
export function listEndpoints(store: Store): WebhookEndpoint[] {
  return [...store.webhookEndpoints.values()].map((r) => r.endpoint);
}

/** `POST /v1/webhook_endpoints/{id}`: `disabled` moves `status`. */
export function updateEndpoint(
  state: State,
  id: string,
  params: FormObject,
): WebhookEndpoint {
  onlyKnown(params, UPDATE_PARAMS);
  const { endpoint } = getEndpoint(state.store, id);
  const url = endpointUrl(params);
  const events = enabledEvents(params);
  const disabled = optBoolean(params, "disabled");
  const text = description(params);
  const metadata = optMetadata(params, "metadata");
  if (url !== undefined) endpoint.url = url;
  if (events !== undefined) endpoint.enabled_events = events;
  if (disabled !== undefined) {
    endpoint.status = disabled ? "disabled" : "enabled";
  }
  if (text !== undefined) endpoint.description = text;
  endpoint.metadata = mergeMetadata(
    endpoint.metadata,
    metadata,
    params.metadata === "",
  );
  return endpoint;
}

/** `DELETE /v1/webhook_endpoints/{id}`: later calls on the id are 404. */
export function deleteEndpoint(
  state: State,
  id: string,
): DeletedWebhookEndpoint {
  getEndpoint(state.store, id);
  state.store.webhookEndpoints.delete(id);
  return { id, object: "webhook_endpoint", deleted: true };
}

/**
 * The enabled endpoints subscribed to an event of `type`, the ones it is sent to.
 *
 * Like Stripe, a disabled endpoint is not sent the events created meanwhile, not
 * then and not once it is enabled again ("Stripe won't attempt to resend any events
 * generated while the respective webhook endpoint is disabled", docs: Workbench,
 * webhooks), so it does not count in their `pending_webhooks` either: an event
 * created while no endpoint listens has `pending_webhooks` 0 and
 * `delivery_success=false` does not list it.
 */
export function subscribers(store: Store, type: string): string[] {
  return [...store.webhookEndpoints.values()]
    .filter(({ endpoint }) =>
      endpoint.status === "enabled" &&
      (endpoint.enabled_events.includes("*") ||
        endpoint.enabled_events.includes(type))
    )
    .map(({ endpoint }) => endpoint.id);
}

/** Records that `endpointId` answered `event` with a 2xx. */
export function markDelivered(
  store: Store,
  event: StripeEvent,
  endpointId: string,
): void {
  const delivery = store.eventDeliveries.get(event.id);
  if (delivery === undefined) return;
  delivery.awaiting = delivery.awaiting.filter((id) => id !== endpointId);
  event.pending_webhooks = delivery.awaiting.length;
}

/** The endpoints `event` was sent to that have not answered it with a 2xx yet. */
export function awaiting(store: Store, event: StripeEvent): string[] {
  return [...store.eventDeliveries.get(event.id)?.awaiting ?? []];
}

/**
 * What `setWebhookUrl` and `POST /_sandbox/webhook` do, so tests can lose the
 * webhook and get it back:
 * - `undefined`: every endpoint is disabled, so nothing is delivered (and, as in
 *   Stripe, events created meanwhile are never sent: see `subscribers`);
 * - a URL: the endpoints at that URL are enabled again; if none is, the sandbox's
 *   own endpoint (all events, signed with `secret`, created on first use) moves to
 *   that URL and is enabled.
 */
export function pointWebhook(
  state: State,
  url: string | undefined,
  secret: string,
): void {
  const records = [...state.store.webhookEndpoints.values()];
  if (url === undefined) {
    for (const { endpoint } of records) endpoint.status = "disabled";
    return;
  }
  const atUrl = records.filter((r) => r.endpoint.url === url);
  for (const { endpoint } of atUrl) endpoint.status = "enabled";
  if (atUrl.length > 0) return;
  const managed = records.find((r) => r.managed);
  if (managed !== undefined) {
    managed.endpoint.url = url;
    managed.endpoint.status = "enabled";
    managed.secret = secret;
    return;
  }
  addEndpoint(state.store, {
    url,
    events: ["*"],
    apiVersion: null,
    description: "Sandbox webhook (setWebhookUrl)",
    metadata: {},
    secret,
    managed: true,
  });
}

function addEndpoint(
  store: Store,
  fields: {
    url: string;
    events: string[];
    apiVersion: string | null;
    description: string | null;
    metadata: Metadata;
    secret: string;
    managed: boolean;
  },
): EndpointRecord {
  if (store.webhookEndpoints.size >= MAX_ENDPOINTS) {
    throw invalidRequest(
      `You have reached the maximum of ${MAX_ENDPOINTS} test webhook endpoints.`,
    );
  }
  const endpoint: WebhookEndpoint = {
    id: newId("we"),
    object: "webhook_endpoint",
    api_version: fields.apiVersion,
    application: null,
    created: now(),
    description: fields.description,
    enabled_events: fields.events,
    livemode: false,
    metadata: fields.metadata,
    status: "enabled",
    url: fields.url,
  };
  const record = { endpoint, secret: fields.secret, managed: fields.managed };
  store.webhookEndpoints.set(endpoint.id, record);
  return record;
}

/** `url`: an http(s) URL (test mode takes plain http, and loopback here). */
function endpointUrl(params: FormObject): string | undefined {
  const url = optString(params, "url");
  if (url === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !/^https?:$/.test(parsed.protocol)) {
    throw invalidRequest(`Invalid URL: "${url}" is not an http(s) URL`, {
      param: "url",
    });
  }
  return url;
}

/** `enabled_events`: known event type names or `*`, at least one. */
function enabledEvents(params: FormObject): string[] | undefined {
  const list = optArray(params, "enabled_events");
  if (list === undefined) return undefined;
  if (list.length === 0) {
    throw invalidRequest(
      "Invalid enabled_events: it must name at least one event type",
      { param: "enabled_events" },
    );
  }
  for (const [i, name] of list.entries()) {
    if (typeof name !== "string" || !ENABLED_EVENTS.has(name)) {
      throw invalidRequest(
        `Invalid enabled_events[${i}]: ${
          JSON.stringify(name)
        } is not an event type (or "*")`,
        { param: "enabled_events" },
      );
    }
  }
  return [...new Set(list as string[])];
}

/** `description`: "" unsets it. */
function description(params: FormObject): string | null | undefined {
  const text = optString(params, "description");
  if (text === undefined) return undefined;
  if (text.length > 5000) {
    throw invalidRequest("Invalid description: at most 5000 characters", {
      param: "description",
    });
  }
  return text === "" ? null : text;
}
