/**
 * List pagination (`limit`, `starting_after`, `ending_before`) and `expand[]`.
 *
 * @module
 */
import { invalidRequest } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type { List } from "./_objects.ts";
import { expandList, optInteger, optString } from "./_params.ts";
import type { Store } from "./_state.ts";
import { findById } from "./_state.ts";

/** A page of `items` (given oldest first), newest first like Stripe's lists. */
export function page<T extends { id: string }>(
  items: Iterable<T>,
  params: FormObject,
  url: string,
): List<T> {
  const limit = optInteger(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      "This value must be greater than or equal to 1 and less than or equal to 100.",
      { param: "limit" },
    );
  }
  const all = [...items].reverse();
  const after = optString(params, "starting_after");
  const before = optString(params, "ending_before");
  let data = all;
  if (after !== undefined) {
    data = all.slice(cursor(all, after, "starting_after") + 1);
  } else if (before !== undefined) {
    const end = cursor(all, before, "ending_before");
    data = all.slice(Math.max(0, end - limit), end);
  }
  return {
    object: "list",
    data: data.slice(0, limit),
    has_more: data.length > limit,
    url,
  };
}

function cursor(items: { id: string }[], id: string, param: string): number {
  const at = items.findIndex((item) => item.id === id);
  if (at < 0) {
    throw invalidRequest(`No such object: '${id}'`, {
      code: "resource_missing",
      param,
    });
  }
  return at;
}

/**
 * A copy of `value` with the fields named in `expand[]` replaced by the objects
 * their ids name (`customer`, `subscription.latest_invoice`, `data.customer`).
 */
export function expand(
  store: Store,
  value: unknown,
  params: FormObject,
  includable: Record<string, (v: unknown) => unknown> = {},
): unknown {
  let out = structuredClone(value);
  for (const path of expandList(params)) {
    const parts = path.split(".");
    if (parts.length > 4) {
      throw invalidRequest(
        `You cannot expand more than 4 levels of a property. Property: ${path}`,
        { param: "expand" },
      );
    }
    out = expandPath(store, out, parts, path, includable);
  }
  return out;
}

function expandPath(
  store: Store,
  value: unknown,
  parts: string[],
  path: string,
  includable: Record<string, (v: unknown) => unknown>,
): unknown {
  if (Array.isArray(value)) {
    return value.map((v) => expandPath(store, v, parts, path, includable));
  }
  if (value === null || typeof value !== "object") return value;
  const record = value as Record<string, unknown>;
  const [head, ...rest] = parts;
  if (rest.length === 0 && head in includable) {
    return { ...record, [head]: includable[head](record) };
  }
  if (!(head in record)) {
    throw invalidRequest(
      `This property cannot be expanded (${head}).`,
      { param: "expand" },
    );
  }
  const child = record[head];
  if (rest.length > 0) {
    return {
      ...record,
      [head]: expandPath(store, child, rest, path, includable),
    };
  }
  if (typeof child !== "string") {
    if (child === null || typeof child === "object") return record;
    throw invalidRequest(`This property cannot be expanded (${path}).`, {
      param: "expand",
    });
  }
  const found = findById(store, child);
  return found === undefined
    ? record
    : { ...record, [head]: structuredClone(found) };
}
