/**
 * The route tables of `routes/api-application.php` (and the client routes the shop
 * uses), matched in the panel's declaration order.
 *
 * @module
 */
import * as catalog from "./_catalog.ts";
import * as client from "./_client.ts";
import type { Context, Handler } from "./_context.ts";
import { PanelHttpError } from "./_errors.ts";
import * as servers from "./_servers.ts";
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
  route("GET", "/servers/{}/resources", client.serverResources),
  route("POST", "/servers/{}/power", client.sendPower),
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
