/**
 * The panel's tables and pending installs as saved in a state file, so `npm start`
 * keeps its servers across restarts.
 *
 * @module
 */
import { z } from "zod";
import type { PanelState } from "./_state.ts";

const stamp = z.string();
const num = z.number();
const nullableString = z.string().nullable();

const User = z.object({
  id: num,
  external_id: nullableString,
  uuid: z.string(),
  username: z.string(),
  email: z.string(),
  first_name: z.string(),
  last_name: z.string(),
  language: z.string(),
  root_admin: z.boolean(),
  use_totp: z.boolean(),
  has_password: z.boolean(),
  created_at: stamp,
  updated_at: stamp,
});

const Server = z.object({
  id: num,
  external_id: nullableString,
  uuid: z.string(),
  identifier: z.string(),
  name: z.string(),
  description: z.string(),
  status: nullableString,
  owner_id: num,
  node_id: num,
  allocation_id: num,
  nest_id: num,
  egg_id: num,
  memory: num,
  swap: num,
  disk: num,
  io: num,
  cpu: num,
  threads: nullableString,
  oom_disabled: z.boolean(),
  database_limit: num.nullable(),
  allocation_limit: num.nullable(),
  backup_limit: num.nullable(),
  startup: z.string(),
  image: z.string(),
  skip_scripts: z.boolean(),
  start_on_completion: z.boolean(),
  variables: z.record(z.string(), z.string()),
  power_state: z.enum(["offline", "starting", "running", "stopping"]),
  power_changed_at: stamp,
  usage: z.object({ disk_bytes: num, memory_bytes: num }).optional(),
  created_at: stamp,
  updated_at: stamp,
});

const Node = z.object({
  id: num,
  uuid: z.string(),
  name: z.string(),
  location_id: num,
  fqdn: z.string(),
  public: z.boolean(),
  maintenance_mode: z.boolean(),
  memory: num,
  memory_overallocate: num,
  disk: num,
  disk_overallocate: num,
  created_at: stamp,
  updated_at: stamp,
});

const Allocation = z.object({
  id: num,
  node_id: num,
  ip: z.string(),
  alias: nullableString,
  port: num,
  notes: nullableString,
  server_id: num.nullable(),
});

const Location = z.object({
  id: num,
  short: z.string(),
  long: z.string(),
  created_at: stamp,
  updated_at: stamp,
});

const Nest = z.object({
  id: num,
  uuid: z.string(),
  author: z.string(),
  name: z.string(),
  description: nullableString,
  created_at: stamp,
  updated_at: stamp,
});

const EggVariable = z.object({
  id: num,
  egg_id: num,
  name: z.string(),
  description: z.string(),
  env_variable: z.string(),
  default_value: z.string(),
  user_viewable: z.boolean(),
  user_editable: z.boolean(),
  rules: z.string(),
  created_at: stamp,
  updated_at: stamp,
});

const Egg = z.object({
  id: num,
  uuid: z.string(),
  nest_id: num,
  name: z.string(),
  author: z.string(),
  description: z.string(),
  docker_image: z.string(),
  startup: z.string(),
  variables: z.array(EggVariable),
  created_at: stamp,
  updated_at: stamp,
});

const Email = z.object({
  to: z.string(),
  user_id: num,
  kind: z.literal("account_created"),
  password_link: z.boolean(),
  at: stamp,
});

const State = z.object({
  users: z.array(User),
  servers: z.array(Server),
  nodes: z.array(Node),
  allocations: z.array(Allocation),
  locations: z.array(Location),
  nests: z.array(Nest),
  eggs: z.array(Egg),
  emails_sent: z.array(Email),
  next_ids: z.object({ user: num, server: num }),
});

// Fails to compile when PanelState and the schema drift apart.
const _sameShape: z.ZodType<PanelState> = State;

/** An install in progress: when it finishes, and whether it is a reinstall. */
export interface PendingInstall {
  server_id: number;
  reinstall: boolean;
  /** epoch milliseconds */
  due_at: number;
}

/** What the state file holds. */
export interface PanelSnapshot {
  version: 1;
  state: PanelState;
  installs: PendingInstall[];
}

const Snapshot = z.object({
  version: z.literal(1),
  state: _sameShape,
  installs: z.array(z.object({
    server_id: num,
    reinstall: z.boolean(),
    due_at: num,
  })),
});

/** Checks a loaded state file (throws a ZodError naming the bad field). */
export function parseSnapshot(value: unknown): PanelSnapshot {
  return Snapshot.parse(value);
}
