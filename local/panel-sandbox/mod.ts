/**
 * A stateful Pterodactyl panel on loopback: Application API v1 plus the client
 * API's `GET /api/client/servers/{identifier}/resources` and `POST .../power`,
 * seeded from `local/panel_seed.json` (or loaded from a state file), with the panel's
 * envelopes, validation, auto-deploy, install lifecycle, suspension, deletion, a
 * Wings that can fail, rate limit and injectable faults.
 *
 * Checked against panel v1.11 (where a guess would differ): no variable defaults are
 * filled; one 422 entry per failed rule; `limits.io` must be 10..1000; `deploy` needs
 * `locations`, `dedicated_ip` and `port_range`; auto-deploy failures are 400
 * `NoViableNodeException` / `NoViableAllocationException`; `PATCH /users/{id}` needs
 * every required field; without `Accept: …json` errors become Laravel redirects or
 * HTML pages; `filter[...]` are partial matches and an unknown filter is a 400;
 * `per_page` is not capped. Lifecycle (`SuspensionService`, `ServerDeletionService`,
 * `ReinstallServerService`, `AuthenticateServerAccess`): suspend/unsuspend are 204
 * no-ops when already so, suspending stops the server, unsuspending does not start
 * it, a Wings failure rolls the status back; reinstall sets `installing` (an install
 * that ends keeps a suspension); a Wings error stops a normal delete (not a 404 from
 * Wings), `/force` deletes anyway; the client API answers 409
 * `ServerStateConflictException` for suspended and not-installed servers. Build
 * changes (`PATCH /servers/{id}/build`, `BuildModificationService`): errors in the
 * request's rule order, a removed default allocation falls back to the first one
 * added, a `DisplayException` changes nothing, an omitted
 * `feature_limits.allocations` becomes unlimited, and the node's room is not
 * checked (its `allocated_resources` follow the new limits).
 *
 * Control endpoints (not recorded in `calls()`; replies are JSON, errors
 * `{"error": {"code", "message"}}`; see `../sandbox-kit/mod.ts`):
 * - `GET /_sandbox/state`: the panel's tables ({@linkcode PanelState})
 * - `GET|DELETE /_sandbox/calls`, `GET /_sandbox/calls/counts`: the recorded calls
 * - `POST /_sandbox/faults` with a {@linkcode PanelFault} whose `path` is a string
 *   (a string starting with `^` is a regular expression); `GET|DELETE /_sandbox/faults`
 * - `POST /_sandbox/config` with `{installDelayMs?, installOutcome?, rateLimitPerMinute?,
 *   latencyMs?, wingsStatus?}` (`latencyMs`: how long every API answer takes) (`wingsStatus` 0 for unreachable, a status, or null for working)
 * - `POST /_sandbox/servers/{id}/power` with `{"state": "offline"|"starting"|"running"|"stopping"}`
 * - `POST /_sandbox/servers/{id}/usage` with `{"disk_bytes", "memory_bytes"}`: what
 *   Wings reports in use from then on (client API `GET …/resources`
 *   `attributes.resources.disk_bytes`, and `memory_bytes` while the server runs: a
 *   stopped one reports 0); answers the server
 * - `DELETE /_sandbox/servers/{id}`: deletes a server by hand (as in the admin UI)
 * - `POST /_sandbox/installs/finish` with `{server_id?, outcome?}`: ends pending
 *   installs now; answers `{finished: [ids]}`
 * - `POST /_sandbox/servers/bulk` with `{count | external_ids, owner?, node?, egg?,
 *   status?, memory?, disk?}`: seeds servers at once; answers 201 `{ids}`
 *
 * ```sh
 * curl -X POST localhost:PORT/_sandbox/faults -d '{"method":"POST","path":"/api/application/servers","status":502,"times":1}'
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { PanelSeed } from "../catalogue.ts";
import {
  CallRecorder,
  commonRoutes,
  ControlError,
  controlRouter,
  createStateFile,
  type FaultLike,
  FaultList,
  intercept,
  jsonResponse,
  noContent,
  type SandboxCall,
  serveLoopback,
} from "../sandbox-kit/mod.ts";
import { type PanelSnapshot, parseSnapshot } from "./_persist.ts";
import { BulkServers, seedServers } from "./_bulk.ts";
import {
  daemonError,
  errorResponse,
  faultError,
  json,
  PanelHttpError,
} from "./_errors.ts";
import { removeServer } from "./_servers.ts";
import { hitRateLimit, type RateWindows } from "./_rate_limit.ts";
import {
  APPLICATION_BASE,
  CLIENT_BASE,
  handleApplication,
  handleClient,
} from "./_routes.ts";
import {
  now,
  type PanelServer,
  type PanelState,
  seedState,
  setPower,
} from "./_state.ts";
import { phpQuery } from "./_catalog.ts";

/** A fault to inject in front of the panel's handling of matching requests. */
export type PanelFault = FaultLike;
export type {
  PanelAllocation,
  PanelEgg,
  PanelEggVariable,
  PanelEmail,
  PanelLocation,
  PanelNest,
  PanelNode,
  PanelServer,
  PanelState,
  PanelUser,
  PowerState,
} from "./_state.ts";

