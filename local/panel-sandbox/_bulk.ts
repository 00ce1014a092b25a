/**
 * Seeding many servers at once for tests (a sweep over a thousand servers), without
 * going through validation, deployment or installs.
 *
 * @module
 */
import { z } from "zod";
import { ControlError } from "../sandbox-kit/mod.ts";
import { now, type PanelServer, type PanelState } from "./_state.ts";

/** The body of `POST /_sandbox/servers/bulk`. */
export const BulkServers = z.object({
  /** how many servers; defaults to the number of `external_ids` */
  count: z.number().int().min(1).max(10_000).optional(),
  /** one server per id, in order */
  external_ids: z.array(z.string().min(1).max(191)).max(10_000).optional(),
  owner: z.number().int().positive().default(1),
  node: z.number().int().positive().optional(),
  egg: z.number().int().positive().default(1),
  status: z.enum(["installing", "install_failed", "suspended"]).nullable()
    .default(null),
  memory: z.number().int().nonnegative().default(0),
  disk: z.number().int().nonnegative().default(0),
}).strict().refine(
  (b) => b.count !== undefined || b.external_ids !== undefined,
  "Give count or external_ids",
);

/**
 * Adds the servers, each on a new allocation of the node (the catalogue's ports run
 * out long before a thousand). Power is `running` when installed and unsuspended,
 * else `offline`; the caller schedules the installs of `installing` ones.
 */
export function seedServers(
  state: PanelState,
  input: z.output<typeof BulkServers>,
): PanelServer[] {
  const node = input.node === undefined
    ? state.nodes[0]
    : state.nodes.find((n) => n.id === input.node);
  if (!node) {
    throw new ControlError(404, "not_found", `No node "${input.node}"`);
  }
  if (!state.users.some((u) => u.id === input.owner)) {
    throw new ControlError(404, "not_found", `No user "${input.owner}"`);
  }
  const egg = state.eggs.find((e) => e.id === input.egg);
  if (!egg) throw new ControlError(404, "not_found", `No egg "${input.egg}"`);
  const taken = new Set(state.servers.map((s) => s.external_id));
  const ids: (string | null)[] = input.external_ids ??
    Array.from({ length: input.count ?? 0 }, () => null);
  const duplicate = ids.find((id, i) =>
    id !== null && (taken.has(id) || ids.indexOf(id) !== i)
  );
  if (duplicate) {
    throw new ControlError(
      409,
      "conflict",
      `External id taken: "${duplicate}"`,
    );
  }
  const onNode = state.allocations.filter((a) => a.node_id === node.id);
  const ip = onNode[0]?.ip ?? "127.0.0.1";
  let port = Math.max(25_000, ...onNode.map((a) => a.port));
  let allocationId = Math.max(0, ...state.allocations.map((a) => a.id));
  const at = now();
  const created: PanelServer[] = [];
  for (const externalId of ids) {
    const uuid = crypto.randomUUID();
    const server: PanelServer = {
      id: state.next_ids.server++,
      external_id: externalId,
      uuid,
      identifier: uuid.slice(0, 8),
      name: `Seeded server ${state.next_ids.server - 1}`,
      description: "",
      status: input.status,
      owner_id: input.owner,
      node_id: node.id,
      allocation_id: ++allocationId,
      nest_id: egg.nest_id,
      egg_id: egg.id,
      memory: input.memory,
      swap: 0,
      disk: input.disk,
      io: 500,
      cpu: 0,
      threads: null,
      oom_disabled: true,
      database_limit: 0,
      allocation_limit: 0,
      backup_limit: 0,
      startup: egg.startup,
      image: egg.docker_image,
      skip_scripts: false,
      start_on_completion: false,
      variables: Object.fromEntries(
        egg.variables.map((v) => [v.env_variable, v.default_value]),
      ),
      power_state: input.status === null ? "running" : "offline",
      power_changed_at: at,
      created_at: at,
      updated_at: at,
    };
    state.allocations.push({
      id: allocationId,
      node_id: node.id,
      ip,
      alias: null,
      port: ++port,
      notes: null,
      server_id: server.id,
    });
    state.servers.push(server);
    created.push(server);
  }
  return created;
}
