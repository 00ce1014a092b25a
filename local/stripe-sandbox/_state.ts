/**
 * The sandbox's in-memory state and the events it records.
 *
 * @module
 */
import type {
  Charge,
  CheckoutSession,
  Customer,
  DeletedCustomer,
  Dispute,
  Invoice,
  InvoiceLine,
  InvoicePayment,
  LineItem,
  Metadata,
  PaymentIntent,
  PortalConfiguration,
  PortalSession,
  Price,
  Product,
  Refund,
  StripeEvent,
  StripeObject,
  Subscription,
  SubscriptionSchedule,
} from "./_objects.ts";
import { newId, now } from "./_objects.ts";
import type { EndpointRecord, EventDelivery } from "./_endpoints.ts";
import { subscribers } from "./_endpoints.ts";
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
  /** customers deleted through the API: retrieve answers their stub, nothing else */
  deletedCustomers: Map<string, DeletedCustomer>;
  products: Map<string, Product>;
  prices: Map<string, Price>;
  sessions: Map<string, SessionRecord>;
  subscriptions: Map<string, Subscription>;
  invoices: Map<string, Invoice>;
  paymentIntents: Map<string, PaymentIntent>;
  charges: Map<string, Charge>;
  invoicePayments: Map<string, InvoicePayment>;
  disputes: Map<string, Dispute>;
  refunds: Map<string, Refund>;
  events: Map<string, StripeEvent>;
  webhookEndpoints: Map<string, EndpointRecord>;
  /** per event, the endpoints that have not answered it with a 2xx yet */
  eventDeliveries: Map<string, EventDelivery>;
  subscriptionSchedules: Map<string, SubscriptionSchedule>;
  portalConfigurations: Map<string, PortalConfiguration>;
  portalSessions: Map<string, PortalSession>;
  /** proration lines waiting for a subscription's next invoice, by invoice item id */
  pendingItems: Map<string, PendingItem>;
  /** per customer, whether later charges succeed (`/_sandbox/customers/{id}/payment_method`) */
  paymentMethods: Map<string, { outcome: "succeeds" | "declines" }>;
}

/** A proration line waiting for the next invoice of its subscription. */
export interface PendingItem {
  subscription: string;
  line: InvoiceLine;
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
  /** the secret of the sandbox's own endpoint (`setWebhookUrl`) */
  webhookSecret: string;
  requests: SandboxRequest[];
  idempotency: Map<string, IdempotentResult>;
}

/** An empty store. */
export function emptyStore(): Store {
  return {
    customers: new Map(),
    deletedCustomers: new Map(),
    products: new Map(),
    prices: new Map(),
    sessions: new Map(),
    subscriptions: new Map(),
    invoices: new Map(),
    paymentIntents: new Map(),
    charges: new Map(),
    invoicePayments: new Map(),
    disputes: new Map(),
    refunds: new Map(),
    events: new Map(),
    webhookEndpoints: new Map(),
    eventDeliveries: new Map(),
    subscriptionSchedules: new Map(),
    portalConfigurations: new Map(),
    portalSessions: new Map(),
    pendingItems: new Map(),
    paymentMethods: new Map(),
  };
}

/**
 * Records an event carrying a snapshot of `object` as it is now, due to the enabled
 * endpoints subscribed to its type (`pending_webhooks` counts them).
 */
export function recordEvent(
  state: State,
  type: string,
  object: StripeObject,
  request: EventRequest,
  previousAttributes?: Record<string, unknown>,
): StripeEvent {
  const targets = subscribers(state.store, type);
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
    pending_webhooks: targets.length,
    request,
    type,
  };
  state.store.events.set(event.id, event);
  state.store.eventDeliveries.set(event.id, {
    id: event.id,
    awaiting: targets,
  });
  return event;
}

/** The object an id names, whatever its kind (used by `expand`). */
export function findById(store: Store, id: string): StripeObject | undefined {
  return store.customers.get(id) ?? store.products.get(id) ??
    store.prices.get(id) ?? store.sessions.get(id)?.session ??
    store.subscriptions.get(id) ?? store.invoices.get(id) ??
    store.paymentIntents.get(id) ?? store.charges.get(id) ??
    store.invoicePayments.get(id) ?? store.disputes.get(id) ??
    store.refunds.get(id) ?? store.subscriptionSchedules.get(id) ??
    store.portalConfigurations.get(id) ?? store.portalSessions.get(id);
}
