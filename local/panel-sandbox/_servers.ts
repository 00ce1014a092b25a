/**
 * `/api/application/servers`: `ServerController`, `ServerDetailsController`,
 * `ServerManagementController` and `ServerCreationService` (rules of
 * `StoreServerRequest`, auto-deploy, egg variable validation without defaults).
 *
 * @module
 */
import {
  bodyObject,
  type Context,
  findById,
  includes,
  partial,
  query,
} from "./_context.ts";
import { assertValid, displayError, json, notFound } from "./_errors.ts";
import {
  now,
  type PanelAllocation,
  type PanelServer,
  type PanelState,
  selectAllocation,
  setPower,
  viableNodes,
} from "./_state.ts";
import { item, paginate, serverAttributes } from "./_transform.ts";
import {
  type CustomRule,
  isPhpArray,
  readPath,
  type Rule,
  validate,
} from "../../setup/laravel_validation.ts";

function exists(name: string, test: (value: string) => boolean): CustomRule {
  return {
    name,
    message: "The selected :attribute is invalid.",
    passes: (value) => !isPhpArray(value) && test(String(value)),
  };
}

function uniqueServer(
  state: PanelState,
  selfId: number | undefined,
  read: (s: PanelServer) => string | number | null,
): CustomRule {
  return {
    name: "unique",
    message: "The :attribute has already been taken.",
    passes: (value) =>
      !state.servers.some((s) =>
        s.id !== selfId && String(read(s)) === String(value)
      ),
  };
}

function freeAllocation(state: PanelState): CustomRule {
  return exists(
    "exists",
    (v) =>
      state.allocations.some((a) => String(a.id) === v && a.server_id === null),
  );
}

/** PHP truthiness, as `!$input->deploy` reads it. */
function truthy(value: unknown): boolean {
  if (isPhpArray(value)) return Object.keys(value).length > 0;
  return ![undefined, null, false, 0, "", "0"].includes(
    value as string | number | boolean | null | undefined,
  );
}

/** A value as the panel stores it in a string column. */
function phpString(value: unknown): string {
  if (value === null || value === undefined || value === false) return "";
  if (value === true) return "1";
  return String(value);
}

const LIMITS: Record<string, string> = {
  memory: "numeric|min:0",
  swap: "numeric|min:-1",
  disk: "numeric|min:0",
  io: "numeric|between:10,1000",
  threads: "nullable|regex:/^[0-9-,]+$/",
  cpu: "numeric|min:0",
};

const FEATURE_LIMITS: Record<string, string> = {
  "feature_limits": "required|array",
  "feature_limits.databases": "present|nullable|integer|min:0",
  "feature_limits.allocations": "sometimes|nullable|integer|min:0",
  "feature_limits.backups": "present|nullable|integer|min:0",
};

/** The build request lists the limits in its own order (errors come in rule order). */
const BUILD_ORDER = ["memory", "swap", "io", "cpu", "threads", "disk"];

function limitRules(
  prefix: string,
  required: string,
  order = Object.keys(LIMITS),
) {
  return Object.fromEntries(
    order.map((k) => [
      `${prefix}${k}`,
      k === "threads" ? LIMITS[k] : `${required}|${LIMITS[k]}`,
    ]),
  );
}

function createRules(
  state: PanelState,
  deploy: boolean,
): Record<string, string | Rule[]> {
  const userExists = exists(
    "exists",
    (v) => state.users.some((u) => String(u.id) === v),
  );
  const eggExists = exists(
    "exists",
    (v) => state.eggs.some((e) => String(e.id) === v),
  );
  return {
    external_id: [
      "sometimes",
      "nullable",
      "string",
      "between:1,191",
      uniqueServer(state, undefined, (s) => s.external_id),
    ],
    name: "required|string|min:1|max:191",
    description: "nullable|string",
    user: ["required", "integer", userExists],
    egg: ["required", eggExists],
    docker_image: "required|string|max:191|regex:/^[\\w\\.\\/\\-:@ ]*$/",
    startup: "required|string",
    environment: "present|array",
    skip_scripts: "sometimes|boolean",
    oom_disabled: "sometimes|boolean",
    limits: "required|array",
    ...limitRules("limits.", "required"),
    ...FEATURE_LIMITS,
    "allocation.default": deploy
      ? []
      : ["required", "integer", "bail", freeAllocation(state)],
    "allocation.additional.*": deploy ? [] : ["integer", freeAllocation(state)],
    deploy: "sometimes|required|array",
    "deploy.locations": deploy ? "array|present" : "array",
    "deploy.locations.*": "integer|min:1",
    "deploy.dedicated_ip": "required_with:deploy,boolean",
    "deploy.port_range": deploy ? "array|present" : "array",
    "deploy.port_range.*": "string",
    start_on_completion: "sometimes|boolean",
  };
}

