/**
 * The sandbox panel's tables, seeded from `local/panel_seed.json`, and the queries the panel's
 * deployment services run over them.
 *
 * @module
 */
import type { PanelSeed } from "../catalogue.ts";
import { displayError } from "./_errors.ts";

/** A panel user (`users` table, API names). */
export interface PanelUser {
  id: number;
  external_id: string | null;
  uuid: string;
  username: string;
  email: string;
  first_name: string;
  last_name: string;
  language: string;
  root_admin: boolean;
  use_totp: boolean;
  has_password: boolean;
  created_at: string;
  updated_at: string;
}

/** What Wings reports as a server's power state. */
export type PowerState = "offline" | "starting" | "running" | "stopping";

/** A panel server (`servers` table plus its variables and Wings power state). */
export interface PanelServer {
  id: number;
  external_id: string | null;
  uuid: string;
  identifier: string;
  name: string;
  description: string;
  status: string | null;
  owner_id: number;
  node_id: number;
  allocation_id: number;
  nest_id: number;
  egg_id: number;
  memory: number;
  swap: number;
  disk: number;
  io: number;
  cpu: number;
  threads: string | null;
  oom_disabled: boolean;
  database_limit: number | null;
  allocation_limit: number | null;
  backup_limit: number | null;
  startup: string;
  image: string;
  skip_scripts: boolean;
  start_on_completion: boolean;
  /** Values by env variable, as stored in `server_variables`. */
  variables: Record<string, string>;
  power_state: PowerState;
  power_changed_at: string;
  /** What Wings reports as used, once set by `POST /_sandbox/servers/{id}/usage` */
  usage?: ServerUsage;
  created_at: string;
  updated_at: string;
}

/** A server's disk and memory in use, in bytes, as Wings' stats report them. */
export interface ServerUsage {
  disk_bytes: number;
  memory_bytes: number;
}

/** A panel node. */
export interface PanelNode {
  id: number;
  uuid: string;
  name: string;
  location_id: number;
  fqdn: string;
  public: boolean;
  maintenance_mode: boolean;
  memory: number;
  memory_overallocate: number;
  disk: number;
  disk_overallocate: number;
  created_at: string;
  updated_at: string;
}

/** An allocation (ip:port on a node); `server_id` null when free. */
export interface PanelAllocation {
  id: number;
  node_id: number;
  ip: string;
  alias: string | null;
  port: number;
  notes: string | null;
  server_id: number | null;
}

/** A location. */
export interface PanelLocation {
  id: number;
  short: string;
  long: string;
  created_at: string;
  updated_at: string;
}

