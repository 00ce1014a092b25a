import assert from "node:assert/strict";
import { ORDER_STATUSES } from "../orders/orders.ts";
import { claimDecision, STALE_CLAIM_MS } from "./provision.ts";

const now = new Date("2026-11-30T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);

Deno.test("claimDecision takes paid and failed orders", () => {
  assert.equal(
    claimDecision({ status: "paid", updated_at: now }, now),
    "claim",
  );
  assert.equal(
    claimDecision({ status: "error", updated_at: now }, now),
    "claim",
  );
});

Deno.test("claimDecision leaves a fresh claim to its worker and takes a stale one", () => {
  assert.equal(STALE_CLAIM_MS, 5 * 60 * 1000);
  const provisioning = (updatedAgo: number) =>
    claimDecision(
      { status: "provisioning", updated_at: ago(updatedAgo) },
      now,
    );
  assert.equal(provisioning(0), "current");
  assert.equal(provisioning(STALE_CLAIM_MS), "current");
  assert.equal(provisioning(STALE_CLAIM_MS + 1), "claim");
  assert.equal(provisioning(60 * 60 * 1000), "claim");
});

Deno.test("claimDecision answers installing and active orders as they are", () => {
  for (const status of ["installing", "active"] as const) {
    assert.equal(
      claimDecision({ status, updated_at: ago(STALE_CLAIM_MS * 10) }, now),
      "current",
    );
  }
});

Deno.test("claimDecision refuses every other status", () => {
  const refused = ORDER_STATUSES.filter((status) =>
    claimDecision({ status, updated_at: ago(STALE_CLAIM_MS * 10) }, now) ===
      "refuse"
  );
  assert.deepEqual(refused, ["pending", "suspended", "canceled", "expired"]);
});
