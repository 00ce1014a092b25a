/**
 * A stateful Pterodactyl panel on loopback: Application API v1 plus
 * `GET /api/client/servers/{identifier}/resources`, seeded from the catalogue, with
 * the panel's envelopes, validation, auto-deploy, install lifecycle, rate limit and
 * injectable faults.
 *
 * Checked against panel v1.11 (where a guess would differ): no variable defaults are
 * filled; one 422 entry per failed rule; `limits.io` must be 10..1000; `deploy` needs
 * `locations`, `dedicated_ip` and `port_range`; auto-deploy failures are 400
 * `NoViableNodeException` / `NoViableAllocationException`; `PATCH /users/{id}` needs
 * every required field; without `Accept: …json` errors become Laravel redirects or
 * HTML pages; `filter[...]` are partial matches and an unknown filter is a 400.
 *
 * Control endpoints (not recorded in `calls()`; replies are JSON, errors
 * `{"error": {"code", "message"}}`; see `../sandbox-kit/mod.ts`):
 * - `GET /_sandbox/state`: the panel's tables ({@linkcode PanelState})
 * - `GET|DELETE /_sandbox/calls`, `GET /_sandbox/calls/counts`: the recorded calls
 * - `POST /_sandbox/faults` with a {@linkcode PanelFault} whose `path` is a string
 *   (a string starting with `^` is a regular expression); `GET|DELETE /_sandbox/faults`
 * - `POST /_sandbox/config` with `{installDelayMs?, installOutcome?, rateLimitPerMinute?}`
 * - `POST /_sandbox/servers/{id}/power` with `{"state": "offline"|"starting"|"running"|"stopping"}`
 *
 * ```sh
 * curl -X POST localhost:PORT/_sandbox/faults -d '{"method":"POST","path":"/api/application/servers","status":502,"times":1}'
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { Catalogue } from "../catalogue.ts";
import {
  CallRecorder,
  commonRoutes,
  ControlError,
  controlRouter,
  type FaultLike,
  FaultList,
  intercept,
  jsonResponse,
  type SandboxCall,
} from "../sandbox-kit/mod.ts";
import { errorResponse, faultError, json, PanelHttpError } from "./_errors.ts";
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
  catalogue: Catalogue;
  applicationKey: string;
  nonAdminKey?: string;
  clientKey?: string;
  port?: number;
  installDelayMs?: number;
  installOutcome?: "success" | "failure";
  rateLimitPerMinute?: number;
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
        "installDelayMs" | "installOutcome" | "rateLimitPerMinute"
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
}).strict();

const PowerBody = z.object({
  state: z.enum(["offline", "starting", "running", "stopping"]),
});

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
export function startPanelSandbox(
  options: PanelSandboxOptions,
): Promise<PanelSandbox> {
  const state = seedState(options.catalogue, options.nonAdminKey !== undefined);
  const config = {
    installDelayMs: options.installDelayMs ?? 2000,
    installOutcome: options.installOutcome ?? "success",
    rateLimitPerMinute: options.rateLimitPerMinute ?? 240,
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
  const timers = new Map<number, ReturnType<typeof setTimeout>>();
  const closing = new AbortController();

  const lifecycle = {
    install(server: PanelServer, reinstall: boolean) {
      lifecycle.forget(server.id);
      server.status = "installing";
      server.updated_at = now();
      setPower(server, "offline");
      const timer = setTimeout(() => {
        timers.delete(server.id);
        if (server.status !== "installing") return;
        const ok = config.installOutcome === "success";
        server.status = ok
          ? null
          : reinstall
          ? "reinstall_failed"
          : "install_failed";
        server.updated_at = now();
        if (ok) setPower(server, "running");
      }, config.installDelayMs);
      timers.set(server.id, timer);
    },
    forget(serverId: number) {
      clearTimeout(timers.get(serverId));
      timers.delete(serverId);
    },
  };

  async function api(request: Request, url: URL): Promise<Response> {
    const isApp = url.pathname === APPLICATION_BASE ||
      url.pathname.startsWith(`${APPLICATION_BASE}/`);
    const isClient = url.pathname.startsWith(`${CLIENT_BASE}/`);
    let rateHeaders: Record<string, string> = {};
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
    "POST /_sandbox/servers/:id/power": async (c) => {
      const server = findServer(c.params.id);
      setPower(server, (await c.body(PowerBody)).state);
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

  function handle(request: Request): Promise<Response> {
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

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: () => {},
    }, handle);
  } catch (error) {
    return Promise.reject(error);
  }

  const sandbox: PanelSandbox = {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
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
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await server.shutdown();
    },
  };
  return Promise.resolve(sandbox);
}
