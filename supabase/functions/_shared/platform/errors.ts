/**
 * Errors. Domain modules throw {@linkcode DomainError} (what went wrong, as a stable
 * `code` and a `kind`); request plumbing throws {@linkcode HttpError}. `http.ts` alone
 * turns either into `{"error": {"code", "message", ...}}` with a status.
 *
 * @module
 */

/** What sort of failure a domain error is; http.ts maps each to one status. */
export type DomainErrorKind =
  | "not_found"
  | "invalid"
  | "conflict"
  | "rate_limited"
  | "unavailable"
  | "upstream";

/** A failure of the shop's own rules or of a service it depends on. */
export class DomainError extends Error {
  override name = "DomainError";
  /** What sort of failure this is. */
  readonly kind: DomainErrorKind;
  /** Stable code clients can branch on. */
  readonly code: string;
  /** Extra JSON-safe detail for the client (never secrets or internals). */
  readonly details?: Record<string, unknown>;

  constructor(
    kind: DomainErrorKind,
    code: string,
    message: string,
    options?: { details?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, { cause: options?.cause });
    this.kind = kind;
    this.code = code;
    this.details = options?.details;
  }
}

/** A request-level error (authentication, method, body) with the status it answers. */
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
