import assert from "node:assert/strict";
import { parseShopEvent, type ShopEvent } from "../stripe-webhook/schemas.ts";
import { FUNCTIONS, HANDLED_EVENT_TYPES } from "./manifest.ts";

// A type the webhook learns to parse but the manifest misses fails `deno check` here,
// and one the manifest lists that the webhook does not parse fails too.
type Parsed = Exclude<ShopEvent["type"], "other">;
type Listed = typeof HANDLED_EVENT_TYPES[number];
const _everyParsedTypeListed: [Exclude<Parsed, Listed>] extends [never] ? true
  : never = true;
const _everyListedTypeParsed: [Exclude<Listed, Parsed>] extends [never] ? true
  : never = true;

function event(type: string, object: Record<string, unknown>) {
  return {
    id: "evt_manifest",
    object: "event",
    type,
    api_version: null,
    created: 1_800_000_000,
    data: { object },
  };
}

Deno.test("the webhook parses exactly the event types the manifest names", () => {
  for (const type of HANDLED_EVENT_TYPES) {
    // A handled type is read by its schema: an empty object is refused, not ignored.
    const parsed = parseShopEvent(event(type, {}));
    assert.equal(parsed.ok, false, type);
  }
  for (
    const type of ["customer.created", "invoice.upcoming", "charge.succeeded"]
  ) {
    const parsed = parseShopEvent(event(type, {}));
    assert.ok(parsed.ok && parsed.event.type === "other", type);
  }
});

Deno.test("every function in the manifest has a folder with an entry point", async () => {
  for (const name of Object.keys(FUNCTIONS)) {
    const entry = new URL(`../${name}/index.ts`, import.meta.url);
    assert.ok((await Deno.stat(entry)).isFile, name);
  }
});