/** How to start the sandbox. */
export interface PanelSandboxOptions {
  seed: PanelSeed;
  applicationKey: string;
  nonAdminKey?: string;
  clientKey?: string;
  port?: number;
  installDelayMs?: number;
  installOutcome?: "success" | "failure";
  rateLimitPerMinute?: number;
  /** How long every API call takes before it is answered (a remote panel's latency). */
  latencyMs?: number;
  /**
   * While set, every call the panel makes to Wings fails with this status (0: Wings
   * unreachable), as `DaemonConnectionException`: suspend, reinstall, power,
   * resources, create and a normal delete fail; a forced delete goes through.
   */
  wingsStatus?: number | null;
  /**
   * A JSON file the panel's tables and pending installs are kept in: loaded on
   * start (instead of seeding), saved after every change.
   */
  stateFile?: string;
}

/** One recorded request (see {@linkcode SandboxCall}). */
export type PanelCall = SandboxCall;

/** A running sandbox. */
export interface PanelSandbox {
  url: string;
  port: number;
  calls(): PanelCall[];
  resetCalls(): void;
  addFault(fault: PanelFault): void;
  clearFaults(): void;
  configure(
    patch: Partial<
      Pick<
        PanelSandboxOptions,
        | "installDelayMs"
        | "installOutcome"
        | "rateLimitPerMinute"
        | "latencyMs"
        | "wingsStatus"
      >
    >,
  ): void;
  state(): PanelState;
  close(): Promise<void>;
}

const ConfigPatch = z.object({
  installDelayMs: z.number().int().nonnegative().optional(),
  installOutcome: z.enum(["success", "failure"]).optional(),
  rateLimitPerMinute: z.number().int().positive().optional(),
  latencyMs: z.number().int().nonnegative().max(60_000).optional(),
  wingsStatus: z.number().int().min(0).max(599).nullable().optional(),
}).strict();

const FinishInstalls = z.object({
  server_id: z.number().int().positive().optional(),
  outcome: z.enum(["success", "failure"]).optional(),
}).strict();

const UsageBody = z.object({
  disk_bytes: z.number().int().nonnegative(),
  memory_bytes: z.number().int().nonnegative(),
}).strict();

const PowerBody = z.object({
  state: z.enum(["offline", "starting", "running", "stopping"]),
});

/** An install in progress and its timer. */
interface Install {
  reinstall: boolean;
  due_at: number;
  timer: ReturnType<typeof setTimeout>;
}

interface ApiKey {
  userId: number;
  type: "application" | "client";
}

function bearer(request: Request): string | undefined {
  const header = request.headers.get("authorization") ?? "";
  return /^Bearer\s+(\S+)$/i.exec(header)?.[1];
}

/** Laravel's TrimStrings and ConvertEmptyStringsToNull (passwords untrimmed). */
function normalise(value: unknown, key = ""): unknown {
  if (typeof value === "string") {
    const v = key.startsWith("password") ? value : value.trim();
    return v === "" ? null : v;
  }
  if (Array.isArray(value)) return value.map((v) => normalise(v));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, normalise(v, k)]),
    );
  }
  return value;
}

/** Reads the body: JSON when the request says so (400 when malformed), else a form. */
async function readBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text === "") return {};
  const type = request.headers.get("content-type") ?? "";
  if (/\/json|\+json/i.test(type)) {
    try {
      return normalise(JSON.parse(text));
    } catch {
      throw new PanelHttpError(
        400,
        "BadRequestHttpException",
        "The JSON data passed in the request appears to be malformed: Syntax error",
      );
    }
  }
  if (type.includes("application/x-www-form-urlencoded")) {
    return normalise(phpQuery(new URL(`http://form/?${text}`)));
  }
  return {};
}