/** A nest. */
export interface PanelNest {
  id: number;
  uuid: string;
  author: string;
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

/** An egg variable. */
export interface PanelEggVariable {
  id: number;
  egg_id: number;
  name: string;
  description: string;
  env_variable: string;
  default_value: string;
  user_viewable: boolean;
  user_editable: boolean;
  rules: string;
  created_at: string;
  updated_at: string;
}

/** An egg with its variables. */
export interface PanelEgg {
  id: number;
  uuid: string;
  nest_id: number;
  name: string;
  author: string;
  description: string;
  docker_image: string;
  startup: string;
  variables: PanelEggVariable[];
  created_at: string;
  updated_at: string;
}

/**
 * An email the panel would have sent: `AccountCreated` goes out for every new user;
 * it carries a set-password link when the user was created without a password.
 */
export interface PanelEmail {
  to: string;
  user_id: number;
  kind: "account_created";
  password_link: boolean;
  at: string;
}

/** Everything the sandbox panel holds. */
export interface PanelState {
  users: PanelUser[];
  servers: PanelServer[];
  nodes: PanelNode[];
  allocations: PanelAllocation[];
  locations: PanelLocation[];
  nests: PanelNest[];
  eggs: PanelEgg[];
  emails_sent: PanelEmail[];
  next_ids: { user: number; server: number };
}

/** The current time as the database stores it. */
export function now(): string {
  return new Date().toISOString();
}

/** A user row with the panel's defaults. */
export function makeUser(
  id: number,
  fields:
    & Pick<PanelUser, "username" | "email" | "first_name" | "last_name">
    & Partial<PanelUser>,
): PanelUser {
  const at = now();
  return {
    id,
    external_id: null,
    uuid: crypto.randomUUID(),
    language: "en",
    root_admin: false,
    use_totp: false,
    has_password: true,
    created_at: at,
    updated_at: at,
    ...fields,
  };
}

/** Seeds locations, nodes, allocations, nests, eggs and the admin user (id 1). */
export function seedState(
  catalogue: PanelSeed,
  withNonAdmin: boolean,
): PanelState {
  const at = now();
  const users = [makeUser(1, {
    username: "admin",
    email: "admin@example.com",
    first_name: "Panel",
    last_name: "Admin",
    root_admin: true,
  })];
  if (withNonAdmin) {
    users.push(makeUser(2, {
      username: "staff",
      email: "staff@example.com",
      first_name: "Panel",
      last_name: "Staff",
    }));
  }
  const allocations: PanelAllocation[] = [];
  for (const node of catalogue.nodes) {
    const { ip, port_start, count } = node.allocations;
    for (let i = 0; i < count; i++) {
      allocations.push({
        id: allocations.length + 1,
        node_id: node.id,
        ip,
        alias: null,
        port: port_start + i,
        notes: null,
        server_id: null,
      });
    }
  }
  let variableId = 0;
  return {
    users,
    servers: [],
    nodes: catalogue.nodes.map((n) => ({
      id: n.id,
      uuid: crypto.randomUUID(),
      name: n.name,
      location_id: n.location_id,
      fqdn: n.fqdn,
      public: n.public,
      maintenance_mode: false,
      memory: n.memory_mb,
      memory_overallocate: n.memory_overallocate,
      disk: n.disk_mb,
      disk_overallocate: n.disk_overallocate,
      created_at: at,
      updated_at: at,
    })),
    allocations,
    locations: catalogue.locations.map((l) => ({
      ...l,
      created_at: at,
      updated_at: at,
    })),
    nests: catalogue.nests.map((n) => ({
      id: n.id,
      uuid: crypto.randomUUID(),
      author: "support@pterodactyl.io",
      name: n.name,
      description: null,
      created_at: at,
      updated_at: at,
    })),
    eggs: catalogue.nests.flatMap((n) =>
      n.eggs.map((e) => ({
        id: e.id,
        uuid: crypto.randomUUID(),
        nest_id: n.id,
        name: e.name,
        author: "support@pterodactyl.io",
        description: `${e.name} server.`,
        docker_image: e.docker_image,
        startup: e.startup,
        created_at: at,
        updated_at: at,
        variables: e.variables.map((v) => ({
          id: ++variableId,
          egg_id: e.id,
          name: v.name,
          description: "",
          env_variable: v.env_variable,
          default_value: v.default_value,
          user_viewable: true,
          user_editable: true,
          rules: v.rules,
          created_at: at,
          updated_at: at,
        })),
      }))
    ),
    emails_sent: [],
    next_ids: { user: users.length + 1, server: 1 },
  };
}

/** Memory and disk of the servers on a node (the node's `allocated_resources`). */
export function nodeUsage(
  state: PanelState,
  nodeId: number,
): { memory: number; disk: number } {
  const servers = state.servers.filter((s) => s.node_id === nodeId);
  return {
    memory: servers.reduce((sum, s) => sum + s.memory, 0),
    disk: servers.reduce((sum, s) => sum + s.disk, 0),
  };
}

/** Public nodes in the locations (all when empty) that can take memory and disk. */
export function viableNodes(
  state: PanelState,
  locations: number[],
  memory: number,
  disk: number,
): PanelNode[] {
  return state.nodes.filter((node) => {
    if (!node.public) return false;
    if (locations.length > 0 && !locations.includes(node.location_id)) {
      return false;
    }
    const used = nodeUsage(state, node.id);
    return used.memory + memory <=
        node.memory * (1 + node.memory_overallocate / 100) &&
      used.disk + disk <= node.disk * (1 + node.disk_overallocate / 100);
  });
}

const PORT_RANGE = /^(\d{4,5})-(\d{4,5})$/;

/** A random free allocation on the nodes, as `AllocationSelectionService` picks one. */
export function selectAllocation(
  state: PanelState,
  nodeIds: number[],
  portSpecs: string[],
  dedicated: boolean,
): PanelAllocation {
  const ports: (number | [number, number])[] = [];
  for (const spec of portSpecs) {
    if (/^\d+$/.test(spec)) ports.push(Number(spec));
    const range = PORT_RANGE.exec(spec);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (Math.abs(b - a) > 1000) {
        throw displayError(
          "Adding more than 1000 ports in a single range at once is not supported.",
        );
      }
      ports.push([a, b]);
    }
  }
  const taken = new Set(
    state.allocations.filter((a) => a.server_id !== null).map((a) =>
      `${a.node_id}-${a.ip}`
    ),
  );
  const candidates = state.allocations.filter((a) =>
    a.server_id === null &&
    (nodeIds.length === 0 || nodeIds.includes(a.node_id)) &&
    (ports.length === 0 || ports.some((p) =>
      typeof p === "number" ? a.port === p : a.port >= p[0] && a.port <= p[1]
    )) &&
    (!dedicated || !taken.has(`${a.node_id}-${a.ip}`))
  );
  if (candidates.length === 0) {
    throw displayError(
      "No allocations satisfying the requirements for automatic deployment were found.",
      "NoViableAllocationException",
    );
  }
  return candidates[Math.floor(Math.random() * candidates.length)];
}

/** Whether the panel counts the server as installed (`Server::isInstalled`). */
export function isInstalled(server: PanelServer): boolean {
  return server.status !== "installing" && server.status !== "install_failed";
}

/** Sets what Wings would report as the server's power state. */
export function setPower(server: PanelServer, state: PowerState): void {
  if (server.power_state === state) return;
  server.power_state = state;
  server.power_changed_at = now();
}
