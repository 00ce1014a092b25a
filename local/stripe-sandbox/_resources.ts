/**
 * Customers, products, prices, invoices and events: the plain CRUD endpoints.
 *
 * @module
 */
import { invalidRequest, missingParam, noSuch } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import { endSubscription, isEnded } from "./_billing.ts";
import type {
  Customer,
  DeletedCustomer,
  Interval,
  Price,
  Product,
} from "./_objects.ts";
import { makeCustomer, makePrice, makeProduct } from "./_objects.ts";
import {
  mergeMetadata,
  onlyKnown,
  optBoolean,
  optInteger,
  optMetadata,
  optObject,
  optString,
} from "./_params.ts";
import type { EventRequest, State } from "./_state.ts";
import { recordEvent } from "./_state.ts";

const CUSTOMER_PARAMS = [
  "address",
  "description",
  "email",
  "expand",
  "invoice_settings",
  "metadata",
  "name",
  "payment_method",
  "phone",
  "preferred_locales",
  "shipping",
  "tax_exempt",
] as const; // deno-fmt-ignore

/** `POST /v1/customers`. */
export function createCustomer(state: State, params: FormObject): Customer {
  onlyKnown(params, CUSTOMER_PARAMS);
  const customer = makeCustomer(
    customerFields(params),
    optMetadata(params, "metadata") ?? {},
  );
  state.store.customers.set(customer.id, customer);
  return customer;
}

/** `GET /v1/customers/{id}`: a deleted customer answers its stub, as in Stripe. */
export function retrieveCustomer(
  state: State,
  id: string,
): Customer | DeletedCustomer {
  return state.store.deletedCustomers.get(id) ??
    get(state.store.customers, "customer", id);
}

/**
 * `DELETE /v1/customers/{id}`: like Stripe, it cancels the customer's
 * subscriptions at once (`customer.subscription.deleted`), then records
 * `customer.deleted`; afterwards only retrieve knows the id.
 */
export function deleteCustomer(
  state: State,
  id: string,
  request: EventRequest,
): DeletedCustomer {
  const customer = get(state.store.customers, "customer", id);
  const events = [...state.store.subscriptions.values()]
    .filter((sub) => sub.customer === id && !isEnded(sub))
    .map((sub) =>
      endSubscription(state, sub, "cancellation_requested", request)
    );
  events.push(recordEvent(state, "customer.deleted", customer, request));
  state.store.customers.delete(id);
  const stub: DeletedCustomer = { id, object: "customer", deleted: true };
  state.store.deletedCustomers.set(id, stub);
  state.webhooks.deliver(events, "normal");
  return stub;
}

/** `POST /v1/customers/{id}`. */
export function updateCustomer(
  state: State,
  id: string,
  params: FormObject,
): Customer {
  onlyKnown(params, CUSTOMER_PARAMS);
  const customer = get(state.store.customers, "customer", id);
  const fields = customerFields(params);
  if (fields.email !== undefined) customer.email = fields.email;
  if (fields.name !== undefined) customer.name = fields.name;
  if (fields.description !== undefined) {
    customer.description = fields.description;
  }
  if (fields.phone !== undefined) customer.phone = fields.phone;
  customer.metadata = mergeMetadata(
    customer.metadata,
    optMetadata(params, "metadata"),
    params.metadata === "",
  );
  return customer;
}

function customerFields(params: FormObject) {
  const email = optString(params, "email");
  if (email !== undefined && email.length > 512) {
    throw invalidRequest("Invalid email address: too long", { param: "email" });
  }
  return {
    email,
    name: optString(params, "name"),
    description: optString(params, "description"),
    phone: optString(params, "phone"),
  };
}

/** `GET /v1/customers` filters. */
export function listCustomers(state: State, params: FormObject): Customer[] {
  const email = optString(params, "email");
  return [...state.store.customers.values()].filter((c) =>
    email === undefined || c.email === email
  );
}

/**
 * `GET /v1/customers/search`: clauses `field:'value'` joined by `AND`, for `email`,
 * `name` and `metadata['key']`.
 */
