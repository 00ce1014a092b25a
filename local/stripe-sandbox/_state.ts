/**
 * The sandbox's in-memory state and the events it records.
 *
 * @module
 */
import type {
  CheckoutSession,
  Customer,
  Invoice,
  LineItem,
  Metadata,
  Price,
  Product,
  StripeEvent,
  StripeObject,
  Subscription,
} from "./_objects.ts";
import { newId, now } from "./_objects.ts";
import type { WebhookDeliverer } from "./_webhooks.ts";
import type { FormObject } from "./_form.ts";

/** A checkout session with what Stripe keeps of it beyond the session object. */
export interface SessionRecord {
  session: CheckoutSession;
  lineItems: LineItem[];
  subscriptionMetadata: Metadata;
}

/** Every object the sandbox holds, in creation order. */
export interface Store {
  customers: Map<string, Customer>;
  products: Map<string, Product>;
  prices: Map<string, Price>;
  sessions: Map<string, SessionRecord>;
  subscriptions: Map<string, Subscription>;
  invoices: Map<string, Invoice>;
  events: Map<string, StripeEvent>;
}

/** The API request that caused an event; both null for actions in the checkout page. */
export interface EventRequest {
  id: string | null;
  idempotency_key: string | null;
}

/** A request made outside the API (the checkout page, the sandbox's control calls). */
export const NO_REQUEST: EventRequest = { id: null, idempotency_key: null };

/** A request received on the Stripe API, as `requests()` reports it. */
export interface SandboxRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  /** the parsed form body (POST) */
  body: FormObject;
  /** the parsed query string */
  query: FormObject;
}

/** A response kept for an idempotency key. */
export interface IdempotentResult {
  fingerprint: string;
  status: number;
  body: string;
  requestId: string;
}

/** What every handler works on. */
export interface State {
  store: Store;
  apiVersion: string;
  baseUrl: string;
  secretKey: string;
  webhooks: WebhookDeliverer;
  requests: SandboxRequest[];
  idempotency: Map<string, IdempotentResult>;
}

/** An empty store. */
export function emptyStore(): Store {
  return {
    customers: new Map(),
    products: new Map(),
    prices: new Map(),
    sessions: new Map(),
    subscriptions: new Map(),
    invoices: new Map(),
    events: new Map(),
  };
}

/** Records an event carrying a snapshot of `object` as it is now. */
export function recordEvent(
  state: State,
  type: string,
  object: StripeObject,
  request: EventRequest,
  previousAttributes?: Record<string, unknown>,
): StripeEvent {
  const event: StripeEvent = {
    id: newId("evt"),
    object: "event",
    api_version: state.apiVersion,
    created: now(),
    data: {
      object: structuredClone(object),
      ...(previousAttributes === undefined
        ? {}
        : { previous_attributes: structuredClone(previousAttributes) }),
    },
    livemode: false,
    pending_webhooks: state.webhooks.url === undefined ? 0 : 1,
    request,
    type,
  };
  state.store.events.set(event.id, event);
  return event;
}

/** The object an id names, whatever its kind (used by `expand`). */
export function findById(store: Store, id: string): StripeObject | undefined {
  return store.customers.get(id) ?? store.products.get(id) ??
    store.prices.get(id) ?? store.sessions.get(id)?.session ??
    store.subscriptions.get(id) ?? store.invoices.get(id);
}