function list(value: unknown): unknown[] {
  return isPhpArray(value) ? Object.values(value) : [];
}

function numberAt(body: unknown, path: string, fallback: number): number {
  const { value } = readPath(body, path);
  return value === null || value === undefined ? fallback : Number(value);
}

/** `GET /servers`. */
export function listServers(ctx: Context): Response {
  const rows = query(ctx.url, ctx.state.servers, {
    uuid: partial((s) => s.uuid),
    uuidShort: partial((s) => s.identifier),
    name: partial((s) => s.name),
    description: partial((s) => s.description),
    image: partial((s) => s.image),
    external_id: partial((s) => s.external_id),
  }, { id: (s) => s.id, uuid: (s) => s.uuid });
  const inc = includes(ctx);
  return json(
    paginate(
      ctx.url,
      "server",
      rows,
      (s) => serverAttributes(ctx.state, s, inc),
    ),
  );
}

function reply(ctx: Context, server: PanelServer, status = 200): Response {
  return json(
    item("server", serverAttributes(ctx.state, server, includes(ctx))),
    status,
  );
}

/** `GET /servers/{id}`. */
export function viewServer(ctx: Context): Response {
  return reply(ctx, findById(ctx.state.servers, ctx.params[0]));
}

/** `GET /servers/external/{external_id}`: exact match. */
export function viewExternalServer(ctx: Context): Response {
  const id = decodeURIComponent(ctx.params[0]);
  const server = ctx.state.servers.find((s) => s.external_id === id);
  if (!server) throw notFound();
  return reply(ctx, server);
}

/** `POST /servers`: validate, deploy or take the allocation, check variables, create. */
export function createServer(ctx: Context): Response {
  const { state } = ctx;
  const body = bodyObject(ctx);
  const deploy = truthy(body.deploy);
  assertValid(validate(body, createRules(state, deploy)));

  let allocation: PanelAllocation;
  if (deploy) {
    const nodes = viableNodes(
      state,
      list(readPath(body, "deploy.locations").value).map(Number),
      numberAt(body, "limits.memory", 0),
      numberAt(body, "limits.disk", 0),
    );
    if (nodes.length === 0) {
      throw displayError(
        "No nodes satisfying the requirements specified for automatic deployment could be found.",
        "NoViableNodeException",
      );
    }
    allocation = selectAllocation(
      state,
      nodes.map((n) => n.id),
      list(readPath(body, "deploy.port_range").value).map(String),
      truthy(readPath(body, "deploy.dedicated_ip").value),
    );
  } else {
    allocation = findById(
      state.allocations,
      String(readPath(body, "allocation.default").value),
    );
  }

  const egg = findById(state.eggs, String(body.egg));
  const given = isPhpArray(body.environment) ? body.environment : {};
  const environment = Object.fromEntries(
    egg.variables.map((v) => [v.env_variable, given[v.env_variable] ?? null]),
  );
  assertValid(validate(
    { environment },
    Object.fromEntries(
      egg.variables.map((v) => [`environment.${v.env_variable}`, v.rules]),
    ),
    Object.fromEntries(
      egg.variables.map((v) => [
        `environment.${v.env_variable}`,
        `${v.name} variable`,
      ]),
    ),
  ));

  const uuid = crypto.randomUUID();
  const at = now();
  const server: PanelServer = {
    id: state.next_ids.server++,
    external_id: body.external_id == null ? null : String(body.external_id),
    uuid,
    identifier: uuid.slice(0, 8),
    name: String(body.name),
    description: body.description == null ? "" : String(body.description),
    status: "installing",
    owner_id: Number(body.user),
    node_id: allocation.node_id,
    allocation_id: allocation.id,
    nest_id: egg.nest_id,
    egg_id: egg.id,
    memory: numberAt(body, "limits.memory", 0),
    swap: numberAt(body, "limits.swap", 0),
    disk: numberAt(body, "limits.disk", 0),
    io: numberAt(body, "limits.io", 500),
    cpu: numberAt(body, "limits.cpu", 0),
    threads: readPath(body, "limits.threads").value == null
      ? null
      : String(readPath(body, "limits.threads").value),
    oom_disabled: body.oom_disabled == null ? true : truthy(body.oom_disabled),
    database_limit: numberAt(body, "feature_limits.databases", 0),
    allocation_limit: numberAt(body, "feature_limits.allocations", 0),
    backup_limit: numberAt(body, "feature_limits.backups", 0),
    startup: String(body.startup),
    image: String(body.docker_image),
    skip_scripts: truthy(body.skip_scripts),
    start_on_completion: truthy(body.start_on_completion),
    variables: Object.fromEntries(
      Object.entries(environment).map(([k, v]) => [k, phpString(v)]),
    ),
    power_state: "offline",
    power_changed_at: at,
    created_at: at,
    updated_at: at,
  };
  state.servers.push(server);
  const ids = [
    allocation.id,
    ...(deploy ? [] : list(readPath(body, "allocation.additional").value)),
  ].map(String);
  for (const a of state.allocations) {
    if (ids.includes(String(a.id))) a.server_id = server.id;
  }
  try {
    ctx.lifecycle.daemon();
  } catch (error) {
    // ServerCreationService force-deletes the new server when Wings fails.
    removeServer(state, ctx.lifecycle, server);
    throw error;
  }
  ctx.lifecycle.install(server, false);
  return reply(ctx, server, 201);
}

