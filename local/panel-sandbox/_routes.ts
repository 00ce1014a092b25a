/**
 * The route tables of `routes/api-application.php` (and the one client route the
 * shop uses), matched in the panel's declaration order.
 *
 * @module
 */
import * as catalog from "./_catalog.ts";
import type { Context, Handler } from "./_context.ts";
import { notFound, PanelHttpError } from "./_errors.ts";
import { json } from "./_errors.ts";
import * as servers from "./_servers.ts";
import { isInstalled } from "./_state.ts";
import * as users from "./_users.ts";

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

function route(method: string, path: string, handler: Handler): Route {
  const source = path.replaceAll("{}", "([^/]+)");
  return { method, pattern: new RegExp(`^${source}/?$`), handler };
}

const APPLICATION: Route[] = [
  route("GET", "/users", users.listUsers),
  route("GET", "/users/{}", users.viewUser),
  route("GET", "/users/external/{}", users.viewExternalUser),
  route("POST", "/users", users.createUser),
  route("PATCH", "/users/{}", users.updateUser),
  route("DELETE", "/users/{}", users.deleteUser),
  route("GET", "/nodes", catalog.listNodes),
  route("GET", "/nodes/deployable", catalog.deployableNodes),
  route("GET", "/nodes/{}", catalog.viewNode),
  route("GET", "/nodes/{}/allocations", catalog.listAllocations),
  route("GET", "/locations", catalog.listLocations),
  route("GET", "/locations/{}", catalog.viewLocation),
  route("GET", "/servers", servers.listServers),
  route("GET", "/servers/{}", servers.viewServer),
  route("GET", "/servers/external/{}", servers.viewExternalServer),
  route("PATCH", "/servers/{}/details", servers.updateDetails),
  route("PATCH", "/servers/{}/build", servers.updateBuild),
  route("POST", "/servers", servers.createServer),
  route("POST", "/servers/{}/suspend", servers.setSuspended(true)),
  route("POST", "/servers/{}/unsuspend", servers.setSuspended(false)),
  route("POST", "/servers/{}/reinstall", servers.reinstallServer),
  route("DELETE", "/servers/{}", servers.deleteServer),
  route("DELETE", "/servers/{}/{}", servers.deleteServer),
  route("GET", "/nests", catalog.listNests),
  route("GET", "/nests/{}", catalog.viewNest),
  route("GET", "/nests/{}/eggs", catalog.listEggs),
  route("GET", "/nests/{}/eggs/{}", catalog.viewEgg),
];

const CLIENT: Route[] = [
  route("GET", "/servers/{}/resources", serverResources),
];

/** The base paths of the two APIs the sandbox serves. */
export const APPLICATION_BASE = "/api/application";
/** The client API base path. */
export const CLIENT_BASE = "/api/client";

function dispatch(
  routes: Route[],
  base: string,
  ctx: Omit<Context, "params">,
): Response {
  const path = ctx.url.pathname.slice(base.length) || "/";
  const method = ctx.request.method === "HEAD" ? "GET" : ctx.request.method;
  const allowed: string[] = [];
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    if (r.method === method) {
      return r.handler({ ...ctx, params: m.slice(1) });
    }
    allowed.push(r.method === "GET" ? "GET, HEAD" : r.method);
  }
  const routeName = ctx.url.pathname.replace(/^\//, "");
  if (allowed.length > 0) {
    throw new PanelHttpError(
      405,
      "MethodNotAllowedHttpException",
      `The ${ctx.request.method} method is not supported for route ${routeName}. Supported methods: ${
        allowed.join(", ")
      }.`,
    );
  }
  throw new PanelHttpError(
    404,
    "NotFoundHttpException",
    `The route ${routeName} could not be found.`,
  );
}

/** Handles one authenticated `/api/application` request. */
export function handleApplication(ctx: Omit<Context, "params">): Response {
  return dispatch(APPLICATION, APPLICATION_BASE, ctx);
}

/** Handles one authenticated `/api/client` request. */
export function handleClient(ctx: Omit<Context, "params">): Response {
  return dispatch(CLIENT, CLIENT_BASE, ctx);
}

function conflict(detail: string): PanelHttpError {
  return new PanelHttpError(409, "ConflictHttpException", detail);
}

/** `GET /api/client/servers/{identifier}/resources`: Wings' stats, or 409. */
function serverResources(ctx: Context): Response {
  const id = ctx.params[0];
  const server = ctx.state.servers.find((s) =>
    s.identifier === id || s.uuid === id
  );
  if (!server) throw notFound();
  if (server.owner_id !== ctx.user.id && !ctx.user.root_admin) throw notFound();
  const node = ctx.state.nodes.find((n) => n.id === server.node_id);
  if (server.status === "suspended") {
    throw conflict(
      "This server is currently suspended and the functionality requested is unavailable.",
    );
  }
  if (node?.maintenance_mode) {
    throw conflict(
      "The node of this server is currently under maintenance and the functionality requested is unavailable.",
    );
  }
  if (!isInstalled(server)) {
    throw conflict(
      "This server has not yet completed its installation process, please try again later.",
    );
  }
  if (server.status === "restoring_backup") {
    throw conflict(
      "This server is currently restoring from a backup, please try again later.",
    );
  }
  const on = server.power_state !== "offline";
  const mib = 1024 * 1024;
  return json({
    object: "stats",
    attributes: {
      current_state: server.power_state,
      is_suspended: false,
      resources: {
        memory_bytes: on ? Math.round(server.memory * mib * 0.4) : 0,
        cpu_absolute: on ? 12.5 : 0,
        disk_bytes: Math.round(server.disk * mib * 0.1),
        network_rx_bytes: on ? 48_213 : 0,
        network_tx_bytes: on ? 20_488 : 0,
        uptime: on ? Date.now() - Date.parse(server.power_changed_at) : 0,
      },
    },
  });
}