/** Starts a sandbox panel on 127.0.0.1 (port 0 picks a free port). */
export async function startPanelSandbox(
  options: PanelSandboxOptions,
): Promise<PanelSandbox> {
  const stateFile = options.stateFile === undefined
    ? undefined
    : createStateFile(options.stateFile, { parse: parseSnapshot });
  const saved = await stateFile?.load();
  const state = saved?.state ??
    seedState(options.seed, options.nonAdminKey !== undefined);
  const config = {
    installDelayMs: options.installDelayMs ?? 2000,
    installOutcome: options.installOutcome ?? "success",
    rateLimitPerMinute: options.rateLimitPerMinute ?? 240,
    latencyMs: options.latencyMs ?? 0,
    wingsStatus: options.wingsStatus ?? null,
  };
  const keys = new Map<string, ApiKey>([
    [options.applicationKey, { userId: 1, type: "application" }],
  ]);
  if (options.nonAdminKey) {
    keys.set(options.nonAdminKey, { userId: 2, type: "application" });
  }
  if (options.clientKey) {
    keys.set(options.clientKey, { userId: 1, type: "client" });
  }
  const calls = new CallRecorder();
  const faults = new FaultList();
  const windows: RateWindows = new Map();
  const closing = new AbortController();

  const installs = new Map<number, Install>();

  const lifecycle = {
    install(server: PanelServer, reinstall: boolean) {
      lifecycle.forget(server.id);
      server.status = "installing";
      server.updated_at = now();
      setPower(server, "offline");
      schedule(server.id, reinstall, Date.now() + config.installDelayMs);
    },
    forget(serverId: number) {
      clearTimeout(installs.get(serverId)?.timer);
      installs.delete(serverId);
    },
    daemon() {
      if (config.wingsStatus !== null) throw daemonError(config.wingsStatus);
    },
    wingsStatus: () => config.wingsStatus ?? undefined,
  };

  function schedule(serverId: number, reinstall: boolean, dueAt: number) {
    const timer = setTimeout(
      () => finishInstall(serverId),
      Math.max(0, dueAt - Date.now()),
    );
    installs.set(serverId, { reinstall, due_at: dueAt, timer });
  }

  /** Wings reports the install done (`ServerInstallController::store`). */
  function finishInstall(
    serverId: number,
    outcome = config.installOutcome,
  ): boolean {
    const install = installs.get(serverId);
    lifecycle.forget(serverId);
    const server = state.servers.find((s) => s.id === serverId);
    if (!install || !server) return false;
    const ok = outcome === "success";
    // A server suspended meanwhile stays suspended, whatever the outcome.
    server.status = server.status === "suspended"
      ? "suspended"
      : ok
      ? null
      : install.reinstall
      ? "reinstall_failed"
      : "install_failed";
    server.updated_at = now();
    if (ok && server.status === null) setPower(server, "running");
    persist();
    return true;
  }

  function snapshot(): PanelSnapshot {
    return {
      version: 1,
      state,
      installs: [...installs].map(([server_id, i]) => ({
        server_id,
        reinstall: i.reinstall,
        due_at: i.due_at,
      })),
    };
  }

  /** Saves in the background; `now` takes the snapshot at once (before a close). */
  function persist(now = false): void {
    stateFile?.save(now ? snapshot() : snapshot).catch((error) => {
      console.error(JSON.stringify({
        level: "error",
        msg: "Panel sandbox could not save its state",
        path: options.stateFile,
        error: error instanceof Error ? error.message : String(error),
      }));
    });
  }

  // An install that was running when the sandbox stopped goes on where it was.
  for (const install of saved?.installs ?? []) {
    schedule(install.server_id, install.reinstall, install.due_at);
  }

  async function api(request: Request, url: URL): Promise<Response> {
    const isApp = url.pathname === APPLICATION_BASE ||
      url.pathname.startsWith(`${APPLICATION_BASE}/`);
    const isClient = url.pathname.startsWith(`${CLIENT_BASE}/`);
    let rateHeaders: Record<string, string> = {};
    if (config.latencyMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, config.latencyMs));
    }
    try {
      if (!isApp && !isClient) {
        throw new PanelHttpError(
          404,
          "NotFoundHttpException",
          `The route ${url.pathname.slice(1)} could not be found.`,
        );
      }
      const token = bearer(request);
      const key = token === undefined ? undefined : keys.get(token);
      const user = state.users.find((u) => u.id === key?.userId);
      if (!token || !key || !user) {
        throw new PanelHttpError(
          401,
          "AuthenticationException",
          "Unauthenticated.",
        );
      }
      const body = await readBody(request);
      if (isApp && !user.root_admin) {
        throw new PanelHttpError(
          403,
          "AccessDeniedHttpException",
          "This account does not have permission to access the API.",
        );
      }
      if (isClient && key.type === "application") {
        throw new PanelHttpError(
          403,
          "AccessDeniedHttpException",
          "You are attempting to use an application API key on an endpoint that requires a client API key.",
        );
      }
      const verdict = hitRateLimit(windows, token, config.rateLimitPerMinute);
      rateHeaders = verdict.headers;
      if (!verdict.allowed) {
        throw new PanelHttpError(
          429,
          "ThrottleRequestsException",
          "Too Many Attempts.",
          { headers: verdict.headers },
        );
      }
      const ctx = { state, request, url, body, user, lifecycle };
      const response = isApp ? handleApplication(ctx) : handleClient(ctx);
      for (const [k, v] of Object.entries(rateHeaders)) {
        response.headers.set(k, v);
      }
      return response;
    } catch (error) {
      if (error instanceof PanelHttpError) {
        const response = errorResponse(error, request);
        for (const [k, v] of Object.entries(rateHeaders)) {
          if (!response.headers.has(k)) response.headers.set(k, v);
        }
        return response;
      }
      console.error("Panel sandbox handler failed:", error);
      return json({
        errors: [{
          code: "ErrorException",
          status: "500",
          detail:
            "An unexpected error was encountered while processing this request, please try again.",
        }],
      }, 500);
    }
  }

  const control = controlRouter({
    ...commonRoutes(calls, faults),
    "GET /_sandbox/state": () => jsonResponse(sandbox.state()),
    "POST /_sandbox/config": async (c) => {
      sandbox.configure(await c.body(ConfigPatch));
      return jsonResponse(config);
    },
    "DELETE /_sandbox/servers/:id": (c) => {
      removeServer(state, lifecycle, findServer(c.params.id));
      return noContent();
    },
    "POST /_sandbox/servers/bulk": async (c) => {
      const created = seedServers(state, await c.body(BulkServers));
      for (const server of created) {
        if (server.status === "installing") {
          schedule(server.id, false, Date.now() + config.installDelayMs);
        }
      }
      return jsonResponse({ ids: created.map((s) => s.id) }, 201);
    },
    "POST /_sandbox/installs/finish": async (c) => {
      const input = await c.body(FinishInstalls);
      const ids = input.server_id === undefined
        ? [...installs.keys()]
        : [findServer(String(input.server_id)).id];
      const finished = ids.filter((id) => finishInstall(id, input.outcome));
      return jsonResponse({ finished });
    },
    "POST /_sandbox/servers/:id/power": async (c) => {
      const server = findServer(c.params.id);
      setPower(server, (await c.body(PowerBody)).state);
      return jsonResponse(structuredClone(server));
    },
    "POST /_sandbox/servers/:id/usage": async (c) => {
      const server = findServer(c.params.id);
      server.usage = await c.body(UsageBody);
      return jsonResponse(structuredClone(server));
    },
  });

  function findServer(raw: string): PanelServer {
    const server = state.servers.find((s) => String(s.id) === raw);
    if (!server) {
      throw new ControlError(404, "not_found", `No server "${raw}"`);
    }
    return server;
  }

  async function handle(request: Request): Promise<Response> {
    const response = await route(request);
    // Saves are coalesced, so saving after every write request costs one file write.
    if (request.method !== "GET" && request.method !== "HEAD") persist();
    return response;
  }

  function route(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/_sandbox/")) return control(request);
    return intercept(request, {
      faults,
      calls,
      token: bearer(request),
      closing: closing.signal,
      answer: () => api(request, url),
      faultAnswer: (plan) => {
        const fault = faultError(plan.status, plan.retryAfterSeconds);
        return json({ errors: fault.entries }, fault.status, fault.headers);
      },
      lostAnswer: () => json({ errors: faultError(504).entries }, 504),
    });
  }

  const server = serveLoopback(handle, { port: options.port });

  const sandbox: PanelSandbox = {
    url: server.url,
    port: server.port,
    calls: () => calls.list(),
    resetCalls: () => calls.reset(),
    addFault: (fault) => faults.add(fault),
    clearFaults: () => faults.clear(),
    configure: (patch) => {
      Object.assign(config, ConfigPatch.parse(patch));
    },
    state: () => structuredClone(state),
    close: async () => {
      closing.abort();
      await server.close();
      // Saved before the timers stop, so pending installs go on after a restart.
      persist(true);
      for (const install of installs.values()) clearTimeout(install.timer);
      installs.clear();
      await stateFile?.flush();
    },
  };
  return sandbox;
}
