/**
 * The control router both sandboxes share: a table of `METHOD /_sandbox/...` routes
 * with `:name` path parameters, JSON bodies parsed with zod, and JSON errors
 * `{"error": {"code", "message"}}`.
 *
 * @module
 */
import { z } from "zod";

/** A control-call failure with its HTTP status and a stable code. */
export class ControlError extends Error {
  /** Creates an error answered as `status` with `{"error": {code, message}}`. */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ControlError";
  }
}

/** One control call as a route handler sees it. */
export interface ControlRequest {
  request: Request;
  url: URL;
  /** the `:name` parts of the route, decoded */
  params: Record<string, string>;
  /** The JSON body parsed with `schema` (an empty body is `{}`); 400 when invalid. */
  body<T>(schema: z.ZodType<T>): Promise<T>;
}

/** A route handler. */
export type ControlHandler = (
  call: ControlRequest,
) => Response | Promise<Response>;

/** Routes keyed `"METHOD /_sandbox/path/:param"`. */
export type ControlRoutes = Record<string, ControlHandler>;

/** Options of `controlRouter`. */
export interface ControlRouterOptions {
  /** Turns a sandbox's own errors into responses (undefined: not one of its errors). */
  mapError?(error: unknown): Response | undefined;
}

/** A JSON response. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A 204 response. */
export function noContent(): Response {
  return new Response(null, { status: 204 });
}

function errorResponse(status: number, code: string, message: string) {
  return jsonResponse({ error: { code, message } }, status);
}

interface CompiledRoute {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: ControlHandler;
}

function compile(routes: ControlRoutes): CompiledRoute[] {
  return Object.entries(routes).map(([key, handler]) => {
    const [method, path] = key.split(" ");
    const names: string[] = [];
    const source = path.split("/").map((part) => {
      if (!part.startsWith(":")) {
        return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      }
      names.push(part.slice(1));
      return "([^/]+)";
    }).join("/");
    return { method, pattern: new RegExp(`^${source}$`), names, handler };
  });
}

async function readBody<T>(request: Request, schema: z.ZodType<T>) {
  const text = await request.text();
  let value: unknown = {};
  if (text.trim() !== "") {
    try {
      value = JSON.parse(text);
    } catch {
      throw new ControlError(400, "invalid_json", "The body is not JSON");
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.path.length > 0 ? `"${issue.path.join(".")}"` : "body";
    throw new ControlError(
      400,
      "invalid_body",
      `Invalid ${where}: ${issue.message}`,
    );
  }
  return result.data;
}

/** Builds the handler of `/_sandbox/...` requests from a route table. */
export function controlRouter(
  routes: ControlRoutes,
  options: ControlRouterOptions = {},
): (request: Request) => Promise<Response> {
  const compiled = compile(routes);
  return async (request) => {
    const url = new URL(request.url);
    const path = url.pathname.replace(/(.)\/$/, "$1");
    try {
      for (const route of compiled) {
        if (route.method !== request.method) continue;
        const match = route.pattern.exec(path);
        if (!match) continue;
        const params = Object.fromEntries(
          route.names.map((
            name,
            i,
          ) => [name, decodeURIComponent(match[i + 1])]),
        );
        return await route.handler({
          request,
          url,
          params,
          body: (schema) => readBody(request, schema),
        });
      }
      return errorResponse(
        404,
        "not_found",
        `No control route: ${request.method} ${path}`,
      );
    } catch (error) {
      if (error instanceof ControlError) {
        return errorResponse(error.status, error.code, error.message);
      }
      if (error instanceof z.ZodError) {
        return errorResponse(400, "invalid_body", error.issues[0].message);
      }
      const mapped = options.mapError?.(error);
      if (mapped) return mapped;
      console.error(JSON.stringify({
        level: "error",
        msg: "Sandbox control call failed",
        route: `${request.method} ${path}`,
        error: error instanceof Error ? error.message : String(error),
      }));
      return errorResponse(500, "internal", "The sandbox failed");
    }
  };
}
