/**
 * The one error type handlers throw on purpose: it carries the HTTP status and a stable
 * machine-readable `code`, and becomes `{"error": {"code", "message", ...}}` in http.ts.
 *
 * @module
 */

/** An error with the response it should produce. */
export class HttpError extends Error {
  override name = "HttpError";
  /** HTTP status of the reply. */
  readonly status: number;
  /** Stable code clients can branch on. */
  readonly code: string;
  /** Extra JSON-safe detail for the client (never secrets or internals). */
  readonly details?: Record<string, unknown>;

  constructor(
    status: number,
    code: string,
    message: string,
    options?: { details?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, { cause: options?.cause });
    this.status = status;
    this.code = code;
    this.details = options?.details;
  }
}

/** A configuration variable is missing or malformed; start-up must stop. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
