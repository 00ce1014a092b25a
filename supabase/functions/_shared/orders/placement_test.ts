import assert from "node:assert/strict";
import { chooseNode, type NodeRoom } from "./placement.ts";

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
