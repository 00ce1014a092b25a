/**
 * The panel's error shapes (`app/Exceptions/Handler.php`): every error is
 * `{"errors":[{code,status,detail[,meta]}]}`, named after the exception class.
 *
 * @module
 */
import type { ValidationFailure } from "../../setup/laravel_validation.ts";

/** One entry of the panel's `errors` array. */
export interface PanelErrorEntry {
  code: string;
  status: string;
  detail: string;
  meta?: Record<string, string>;
}

/** An error that carries the panel-shaped reply it becomes. */
export class PanelHttpError extends Error {
  readonly status: number;
  readonly entries: PanelErrorEntry[];
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    detail: string,
    options: { entries?: PanelErrorEntry[]; headers?: Record<string, string> } =
      {},
  ) {
    super(detail);
    this.name = "PanelHttpError";
    this.status = status;
    this.entries = options.entries ??
      [{ code, status: String(status), detail }];
    this.headers = options.headers ?? {};
  }
}

/** 404 for a missing model, worded as the panel words it. */
export function notFound(): PanelHttpError {
  return new PanelHttpError(
    404,
    "NotFoundHttpException",
    "The requested resource could not be found on the server.",
  );
}

/** 422 with one entry per failed rule. */
export function validationFailed(
  failures: ValidationFailure[],
): PanelHttpError {
  return new PanelHttpError(422, "ValidationException", failures[0].detail, {
    entries: failures.map((f) => ({
      code: "ValidationException",
      status: "422",
      detail: f.detail,
      meta: { source_field: f.field, rule: f.rule },
    })),
  });
}

/** Throws a 422 when there is any failure. */
export function assertValid(failures: ValidationFailure[]): void {
  if (failures.length > 0) throw validationFailed(failures);
}

/** A panel `DisplayException` (or subclass): HTTP 400 with a readable message. */
export function displayError(
  detail: string,
  code = "DisplayException",
): PanelHttpError {
  return new PanelHttpError(400, code, detail);
}

const FAULT_CODES: Record<number, [string, string]> = {
  400: ["BadRequestHttpException", "Bad request."],
  401: ["AuthenticationException", "Unauthenticated."],
  403: ["AccessDeniedHttpException", "This action is unauthorized."],
  404: [
    "NotFoundHttpException",
    "The requested resource could not be found on the server.",
  ],
  409: ["ConflictHttpException", "Conflict."],
  429: ["ThrottleRequestsException", "Too Many Attempts."],
  500: [
    "HttpException",
    "An unexpected error was encountered while processing this request, please try again.",
  ],
  502: [
    "HttpException",
    "There was an error while attempting to communicate with the daemon resulting in a HTTP/502 response code.",
  ],
  503: ["HttpException", "Service Unavailable."],
  504: ["HttpException", "Gateway Timeout."],
};

/** A panel-shaped error for an injected fault status. */
export function faultError(
  status: number,
  retryAfterSeconds = 60,
): PanelHttpError {
  const [code, detail] = FAULT_CODES[status] ??
    ["HttpException", `The request failed with status ${status}.`];
  const headers: Record<string, string> = status === 429
    ? { "Retry-After": String(retryAfterSeconds) }
    : {};
  return new PanelHttpError(status, code, detail, { headers });
}

/** A JSON reply with the panel's headers. */
export function json(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Whether Laravel's `expectsJson()` holds for the request. */
export function expectsJson(request: Request): boolean {
  const accept = request.headers.get("accept") ?? "";
  return /\/json|\+json/i.test(accept) ||
    request.headers.get("x-requested-with") === "XMLHttpRequest";
}

/**
 * The reply for an error. Like Laravel, a request that does not ask for JSON gets a
 * redirect (401 to the login page, 400/422 back) or an HTML error page.
 */
export function errorResponse(error: PanelHttpError, request: Request) {
  if (expectsJson(request)) {
    return json({ errors: error.entries }, error.status, error.headers);
  }
  const origin = new URL(request.url).origin;
  if (error.status === 401 || error.status === 400 || error.status === 422) {
    const back = request.headers.get("referer") ?? `${origin}/`;
    const location = error.status === 401 ? `${origin}/auth/login` : back;
    return new Response(null, { status: 302, headers: { location } });
  }
  const html = `<!DOCTYPE html><html><head><title>${error.status}</title>` +
    `</head><body><h1>${error.status}</h1><p>${error.message}</p></body></html>`;
  return new Response(html, {
    status: error.status,
    headers: { "content-type": "text/html; charset=UTF-8", ...error.headers },
  });
}

/**
 * The panel's `DaemonConnectionException` for a failed call to Wings: status 0 means
 * Wings could not be reached (504), a 5xx is passed through with the panel's words.
 */
export function daemonError(status: number): PanelHttpError {
  if (status === 0) {
    return new PanelHttpError(
      504,
      "DaemonConnectionException",
      "Could not establish a connection to the machine running this server. Please try again.",
    );
  }
  const answered = status < 400 ? 502 : status;
  const detail = answered < 500
    ? `An error occurred on the remote host: There was an error while communicating with the machine running this server. This error has been logged, please try again. (code: ${status}) (request_id: <nil>). (request id: <nil>)`
    : `There was an error while communicating with the machine running this server. This error has been logged, please try again. (code: ${status}) (request_id: <nil>)`;
  return new PanelHttpError(answered, "DaemonConnectionException", detail);
}

/** `ServerStateConflictException`: the first reason the server cannot be used now. */
export function stateConflict(reason: StateConflict): PanelHttpError {
  return new PanelHttpError(
    409,
    "ServerStateConflictException",
    {
      suspended:
        "This server is currently suspended and the functionality requested is unavailable.",
      maintenance:
        "The node of this server is currently under maintenance and the functionality requested is unavailable.",
      installing:
        "This server has not yet completed its installation process, please try again later.",
      restoring:
        "This server is currently restoring from a backup, please try again later.",
    }[reason],
  );
}

/** Why a server is in a state the client API refuses. */
export type StateConflict =
  | "suspended"
  | "maintenance"
  | "installing"
  | "restoring";
