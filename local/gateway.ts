/**
 * A local stand-in for the Supabase API gateway: `/functions/v1/<name>` runs that
 * function's handler in this process (checking the JWT first unless the function has
 * `verify_jwt = false`), `/auth/v1/.well-known/jwks.json` serves the project's public
 * key, `/rest/v1/` is the Data API a storefront reads (`rest.ts`), and
 * `EdgeRuntime.waitUntil` keeps background work alive as on the platform.
 *
 * @module
 */
import { importJWK, type JWK, jwtVerify } from "jose";
import type { Env } from "../supabase/functions/_shared/platform/config.ts";
import {
  corsHeaders,
  type Handler,
} from "../supabase/functions/_shared/platform/http.ts";
import type { Logger } from "../supabase/functions/_shared/platform/log.ts";
import { FUNCTIONS, readVerifyJwt } from "./functions.ts";
import type { RestApi } from "./rest.ts";
import { serveLoopback } from "./sandbox-kit/mod.ts";

/** A running gateway. */
export interface Gateway {
  url: string;
  port: number;
  /** Resolves once all background work (waitUntil) has settled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const pending = new Set<Promise<unknown>>();

/** Installs `EdgeRuntime.waitUntil` (once per process) tracking background work. */
function installEdgeRuntime(log: Logger): void {
  const global = globalThis as {
    EdgeRuntime?: { waitUntil(p: Promise<unknown>): void };
  };
  if (global.EdgeRuntime) return;
  global.EdgeRuntime = {
    waitUntil(promise) {
      const tracked = promise.catch((error) =>
        log.error("Background task failed", { error })
      )
        .finally(() => pending.delete(tracked));
      pending.add(tracked);
    },
  };
}

function gatewayError(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { ...corsHeaders, "Content-Type": "application/json" },
  });
}

/** Starts the gateway on `port` (0 picks a free one) serving the functions with `env`. */
export async function startGateway(options: {
  port: number;
  env: (url: string) => Env;
  publicJwk: JWK;
  log: Logger;
  /** Where the functions' log lines go (default: stdout). */
  functionLog?: (line: string) => void;
  /** The Data API under `/rest/v1/`. */
  rest?: RestApi;
}): Promise<Gateway> {
  installEdgeRuntime(options.log);
  const verifyJwt = await readVerifyJwt();
  const key = await importJWK(options.publicJwk, "ES256");
  const handlers = new Map<
    string,
    { handler: Handler; close(): Promise<void> }
  >();

  const route = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname === "/health") {
      // The gateway starts last, so once it answers, everything is ready.
      return Response.json({ status: "ok" });
    }
    if (url.pathname === "/auth/v1/.well-known/jwks.json") {
      return Response.json({ keys: [options.publicJwk] }, {
        headers: { "Cache-Control": "public, max-age=600" },
      });
    }
    if (options.rest && url.pathname.startsWith("/rest/v1/")) {
      return await options.rest.handle(req);
    }
    const match = /^\/functions\/v1\/([\w-]+)(\/.*)?$/.exec(url.pathname);
    if (!match || !(match[1] in FUNCTIONS)) {
      return gatewayError(404, "NOT_FOUND", "Requested function was not found");
    }
    const name = match[1];
    if (req.method !== "OPTIONS" && (verifyJwt.get(name) ?? true)) {
      const auth = req.headers.get("Authorization");
      const token = auth?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (!token) {
        return gatewayError(
          401,
          "UNAUTHORIZED_NO_AUTH_HEADER",
          "Missing authorization header",
        );
      }
      try {
        await jwtVerify(token, key, { algorithms: ["ES256"] });
      } catch {
        return gatewayError(
          401,
          "UNAUTHORIZED_INVALID_JWT_FORMAT",
          "Invalid JWT",
        );
      }
    }
    const fn = handlers.get(name);
    if (!fn) {
      return gatewayError(503, "FUNCTION_NOT_READY", "Function is starting");
    }
    // The platform hands the function a URL without the /functions/v1 prefix.
    const inner = new URL(`/${name}${match[2] ?? ""}${url.search}`, url);
    return await fn.handler(new Request(inner, req));
  };

  // A function may wait on the panel for up to 20 s a call: let it finish first.
  const server = serveLoopback(route, { port: options.port, graceMs: 30_000 });
  const url = server.url;
  // Wired once, up front, so a configuration error stops start-up like on the platform.
  try {
    const env = options.env(url);
    for (const [name, factory] of Object.entries(FUNCTIONS)) {
      handlers.set(name, factory(env, { write: options.functionLog }));
    }
  } catch (error) {
    await server.close();
    await Promise.all([...handlers.values()].map((fn) => fn.close()));
    throw error;
  }
  return {
    url,
    port: server.port,
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async close() {
      await server.close();
      while (pending.size > 0) await Promise.allSettled([...pending]);
      await Promise.all([...handlers.values()].map((fn) => fn.close()));
      handlers.clear();
    },
  };
}
