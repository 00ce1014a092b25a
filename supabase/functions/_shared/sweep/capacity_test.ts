import assert from "node:assert/strict";
import { capacityAlertsDue, lowRegions } from "./capacity.ts";

const PLANS = [
  { id: "small", memory_mb: 1024, disk_mb: 5000 },
  { id: "large", memory_mb: 4096, disk_mb: 20_000 },
];

Deno.test("lowRegions counts the largest plan's room, memory and disk, over a region's nodes", () => {
  const nodes = [
    { region: "us", free_memory_mb: 8192, free_disk_mb: 100_000 }, // 2 large
    { region: "us", free_memory_mb: 4095, free_disk_mb: 100_000 }, // 0 large
    { region: "eu", free_memory_mb: 16_384, free_disk_mb: 20_000 }, // disk: 1 large
  ];
  assert.deepEqual(lowRegions(["us", "eu", "ap"], nodes, PLANS, 2), [
    { region: "eu", plan: "large", room: 1 },
    { region: "ap", plan: "large", room: 0 },
  ]);
  assert.deepEqual(
    lowRegions(["us", "eu"], nodes, PLANS, 3).map((r) => r.region),
    ["us", "eu"],
  );
  assert.deepEqual(lowRegions(["us"], nodes, PLANS, 0), []);
  assert.deepEqual(lowRegions(["us"], nodes, [], 2), []);
});

Deno.test("capacityAlertsDue alerts a region once, and again after it recovered", () => {
  const low = [{ region: "eu", plan: "large", room: 1 }];
  const first = capacityAlertsDue(low, []);
  assert.deepEqual(first.alert, low);
  assert.deepEqual(first.keep, ["eu"]);
  assert.deepEqual(capacityAlertsDue(low, first.keep).alert, []);
  const recovered = capacityAlertsDue([], first.keep);
  assert.deepEqual(recovered.keep, []);
  assert.deepEqual(capacityAlertsDue(low, recovered.keep).alert, low);
});
