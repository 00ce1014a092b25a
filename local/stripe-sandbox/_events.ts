/**
 * `GET /v1/events` filters as Stripe documents them: `type` (one name, or a group
 * with `*` as a wildcard), `types` (up to 20 names; not with `type`), `created`
 * (an exact time or a `gt`/`gte`/`lt`/`lte` range) and `delivery_success`.
 *
 * @module
 */
import { invalidRequest } from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import type { StripeEvent } from "./_objects.ts";
import {
  onlyKnown,
  optArray,
  optBoolean,
  optInteger,
  optObject,
  optString,
} from "./_params.ts";
import type { Store } from "./_state.ts";

const LIST_PARAMS = [
  "created",
  "delivery_success",
  "ending_before",
  "expand",
  "limit",
  "starting_after",
  "type",
  "types",
];
const MAX_TYPES = 20;
const RANGE_KEYS = ["gt", "gte", "lt", "lte"] as const;

/** The events `params` select, oldest first (`page` answers newest first). */
export function listEvents(store: Store, params: FormObject): StripeEvent[] {
  onlyKnown(params, LIST_PARAMS);
  const matches = typeFilter(params);
  const inRange = createdFilter(params);
  const success = optBoolean(params, "delivery_success");
  return [...store.events.values()].filter((event) =>
    matches(event.type) && inRange(event.created) &&
    // false: still pending, or failed at one endpoint at least
    (success === undefined || (event.pending_webhooks === 0) === success)
  );
}

function typeFilter(params: FormObject): (type: string) => boolean {
  const type = optString(params, "type");
  const types = optArray(params, "types");
  if (type !== undefined && types !== undefined) {
    throw invalidRequest(
      "You may pass either `type` or `types`, but not both.",
      { param: "types" },
    );
  }
  if (types !== undefined) {
    if (types.length > MAX_TYPES) {
      throw invalidRequest(
        `Invalid types: at most ${MAX_TYPES} event types, got ${types.length}`,
        { param: "types" },
      );
    }
    const names = types.map((name, i) => {
      if (typeof name !== "string") {
        throw invalidRequest("Invalid string", { param: `types[${i}]` });
      }
      return name;
    });
    return (t) => names.includes(t);
  }
  if (type === undefined) return () => true;
  if (!type.includes("*")) return (t) => t === type;
  const pattern = new RegExp(
    `^${
      type.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")
    }$`,
  );
  return (t) => pattern.test(t);
}

function createdFilter(params: FormObject): (created: number) => boolean {
  const value = params.created;
  if (value === undefined) return () => true;
  if (typeof value === "string") {
    const at = optInteger(params, "created");
    return (created) => created === at;
  }
  const range = optObject(params, "created")!;
  for (const key of Object.keys(range)) {
    if (!(RANGE_KEYS as readonly string[]).includes(key)) {
      throw invalidRequest(`Received unknown parameter: created[${key}]`, {
        code: "parameter_unknown",
        param: `created[${key}]`,
      });
    }
  }
  const [gt, gte, lt, lte] = RANGE_KEYS.map((key) =>
    optInteger(range, key, `created[${key}]`)
  );
  return (created) =>
    (gt === undefined || created > gt) &&
    (gte === undefined || created >= gte) &&
    (lt === undefined || created < lt) &&
    (lte === undefined || created <= lte);
}
