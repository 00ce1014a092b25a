/**
 * Stripe-shaped API errors: `{"error": {"type", "code", "message", "param"}}` with
 * Stripe's HTTP statuses, so the SDK raises the matching `Stripe.errors.*` class.
 *
 * @module
 */
import type { z } from "zod";

/** An error type Stripe puts in `error.type`. */
export type StripeErrorType =
  | "api_error"
  | "card_error"
  | "idempotency_error"
  | "invalid_request_error";

/** An API error the sandbox answers with, carrying Stripe's status and body. */
export class StripeApiError extends Error {
  /** Creates an error answered as `status` with Stripe's error body. */
  constructor(
    readonly status: number,
    readonly type: StripeErrorType,
    message: string,
    readonly detail: { code?: string; decline_code?: string; param?: string } =
      {},
  ) {
    super(message);
    this.name = "StripeApiError";
  }

  /** The JSON body Stripe answers with. */
  body(): { error: Record<string, string> } {
    const error: Record<string, string> = { type: this.type };
    if (this.detail.code !== undefined) error.code = this.detail.code;
    if (this.detail.decline_code !== undefined) {
      error.decline_code = this.detail.decline_code;
    }
    error.message = this.message;
    if (this.detail.param !== undefined) error.param = this.detail.param;
    return { error };
  }
}

/** A 400 `invalid_request_error`. */
export function invalidRequest(
  message: string,
  detail: { code?: string; param?: string } = {},
): StripeApiError {
  return new StripeApiError(400, "invalid_request_error", message, detail);
}

/** Stripe's error for a required parameter that was not sent. */
export function missingParam(param: string): StripeApiError {
  return invalidRequest(`Missing required param: ${param}.`, {
    code: "parameter_missing",
    param,
  });
}

/** Stripe's error for an id that names nothing: 404 on a path, 400 in a body. */
export function noSuch(
  kind: string,
  id: string,
  param = "id",
  status = 404,
): StripeApiError {
  return new StripeApiError(
    status,
    "invalid_request_error",
    `No such ${kind}: '${id}'`,
    { code: "resource_missing", param },
  );
}

/** A 400 for a parameter Stripe takes but the sandbox does not model (never silently ignored). */
export function unsupported(param: string, what: string): StripeApiError {
  return invalidRequest(`The Stripe sandbox does not support ${what}`, {
    param,
  });
}

/** Stripe's error for a path it does not serve. */
export function unrecognizedUrl(method: string, path: string): StripeApiError {
  return new StripeApiError(
    404,
    "invalid_request_error",
    `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
  );
}

/** A JSON response with Stripe's headers. */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body, null, 2), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A control call's JSON body ({} when empty); malformed JSON is Stripe's 400. */
export async function controlBody(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest("Invalid JSON body");
  }
}

/** Parses a control call's input; the first problem is Stripe's 400 naming the param. */
export function parseControl<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue.path.join(".");
  throw invalidRequest(`Invalid ${param || "body"}: ${issue.message}`, {
    param,
  });
}
