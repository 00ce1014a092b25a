/**
 * The panel's Fractal output: `{object, attributes}` items, `list` collections with
 * pagination meta, `?include=` relations under `attributes.relationships`, and the
 * Application API transformers.
 *
 * @module
 */
import type {
  PanelAllocation,
  PanelEgg,
  PanelEggVariable,
  PanelLocation,
  PanelNest,
  PanelNode,
  PanelServer,
  PanelState,
  PanelUser,
} from "./_state.ts";
import { isInstalled, nodeUsage } from "./_state.ts";

/** Attributes of one transformed resource. */
export type Attributes = Record<string, unknown>;

/** `{object, attributes}`: one item. */
export interface Item {
  object: string;
  attributes: Attributes;
}

/** `{object: "list", data}`: a collection. */
export interface List {
  object: "list";
  data: Item[];
}

/** Relations asked for with `?include=` (top level only). */
export type Includes = ReadonlySet<string>;

/** A timestamp as `BaseTransformer::formatTimestamp` writes it. */
export function atom(iso: string): string {
  return iso.replace(/\.\d{3}Z$/, "+00:00");
}

/** A timestamp as a model's `toArray()` writes it. */
export function micro(iso: string): string {
  return iso.replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** One item envelope. */
export function item(object: string, attributes: Attributes): Item {
  return { object, attributes };
}

/** One collection envelope (no pagination, as in includes). */
export function list(object: string, rows: Attributes[]): List {
  return { object: "list", data: rows.map((a) => item(object, a)) };
}

/** The `include` query parameter as a set of top-level relation names. */
export function includesOf(url: URL): Includes {
  const raw = url.searchParams.get("include") ?? "";
  return new Set(
    raw.split(",").map((s) => s.trim().split(".")[0]).filter(Boolean),
  );
}

function positiveInt(raw: string | null, fallback: number): number {
  const n = Number.parseInt(raw ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** A paginated list (`?page=`, `?per_page=`, default 50) with Fractal's meta. */
export function paginate<T>(
  url: URL,
  object: string,
  rows: T[],
  transform: (row: T) => Attributes,
): Record<string, unknown> {
  const perPage = positiveInt(url.searchParams.get("per_page"), 50);
  const page = positiveInt(url.searchParams.get("page"), 1);
  const totalPages = Math.max(1, Math.ceil(rows.length / perPage));
  const slice = rows.slice((page - 1) * perPage, page * perPage);
  const link = (p: number) => `${url.origin}${url.pathname}?page=${p}`;
  const links: Record<string, string> = {};
  if (page > 1) links.previous = link(page - 1);
  if (page < totalPages) links.next = link(page + 1);
  return {
    ...list(object, slice.map(transform)),
    meta: {
      pagination: {
        total: rows.length,
        count: slice.length,
        per_page: perPage,
        current_page: page,
        total_pages: totalPages,
        links,
      },
    },
  };
}

function withRelations(
  attributes: Attributes,
  includes: Includes,
  relations: Record<string, () => Item | List | null>,
): Attributes {
  const chosen = Object.entries(relations).filter(([k]) => includes.has(k));
  if (chosen.length === 0) return attributes;
  const relationships: Record<string, unknown> = {};
  for (const [key, make] of chosen) {
    relationships[key] = make() ??
      { object: "null_resource", attributes: null };
  }
  return { ...attributes, relationships };
}

const NONE: Includes = new Set();

/** `UserTransformer`. */
export function userAttributes(
  state: PanelState,
  user: PanelUser,
  includes: Includes = NONE,
): Attributes {
  return withRelations(
    {
      id: user.id,
      external_id: user.external_id,
      uuid: user.uuid,
      username: user.username,
      email: user.email,
      first_name: user.first_name,
      last_name: user.last_name,
      language: user.language,
      root_admin: user.root_admin,
      "2fa": user.use_totp,
      created_at: atom(user.created_at),
      updated_at: atom(user.updated_at),
    },
    includes,
    {
      servers: () =>
        list(
          "server",
          state.servers.filter((s) => s.owner_id === user.id).map((s) =>
            serverAttributes(state, s)
          ),
        ),
    },
  );
}

/** `AllocationTransformer`. */
export function allocationAttributes(a: PanelAllocation): Attributes {
  return {
    id: a.id,
    ip: a.ip,
    alias: a.alias,
    port: a.port,
    notes: a.notes,
    assigned: a.server_id !== null,
  };
}

/** `LocationTransformer`. */
export function locationAttributes(
  state: PanelState,
  location: PanelLocation,
  includes: Includes = NONE,
): Attributes {
  const nodes = state.nodes.filter((n) => n.location_id === location.id);
  return withRelations(
    {
      id: location.id,
      short: location.short,
      long: location.long,
      updated_at: atom(location.updated_at),
      created_at: atom(location.created_at),
    },
    includes,
    {
      nodes: () => list("node", nodes.map((n) => nodeAttributes(state, n))),
      servers: () =>
        list(
          "server",
          state.servers.filter((s) => nodes.some((n) => n.id === s.node_id))
            .map((s) => serverAttributes(state, s)),
        ),
    },
  );
}

/** `NodeTransformer` (the model's columns, daemon secrets hidden). */
export function nodeAttributes(
  state: PanelState,
  node: PanelNode,
  includes: Includes = NONE,
): Attributes {
  const location = state.locations.find((l) => l.id === node.location_id);
  return withRelations(
    {
      id: node.id,
      uuid: node.uuid,
      public: node.public,
      name: node.name,
      description: null,
      location_id: node.location_id,
      fqdn: node.fqdn,
      scheme: "https",
      behind_proxy: false,
      maintenance_mode: node.maintenance_mode,
      memory: node.memory,
      memory_overallocate: node.memory_overallocate,
      disk: node.disk,
      disk_overallocate: node.disk_overallocate,
      upload_size: 100,
      daemon_listen: 8080,
      daemon_sftp: 2022,
      daemon_base: "/var/lib/pterodactyl/volumes",
      created_at: atom(node.created_at),
      updated_at: atom(node.updated_at),
      allocated_resources: nodeUsage(state, node.id),
    },
    includes,
    {
      allocations: () =>
        list(
          "allocation",
          state.allocations.filter((a) => a.node_id === node.id).map(
            allocationAttributes,
          ),
        ),
      location: () =>
        location ? item("location", locationAttributes(state, location)) : null,
      servers: () =>
        list(
          "server",
          state.servers.filter((s) => s.node_id === node.id).map((s) =>
            serverAttributes(state, s)
          ),
        ),
    },
  );
}

/** `EggVariableTransformer` (the model's `toArray()`). */
export function eggVariableAttributes(v: PanelEggVariable): Attributes {
  return {
    ...v,
    created_at: micro(v.created_at),
    updated_at: micro(v.updated_at),
  };
}

/** `NestTransformer`. */
export function nestAttributes(
  state: PanelState,
  nest: PanelNest,
  includes: Includes = NONE,
): Attributes {
  return withRelations(
    {
      ...nest,
      created_at: atom(nest.created_at),
      updated_at: atom(nest.updated_at),
    },
    includes,
    {
      eggs: () =>
        list(
          "egg",
          state.eggs.filter((e) => e.nest_id === nest.id).map((e) =>
            eggAttributes(state, e)
          ),
        ),
      servers: () =>
        list(
          "server",
          state.servers.filter((s) => s.nest_id === nest.id).map((s) =>
            serverAttributes(state, s)
          ),
        ),
    },
  );
}

/** `EggTransformer`. */
export function eggAttributes(
  state: PanelState,
  egg: PanelEgg,
  includes: Includes = NONE,
): Attributes {
  const nest = state.nests.find((n) => n.id === egg.nest_id);
  return withRelations(
    {
      id: egg.id,
      uuid: egg.uuid,
      name: egg.name,
      nest: egg.nest_id,
      author: egg.author,
      description: egg.description,
      docker_image: egg.docker_image,
      docker_images: { [egg.docker_image]: egg.docker_image },
      config: {
        files: {},
        startup: { done: ")! For help, type " },
        stop: "stop",
        logs: {},
        file_denylist: [],
        extends: null,
      },
      startup: egg.startup,
      script: {
        privileged: true,
        install: "#!/bin/bash\necho install",
        entry: "bash",
        container: "ghcr.io/pterodactyl/installers:alpine",
        extends: null,
      },
      created_at: atom(egg.created_at),
      updated_at: atom(egg.updated_at),
    },
    includes,
    {
      nest: () => nest ? item("nest", nestAttributes(state, nest)) : null,
      variables: () =>
        list("egg_variable", egg.variables.map(eggVariableAttributes)),
      servers: () =>
        list(
          "server",
          state.servers.filter((s) => s.egg_id === egg.id).map((s) =>
            serverAttributes(state, s)
          ),
        ),
    },
  );
}

/** The container environment (`EnvironmentService`): variables, then built-ins. */
export function serverEnvironment(
  state: PanelState,
  server: PanelServer,
): Record<string, string | number | null> {
  const egg = state.eggs.find((e) => e.id === server.egg_id);
  const node = state.nodes.find((n) => n.id === server.node_id);
  const location = state.locations.find((l) => l.id === node?.location_id);
  const env: Record<string, string | number | null> = {};
  for (const v of egg?.variables ?? []) {
    env[v.env_variable] = server.variables[v.env_variable] ?? v.default_value;
  }
  env.STARTUP = server.startup;
  env.P_SERVER_LOCATION = location?.short ?? null;
  env.P_SERVER_UUID = server.uuid;
  env.P_SERVER_ALLOCATION_LIMIT = server.allocation_limit;
  return env;
}

/** `ServerTransformer`. */
export function serverAttributes(
  state: PanelState,
  server: PanelServer,
  includes: Includes = NONE,
): Attributes {
  const egg = state.eggs.find((e) => e.id === server.egg_id);
  const node = state.nodes.find((n) => n.id === server.node_id);
  const location = state.locations.find((l) => l.id === node?.location_id);
  const owner = state.users.find((u) => u.id === server.owner_id);
  const nest = state.nests.find((n) => n.id === server.nest_id);
  return withRelations(
    {
      id: server.id,
      external_id: server.external_id,
      uuid: server.uuid,
      identifier: server.identifier,
      name: server.name,
      description: server.description,
      status: server.status,
      suspended: server.status === "suspended",
      limits: {
        memory: server.memory,
        swap: server.swap,
        disk: server.disk,
        io: server.io,
        cpu: server.cpu,
        threads: server.threads,
        oom_disabled: server.oom_disabled,
      },
      feature_limits: {
        databases: server.database_limit,
        allocations: server.allocation_limit,
        backups: server.backup_limit,
      },
      user: server.owner_id,
      node: server.node_id,
      allocation: server.allocation_id,
      nest: server.nest_id,
      egg: server.egg_id,
      container: {
        startup_command: server.startup,
        image: server.image,
        installed: isInstalled(server) ? 1 : 0,
        environment: serverEnvironment(state, server),
      },
      updated_at: atom(server.updated_at),
      created_at: atom(server.created_at),
    },
    includes,
    {
      allocations: () =>
        list(
          "allocation",
          state.allocations.filter((a) => a.server_id === server.id).map(
            allocationAttributes,
          ),
        ),
      user: () => owner ? item("user", userAttributes(state, owner)) : null,
      subusers: () => list("subuser", []),
      nest: () => nest ? item("nest", nestAttributes(state, nest)) : null,
      egg: () => egg ? item("egg", eggAttributes(state, egg)) : null,
      variables: () =>
        list(
          "server_variable",
          (egg?.variables ?? []).map((v) => ({
            ...eggVariableAttributes(v),
            server_value: server.variables[v.env_variable] ?? null,
          })),
        ),
      location: () =>
        location ? item("location", locationAttributes(state, location)) : null,
      node: () => node ? item("node", nodeAttributes(state, node)) : null,
      databases: () => list("databases", []),
    },
  );
}