export function searchCustomers(state: State, params: FormObject) {
  const query = optString(params, "query");
  if (query === undefined) throw missingParam("query");
  const clauses = query.split(/\s+AND\s+/i).map((clause) => {
    const m = clause.trim().match(
      /^(email|name|metadata\[['"]([^'"]+)['"]\])\s*:\s*['"]([^'"]*)['"]$/,
    );
    if (m === null) {
      throw invalidRequest(
        `The Stripe sandbox cannot parse this search query: ${clause}`,
        { param: "query" },
      );
    }
    return {
      field: m[2] === undefined ? m[1] : "metadata",
      key: m[2],
      value: m[3],
    };
  });
  const data = [...state.store.customers.values()].reverse().filter((c) =>
    clauses.every(({ field, key, value }) =>
      field === "email"
        ? c.email === value
        : field === "name"
        ? c.name === value
        : c.metadata[key ?? ""] === value
    )
  );
  const limit = optInteger(params, "limit") ?? 10;
  return {
    object: "search_result",
    data: data.slice(0, limit),
    has_more: data.length > limit,
    next_page: null,
    url: "/v1/customers/search",
  };
}

/** `POST /v1/products`. */
export function createProduct(state: State, params: FormObject): Product {
  onlyKnown(params, [
    "id",
    "name",
    "active",
    "description",
    "metadata",
    "expand",
    "images",
    "tax_code",
    "unit_label",
    "url",
    "statement_descriptor",
  ]); // deno-fmt-ignore
  const name = optString(params, "name");
  if (name === undefined) throw missingParam("name");
  const id = optString(params, "id");
  if (id !== undefined && state.store.products.has(id)) {
    throw invalidRequest(`Product already exists.`, {
      code: "resource_already_exists",
      param: "id",
    });
  }
  const product = makeProduct(
    {
      id,
      name,
      active: optBoolean(params, "active") ?? true,
      description: optString(params, "description"),
    },
    optMetadata(params, "metadata") ?? {},
  );
  state.store.products.set(product.id, product);
  return product;
}

/** `POST /v1/prices`. */
export function createPrice(state: State, params: FormObject): Price {
  onlyKnown(params, [
    "currency",
    "product",
    "unit_amount",
    "recurring",
    "active",
    "metadata",
    "nickname",
    "lookup_key",
    "expand",
    "tax_behavior",
    "billing_scheme",
  ]); // deno-fmt-ignore
  const currency = optString(params, "currency");
  if (currency === undefined) throw missingParam("currency");
  const product = optString(params, "product");
  if (product === undefined) throw missingParam("product");
  if (!state.store.products.has(product)) {
    throw noSuch("product", product, "product", 400);
  }
  const unitAmount = optInteger(params, "unit_amount");
  if (unitAmount === undefined) throw missingParam("unit_amount");
  const recurring = optObject(params, "recurring");
  let interval: Interval | undefined;
  let intervalCount = 1;
  if (recurring !== undefined) {
    const value = optString(recurring, "interval", "recurring[interval]");
    if (value === undefined) throw missingParam("recurring[interval]");
    if (!["day", "week", "month", "year"].includes(value)) {
      throw invalidRequest(
        "Invalid recurring[interval]: must be one of day, week, month, or year",
        { param: "recurring[interval]" },
      );
    }
    interval = value as Interval;
    intervalCount = optInteger(
      recurring,
      "interval_count",
      "recurring[interval_count]",
    ) ?? 1;
  }
  const price = makePrice({
    product,
    currency: currency.toLowerCase(),
    unit_amount: unitAmount,
    active: optBoolean(params, "active") ?? true,
    recurring: interval === undefined
      ? null
      : { interval, interval_count: intervalCount },
    nickname: optString(params, "nickname"),
    lookup_key: optString(params, "lookup_key"),
    metadata: optMetadata(params, "metadata") ?? {},
  });
  state.store.prices.set(price.id, price);
  return price;
}

/** `GET /v1/products` filters. */
export function listProducts(state: State, params: FormObject): Product[] {
  const active = optBoolean(params, "active");
  return [...state.store.products.values()].filter((p) =>
    active === undefined || p.active === active
  );
}

/** `GET /v1/prices` filters. */
export function listPrices(state: State, params: FormObject): Price[] {
  const active = optBoolean(params, "active");
  const product = optString(params, "product");
  const type = optString(params, "type");
  return [...state.store.prices.values()].filter((p) =>
    (active === undefined || p.active === active) &&
    (product === undefined || p.product === product) &&
    (type === undefined || p.type === type)
  );
}

/** The object `id` names in `map`, or Stripe's 404 `No such <kind>: '<id>'`. */
export function get<T>(map: Map<string, T>, kind: string, id: string): T {
  const found = map.get(id);
  if (found === undefined) throw noSuch(kind, id);
  return found;
}
