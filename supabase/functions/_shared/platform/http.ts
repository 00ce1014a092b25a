/**
 * Request and response plumbing shared by every function: CORS for browsers calling
 * through `supabase.functions.invoke`, JSON bodies validated with zod, and the one place
 * where errors become replies.
 *
 * @module
 */
import { corsHeaders as supabaseCorsHeaders } from "@supabase/supabase-js/cors";
import type { z } from "zod";
import { isTransientDbError } from "./db.ts";
import { DomainError, type DomainErrorKind, HttpError } from "./errors.ts";
import type { Logger } from "./log.ts";

/** A Web-standard request handler. */
export type Handler = (req: Request) => Promise<Response>;

/**
 * CORS headers for the storefront: every request header supabase-js sends, from the
 * list the SDK itself exports (kept in step with it: apikey, x-client-info,
 * x-retry-count, trace headers…), plus x-region, which `functions.invoke` sends when
 * the caller picks a region.
 */
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": `${
    supabaseCorsHeaders["Access-Control-Allow-Headers"]
  }, x-region`,
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
  "Access-Control-Max-Age": "86400",
};

/** A JSON reply with CORS headers. */
export function json(
  body: unknown,
  status = 200,
  headers: HeadersInit = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, "Content-Type": "application/json", ...headers },
  });
}

/** The status each kind of domain error answers with. */
const STATUS_OF: Record<DomainErrorKind, number> = {
  not_found: 404,
  invalid: 422,
  conflict: 409,
  rate_limited: 429,
  unavailable: 503,
  upstream: 502,
};

/**
 * The status a thrown error answers with: 503 for a database that is unreachable or
 * overloaded, 500 for anything else unknown.
 */
export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof DomainError) return STATUS_OF[error.kind];
  if (isTransientDbError(error)) return 503;
  return 500;
}

/**
 * The reply for an error: known ones as they ask, a database refusing, resetting or
 * closing the connection a logged 503 `temporarily_unavailable` (worth a retry),
 * anything else a logged 500.
 */
export function errorResponse(error: unknown, log: Logger): Response {
  if (isTransientDbError(error)) {
    // Postgres restarting or out of connections: the caller may try again shortly.
    log.error("Database unavailable", { error });
    return json({
      error: { code: "temporarily_unavailable", message: "Try again later" },
    }, 503);
  }
  if (error instanceof HttpError || error instanceof DomainError) {
    const status = statusOf(error);
    if (status >= 500) {
      log.error(error.message, {
        code: error.code,
        status,
        cause: error.cause,
      });
    }
    return json(
      { error: { code: error.code, message: error.message, ...error.details } },
      status,
    );
  }
  log.error("Unhandled error", { error });
  return json({
    error: { code: "internal_error", message: "Internal server error" },
  }, 500);
}

/**
 * Wraps a handler: answers CORS preflight, restricts methods, and turns thrown errors
 * into JSON replies.
 */
export function withErrorHandling(
  handler: Handler,
  options: { log: Logger; methods?: string[] },
): Handler {
  const methods = options.methods ?? ["POST"];
  return async (req) => {
    if (req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: corsHeaders });
    }
    try {
      if (!methods.includes(req.method)) {
        throw new HttpError(
          405,
          "method_not_allowed",
          `Method ${req.method} is not allowed`,
          {
            details: { allowed: methods },
          },
        );
      }
      return await handler(req);
    } catch (error) {
      return errorResponse(error, options.log);
    }
  };
}

/**
 * Default limit of a JSON body (16 KiB): every JSON request of the shop is a handful of
 * short fields, well under 1 KiB.
 */
export const JSON_BODY_LIMIT = 16 * 1024;

function payloadTooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    "payload_too_large",
    `Request body must be at most ${limit} bytes`,
    { details: { limit } },
  );
}

/**
 * Reads a request body as UTF-8 text (like `req.text()`), but never more than `limit`
 * bytes: a declared Content-Length over it is refused before reading anything, and a
 * body without one is read chunk by chunk and cancelled as soon as it passes the limit.
 * Either way a 413 `payload_too_large`, and the rest is never read.
 */
export async function readBody(req: Request, limit: number): Promise<string> {
  const declared = req.headers.get("Content-Length");
  if (declared !== null && Number(declared) > limit) {
    await req.body?.cancel().catch(() => {});
    throw payloadTooLarge(limit);
  }
  if (!req.body) return "";
  // A declared length within the limit is held to by the server (a body longer than
  // its Content-Length is cut there): the runtime's own reader is the fastest.
  if (declared !== null && /^\d+$/.test(declared)) return await req.text();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw payloadTooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  // Kept as Deno's req.text() has it (a leading BOM too): the webhook's signature is
  // checked on this text.
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
}

/**
 * Reads a JSON body of at most `options.limit` bytes (default
 * {@linkcode JSON_BODY_LIMIT}) and validates it; a 400 names every field that is wrong.
 * With `options.optional`, an empty body reads as `{}`.
 */
export async function readJson<T extends z.ZodType>(
  req: Request,
  schema: T,
  options: { limit?: number; optional?: boolean } = {},
): Promise<z.infer<T>> {
  const text = await readBody(req, options.limit ?? JSON_BODY_LIMIT);
  let body: unknown = {};
  if (!options.optional || text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(
        400,
        "invalid_json",
        "Request body must be a JSON object",
      );
    }
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((issue) => ({
      field: issue.path.join(".") || "(body)",
      message: issue.message,
    }));
    throw new HttpError(
      400,
      "invalid_request",
      `Invalid request: ${
        fields.map((f) => `${f.field} (${f.message})`).join(", ")
      }`,
      { details: { fields } },
    );
  }
  return parsed.data;
}

/** Runs `work` after the reply (EdgeRuntime.waitUntil where it exists). */
export function runInBackground(work: Promise<unknown>): void {
  const runtime =
    (globalThis as { EdgeRuntime?: { waitUntil(p: Promise<unknown>): void } })
      .EdgeRuntime;
  if (runtime) runtime.waitUntil(work);
}
