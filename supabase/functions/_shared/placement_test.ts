import assert from "node:assert/strict";
import { allocationsToTry, chooseNode, type NodeRoom } from "./placement.ts";

function room(
  id: number,
  fields: Partial<NodeRoom> = {},
): NodeRoom {
  return {
    id,
    panel_node_id: 100 + id,
    name: `node-${id}`,
    region: "eu-west",
    free_memory_mb: 8192,
    free_disk_mb: 100_000,
    ...fields,
  };
}

const NEED = { region: "eu-west", memory_mb: 4096, disk_mb: 20_480 };

Deno.test("chooseNode takes the node with the most free memory", () => {
  const nodes = [
    room(1, { free_memory_mb: 6144 }),
    room(2, { free_memory_mb: 16_384 }),
    room(3, { free_memory_mb: 8192 }),
  ];
  assert.equal(chooseNode(nodes, NEED)?.id, 2);
});

Deno.test("chooseNode breaks a tie on free memory by the lowest id", () => {
  const nodes = [room(7), room(3), room(5)];
  assert.equal(chooseNode(nodes, NEED)?.id, 3);
});

Deno.test("chooseNode keeps to the order's region", () => {
  const nodes = [
    room(1, { region: "us-east", free_memory_mb: 65_536 }),
    room(2, { free_memory_mb: 4096 }),
  ];
  assert.equal(chooseNode(nodes, NEED)?.id, 2);
  assert.equal(chooseNode(nodes, { ...NEED, region: "ap-south" }), null);
});

Deno.test("chooseNode needs room for both memory and disk, exactly enough fits", () => {
  const nodes = [
    room(1, { free_memory_mb: 4095 }),
    room(2, { free_memory_mb: 65_536, free_disk_mb: 20_479 }),
    room(3, { free_memory_mb: 4096, free_disk_mb: 20_480 }),
  ];
  assert.equal(chooseNode(nodes, NEED)?.id, 3);
  assert.equal(chooseNode(nodes.slice(0, 2), NEED), null);
  assert.equal(chooseNode([], NEED), null);
});

Deno.test("chooseNode does not reorder its input", () => {
  const nodes = [room(1, { free_memory_mb: 4096 }), room(2)];
  chooseNode(nodes, NEED);
  assert.deepEqual(nodes.map((n) => n.id), [1, 2]);
});

Deno.test("allocationsToTry answers free allocations by id, at most three", () => {
  const allocations = [
    { id: 9, assigned: false },
    { id: 2, assigned: true },
    { id: 4, assigned: false },
    { id: 1, assigned: false },
    { id: 6, assigned: false },
  ];
  assert.deepEqual(allocationsToTry(allocations).map((a) => a.id), [1, 4, 6]);
  assert.deepEqual(allocationsToTry(allocations, 5).map((a) => a.id), [
    1,
    4,
    6,
    9,
  ]);
  assert.deepEqual(allocationsToTry([{ id: 1, assigned: true }]), []);
});

Deno.test("allocationsToTry keeps the panel's fields of each allocation", () => {
  const [first] = allocationsToTry([
    { id: 3, assigned: false, ip: "198.51.100.20", port: 25_567 },
  ]);
  assert.deepEqual(first, {
    id: 3,
    assigned: false,
    ip: "198.51.100.20",
    port: 25_567,
  });
});
