/**
 * The catalogue writes `npm run setup` makes, as Stripe has them: products updated,
 * prices created with a unique `lookup_key` (`transfer_lookup_key` moves it from the
 * price holding it), prices updated (`active`, `lookup_key`, `metadata`, `nickname`;
 * the amount is immutable: an unknown parameter there), and `GET /v1/prices` with
 * `lookup_keys[]`.
 *
 * @module
 */
import { invalidRequest } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type { Price, Product } from "./_objects.ts";
import {
  mergeMetadata,
  onlyKnown,
  optArray,
  optBoolean,
  optMetadata,
  optString,
} from "./_params.ts";
import { createPrice, get, listPrices } from "./_resources.ts";
import type { State } from "./_state.ts";

const LOOKUP_KEY_MAX = 200;

/** `POST /v1/products/{id}`. */
export function updateProduct(
  state: State,
  id: string,
  params: FormObject,
): Product {
  onlyKnown(params, [
    "active",
    "default_price",
    "description",
    "expand",
    "images",
    "marketing_features",
    "metadata",
    "name",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
  ]); // deno-fmt-ignore
  const product = get(state.store.products, "product", id);
  const name = optString(params, "name");
  if (name !== undefined) product.name = name;
  const active = optBoolean(params, "active");
  if (active !== undefined) product.active = active;
  const description = optString(params, "description");
  if (description !== undefined) {
    product.description = description === "" ? null : description;
  }
  product.metadata = mergeMetadata(
    product.metadata,
    optMetadata(params, "metadata"),
    params.metadata === "",
  );
  product.updated = Math.floor(Date.now() / 1000);
  return product;
}

/** `POST /v1/prices`, with Stripe's unique lookup keys. */
export function createPriceWithLookupKey(
  state: State,
  params: FormObject,
): Price {
  const { transfer_lookup_key: _, ...rest } = params;
  const transfer = optBoolean(params, "transfer_lookup_key") ?? false;
  const lookupKey = checkedLookupKey(params);
  const holder = lookupKey === undefined
    ? undefined
    : holderOf(state, lookupKey);
  if (holder !== undefined && !transfer) throw lookupKeyTaken(holder);
  const price = createPrice(state, rest);
  if (holder !== undefined) holder.lookup_key = null;
  return price;
}

/** `POST /v1/prices/{id}`: the amount, currency and interval cannot change. */
export function updatePrice(
  state: State,
  id: string,
  params: FormObject,
): Price {
  onlyKnown(params, [
    "active",
    "currency_options",
    "expand",
    "lookup_key",
    "metadata",
    "nickname",
    "tax_behavior",
    "transfer_lookup_key",
  ]); // deno-fmt-ignore
  const price = get(state.store.prices, "price", id);
  const transfer = optBoolean(params, "transfer_lookup_key") ?? false;
  const lookupKey = checkedLookupKey(params);
  if (lookupKey !== undefined && lookupKey !== price.lookup_key) {
    const holder = holderOf(state, lookupKey);
    if (holder !== undefined && !transfer) throw lookupKeyTaken(holder);
    if (holder !== undefined) holder.lookup_key = null;
  }
  if (params.lookup_key === "") price.lookup_key = null;
  else if (lookupKey !== undefined) price.lookup_key = lookupKey;
  const active = optBoolean(params, "active");
  if (active !== undefined) price.active = active;
  const nickname = optString(params, "nickname");
  if (nickname !== undefined) {
    price.nickname = nickname === "" ? null : nickname;
  }
  price.metadata = mergeMetadata(
    price.metadata,
    optMetadata(params, "metadata"),
    params.metadata === "",
  );
  return price;
}

/** `GET /v1/prices` filters, `lookup_keys[]` (at most 10) among them. */
export function listPricesByLookupKey(
  state: State,
  params: FormObject,
): Price[] {
  const keys = optArray(params, "lookup_keys");
  if (keys === undefined) return listPrices(state, params);
  if (keys.length > 10) {
    throw invalidRequest(
      `Invalid array: lookup_keys must have at most 10 elements, got ${keys.length}`,
      { param: "lookup_keys" },
    );
  }
  const wanted = new Set(keys.map(String));
  return listPrices(state, params).filter((p) =>
    p.lookup_key !== null && wanted.has(p.lookup_key)
  );
}

function checkedLookupKey(params: FormObject): string | undefined {
  const key = optString(params, "lookup_key");
  if (key === undefined || key === "") return undefined;
  if (key.length > LOOKUP_KEY_MAX) {
    throw invalidRequest(
      `Invalid string: ${
        key.slice(0, 10)
      }...; must be at most ${LOOKUP_KEY_MAX} characters`,
      { param: "lookup_key" },
    );
  }
  return key;
}

function holderOf(state: State, lookupKey: string): Price | undefined {
  return [...state.store.prices.values()].find((p) =>
    p.lookup_key === lookupKey
  );
}

function lookupKeyTaken(holder: Price) {
  return invalidRequest(
    `A price (\`${holder.id}\`) already uses that lookup key.`,
    { param: "lookup_key" },
  );
}