/** `PATCH /servers/{id}/details`. */
export function updateDetails(ctx: Context): Response {
  const server = findById(ctx.state.servers, ctx.params[0]);
  const body = bodyObject(ctx);
  assertValid(validate(body, {
    external_id: [
      "sometimes",
      "nullable",
      "string",
      "between:1,191",
      uniqueServer(ctx.state, server.id, (s) => s.external_id),
    ],
    name: "required|string|min:1|max:191",
    user: [
      "required",
      "integer",
      exists("exists", (v) => ctx.state.users.some((u) => String(u.id) === v)),
    ],
    description: "nullable|string",
  }));
  Object.assign(server, {
    name: String(body.name),
    owner_id: Number(body.user),
    updated_at: now(),
    ...("external_id" in body
      ? {
        external_id: body.external_id == null ? null : String(body.external_id),
      }
      : {}),
    ...("description" in body
      ? { description: phpString(body.description) }
      : {}),
  });
  return reply(ctx, server);
}

/**
 * `PATCH /servers/{id}/build` (`UpdateServerBuildConfigurationRequest`, then
 * `BuildModificationService` in one transaction): allocations added and removed,
 * the default allocation, limits (nested in `limits`, which win, or top-level) and
 * feature limits (an omitted `allocations` becomes unlimited). The node's room is
 * not checked; Wings is told to sync and its failure is only logged, so the
 * sandbox does not call it.
 */
