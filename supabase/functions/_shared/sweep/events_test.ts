import assert from "node:assert/strict";
import { HANDLED_EVENT_TYPES } from "../manifest.ts";
import { listedTypes, MAX_LISTED_TYPES } from "./events.ts";

Deno.test("the webhook's event types fit one Stripe events.list call", () => {
  assert.ok(HANDLED_EVENT_TYPES.length <= MAX_LISTED_TYPES);
  assert.deepEqual(listedTypes(HANDLED_EVENT_TYPES), [...HANDLED_EVENT_TYPES]);
  assert.throws(
    () => listedTypes(Array.from({ length: 21 }, (_, i) => `type.${i}`)),
    RangeError,
  );
});
