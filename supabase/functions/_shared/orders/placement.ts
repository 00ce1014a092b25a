/**
 * Where a server goes, as plain functions: the node in the order's region with the
 * most room.
 *
 * @module
 */

/** Room left on one enabled node (`public.node_capacity` joined with the node). */
export interface NodeRoom {
  id: number;
  panel_node_id: number;
  name: string;
  region: string;
  free_memory_mb: number;
  free_disk_mb: number;
}

/** The node with the most free memory that fits the order (ties: lowest id), or null. */
export function chooseNode(
  nodes: readonly NodeRoom[],
  need: { region: string; memory_mb: number; disk_mb: number },
): NodeRoom | null {
  const fits = nodes.filter((node) =>
    node.region === need.region && node.free_memory_mb >= need.memory_mb &&
    node.free_disk_mb >= need.disk_mb
  );
  fits.sort((a, b) => b.free_memory_mb - a.free_memory_mb || a.id - b.id);
  return fits[0] ?? null;
}