export function updateBuild(ctx: Context): Response {
  const { state } = ctx;
  const server = findById(state.servers, ctx.params[0]);
  const body = bodyObject(ctx);
  assertValid(validate(body, {
    allocation: [
      "required",
      "bail",
      uniqueServer(state, server.id, (s) => s.allocation_id),
      exists(
        "exists",
        (v) => state.allocations.some((a) => String(a.id) === v),
      ),
    ],
    oom_disabled: "sometimes|boolean",
    limits: "sometimes|array",
    ...limitRules("limits.", "required_with:limits", BUILD_ORDER),
    ...limitRules("", "required_without:limits", BUILD_ORDER),
    add_allocations: "bail|array",
    "add_allocations.*": "integer",
    remove_allocations: "bail|array",
    "remove_allocations.*": "integer",
    ...FEATURE_LIMITS,
  }, {
    add_allocations: "allocations to add",
    remove_allocations: "allocations to remove",
    "add_allocations.*": "allocation to add",
    "remove_allocations.*": "allocation to remove",
    "feature_limits.databases": "Database Limit",
    "feature_limits.allocations": "Allocation Limit",
    "feature_limits.backups": "Backup Limit",
  }));
  const add = list(body.add_allocations);
  const remove = list(body.remove_allocations);
  // Decided before anything changes: a DisplayException rolls the transaction back.
  const adding = state.allocations.filter((a) =>
    add.some((id) => String(id) === String(a.id)) &&
    a.node_id === server.node_id && a.server_id === null
  );
  const fresh = adding.length === 0
    ? undefined
    : Math.min(...adding.map((a) => a.id));
  let allocationId: unknown = body.allocation;
  for (const id of remove) {
    // The panel compares strictly (`===`), as PHP values
    if (id !== allocationId) continue;
    if (fresh === undefined) {
      throw displayError(
        "You are attempting to delete the default allocation for this server but there is no fallback allocation to use.",
      );
    }
    allocationId = fresh;
  }
  const freed = state.allocations.filter((a) =>
    remove.some((id) => String(id) === String(a.id)) &&
    !add.some((id) => String(id) === String(a.id)) &&
    a.node_id === server.node_id && a.server_id === server.id
  );
  const target = state.allocations.find((a) =>
    String(a.id) === String(allocationId)
  );
  const owned = target !== undefined &&
    (target.server_id === server.id && !freed.includes(target) ||
      adding.includes(target));
  if (target === undefined || (target.id !== server.allocation_id && !owned)) {
    throw displayError(
      "The requested default allocation is not currently assigned to this server.",
    );
  }
  for (const a of adding) a.server_id = server.id;
  for (const a of freed) a.server_id = null;
  const limits = isPhpArray(body.limits) ? body.limits : {};
  const source: Record<string, unknown> = { ...body, ...limits };
  server.allocation_id = target.id;
  for (const key of ["memory", "swap", "disk", "io", "cpu"] as const) {
    if (source[key] != null) server[key] = Number(source[key]);
  }
  if ("threads" in source) {
    server.threads = source.threads == null ? null : String(source.threads);
  }
  if (body.oom_disabled != null) {
    server.oom_disabled = truthy(body.oom_disabled);
  }
  server.database_limit = nullableNumberAt(body, "feature_limits.databases");
  server.allocation_limit = nullableNumberAt(
    body,
    "feature_limits.allocations",
  );
  server.backup_limit = numberAt(body, "feature_limits.backups", 0);
  server.updated_at = now();
  return reply(ctx, server);
}

function nullableNumberAt(body: unknown, path: string): number | null {
  const { value } = readPath(body, path);
  return value === null || value === undefined ? null : Number(value);
}

/**
 * `POST /servers/{id}/suspend` and `/unsuspend` (`SuspensionService::toggle`): 204,
 * a no-op when already so; Wings is told to sync (a suspended server stops), and a
 * Wings failure rolls the status back. Unsuspending does not start the server.
 */
export function setSuspended(suspend: boolean) {
  return (ctx: Context): Response => {
    const server = findById(ctx.state.servers, ctx.params[0]);
    if ((server.status === "suspended") === suspend) {
      return new Response(null, { status: 204 });
    }
    const previous = server.status;
    server.status = suspend ? "suspended" : null;
    try {
      ctx.lifecycle.daemon();
    } catch (error) {
      server.status = previous;
      throw error;
    }
    if (suspend) setPower(server, "offline");
    server.updated_at = now();
    return new Response(null, { status: 204 });
  };
}

/**
 * `POST /servers/{id}/reinstall` (`ReinstallServerService`): back to installing in
 * one transaction with the call to Wings (which stops the server), 204.
 */
export function reinstallServer(ctx: Context): Response {
  const server = findById(ctx.state.servers, ctx.params[0]);
  ctx.lifecycle.daemon();
  ctx.lifecycle.install(server, true);
  return new Response(null, { status: 204 });
}

/** Removes a server and frees its allocations, as the panel's delete does. */
export function removeServer(
  state: PanelState,
  lifecycle: Context["lifecycle"],
  server: PanelServer,
): void {
  lifecycle.forget(server.id);
  for (const a of state.allocations) {
    if (a.server_id === server.id) a.server_id = null;
  }
  state.servers.splice(state.servers.indexOf(server), 1);
}

/**
 * `DELETE /servers/{id}[/{force?}]` (`ServerDeletionService`): Wings deletes first;
 * its error stops a normal delete (a 404 from Wings does not), `force` goes on. 204.
 */
export function deleteServer(ctx: Context): Response {
  const server = findById(ctx.state.servers, ctx.params[0]);
  const force = ctx.params[1] === "force";
  const wings = ctx.lifecycle.wingsStatus();
  if (!force && wings !== undefined && wings !== 404) ctx.lifecycle.daemon();
  removeServer(ctx.state, ctx.lifecycle, server);
  return new Response(null, { status: 204 });
}
