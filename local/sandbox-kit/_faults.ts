/**
 * The fault format both sandboxes share: matched by method and path in insertion
 * order, each use counted against `times`.
 *
 * @module
 */
import { z } from "zod";

function isPattern(path: string): boolean {
  if (!path.startsWith("^")) return true;
  try {
    new RegExp(path);
    return true;
  } catch {
    return false;
  }
}

/** The JSON form of a fault, as `POST /_sandbox/faults` takes it. */
export const FaultSchema = z.object({
  /** an HTTP method, or `*` for any */
  method: z.string().min(1).default("*").transform((m) => m.toUpperCase()),
  /** an exact path, or a regular expression when it starts with `^` */
  path: z.string().min(1).refine(isPattern, "Not a valid regular expression"),
  status: z.number().int().min(100).max(599).optional(),
  /** matching requests it applies to; omitted, every one until cleared */
  times: z.number().int().positive().optional(),
  /**
   * applies to every n-th matching request only (the n-th, 2n-th, …; `times` counts
   * those): a service failing one call in n; the others pass it by
   */
  every: z.number().int().positive().optional(),
  latencyMs: z.number().int().nonnegative().optional(),
  /** hold the request until the client gives up */
  timeout: z.boolean().optional(),
  /** do the work, then answer 504 instead of the real answer */
  loseResponse: z.boolean().optional(),
  /** Retry-After of an injected 429 or 503, in seconds */
  retryAfterSeconds: z.number().int().nonnegative().optional(),
  /** Stripe's `error.type` of the injected answer */
  type: z.enum([
    "api_error",
    "card_error",
    "idempotency_error",
    "invalid_request_error",
  ]).optional(),
  /** Stripe's `error.code` of the injected answer */
  code: z.string().min(1).optional(),
  /** the error message of the injected answer */
  message: z.string().min(1).optional(),
}).strict();

/** A fault as JSON (input: `method` may be omitted). */
export type FaultInput = z.input<typeof FaultSchema>;

/** A fault in force: `path` is a string or a regular expression. */
export type Fault = Omit<z.output<typeof FaultSchema>, "path"> & {
  path: string | RegExp;
};

/** What the matching faults add up to for one request. */
export interface FaultPlan {
  latencyMs: number;
  timeout: boolean;
  loseResponse: boolean;
  /** the fault that decides the answer's status, if any */
  status?: number;
  retryAfterSeconds?: number;
  type?: Fault["type"];
  code?: string;
  message?: string;
}

/** Parses a fault sent as JSON; a path starting with `^` is a regular expression. */
export function parseFault(body: unknown): Fault {
  const fault = FaultSchema.parse(body);
  return {
    ...fault,
    path: fault.path.startsWith("^") ? new RegExp(fault.path) : fault.path,
  };
}

/** A fault given in code: `path` may already be a RegExp, `method` defaults to `*`. */
export type FaultLike = Omit<FaultInput, "path"> & { path: string | RegExp };

function toFault(input: FaultLike): Fault {
  if (typeof input.path === "string") return parseFault(input);
  const { path, ...rest } = input;
  return { ...parseFault({ ...rest, path: "/" }), path };
}

function matches(fault: Fault, method: string, path: string): boolean {
  if (fault.method !== "*" && fault.method !== method.toUpperCase()) {
    return false;
  }
  return typeof fault.path === "string"
    ? fault.path === path
    : fault.path.test(path);
}

function isTerminal(fault: Fault): boolean {
  return fault.status !== undefined || fault.timeout === true ||
    fault.loseResponse === true;
}

/** The faults in force on one sandbox. */
export class FaultList {
  #faults: Fault[] = [];
  /** The path each fault was given with (a RegExp's source loses nothing else). */
  #paths = new WeakMap<Fault, string>();
  /** Matching requests each `every` fault has seen. */
  #seen = new WeakMap<Fault, number>();

  /** Adds a fault after the others (validated like the JSON form). */
  add(fault: FaultLike): void {
    const parsed = toFault(fault);
    this.#paths.set(
      parsed,
      typeof fault.path === "string" ? fault.path : fault.path.source,
    );
    this.#faults.push(parsed);
  }

  /** Removes every fault. */
  clear(): void {
    this.#faults.length = 0;
  }

  /** The faults in force, as JSON (regular expressions as their source). */
  list(): FaultInput[] {
    return this.#faults.map((f) => ({
      ...f,
      path: this.#paths.get(f) ?? String(f.path),
    }));
  }

  /**
   * Takes the faults for one request: latencies add up, the first fault that decides
   * the answer (status, timeout, lost response) ends the walk. Spent faults are removed.
   */
  take(method: string, path: string): FaultPlan {
    const plan: FaultPlan = {
      latencyMs: 0,
      timeout: false,
      loseResponse: false,
    };
    for (const fault of [...this.#faults]) {
      if (!matches(fault, method, path)) continue;
      if (fault.every !== undefined) {
        const seen = (this.#seen.get(fault) ?? 0) + 1;
        this.#seen.set(fault, seen);
        if (seen % fault.every !== 0) continue;
      }
      if (fault.times !== undefined) {
        fault.times -= 1;
        if (fault.times <= 0) {
          this.#faults.splice(this.#faults.indexOf(fault), 1);
        }
      }
      plan.latencyMs += fault.latencyMs ?? 0;
      if (!isTerminal(fault)) continue;
      plan.timeout = fault.timeout === true;
      plan.loseResponse = fault.loseResponse === true;
      plan.status = fault.status;
      plan.retryAfterSeconds = fault.retryAfterSeconds;
      plan.type = fault.type;
      plan.code = fault.code;
      plan.message = fault.message;
      break;
    }
    return plan;
  }
}
