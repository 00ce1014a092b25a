import assert from "node:assert/strict";
import { parseShopEvent } from "../stripe-webhook/schemas.ts";
import { FUNCTIONS, HANDLED_EVENT_TYPES } from "./manifest.ts";

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
