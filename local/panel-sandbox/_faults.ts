/**
 * Injected faults: matched by method and path in insertion order, each use
 * counted against `times`.
 *
 * @module
 */
import { z } from "zod";

/** A fault to inject in front of the panel's handling of matching requests. */
export interface PanelFault {
  method: string;
  path: string | RegExp;
  status?: number;
  latencyMs?: number;
  timeout?: boolean;
  loseResponse?: boolean;
  times?: number;
  /** Retry-After of an injected 429, in seconds (default 60, as a full window). */
  retryAfterSeconds?: number;
}

/** What the matching faults add up to for one request. */
export interface FaultPlan {
  latencyMs: number;
  status?: number;
  timeout: boolean;
  loseResponse: boolean;
  retryAfterSeconds?: number;
}

const FaultJson = z.object({
  method: z.string().min(1),
  path: z.string().min(1),
  status: z.number().int().min(100).max(599).optional(),
  latencyMs: z.number().int().nonnegative().optional(),
  timeout: z.boolean().optional(),
  loseResponse: z.boolean().optional(),
  times: z.number().int().positive().optional(),
  retryAfterSeconds: z.number().int().nonnegative().optional(),
});

/** Parses a fault sent as JSON; a path starting with `^` is a regular expression. */
export function parseFault(body: unknown): PanelFault {
  const fault = FaultJson.parse(body);
  return {
    ...fault,
    path: fault.path.startsWith("^") ? new RegExp(fault.path) : fault.path,
  };
}

function matches(fault: PanelFault, method: string, path: string): boolean {
  if (fault.method !== "*" && fault.method.toUpperCase() !== method) {
    return false;
  }
  return typeof fault.path === "string"
    ? fault.path === path
    : fault.path.test(path);
}

function isTerminal(fault: PanelFault): boolean {
  return fault.status !== undefined || fault.timeout === true ||
    fault.loseResponse === true;
}

/**
 * Takes the faults for one request: latencies add up, the first fault that decides
 * the answer (status, timeout, lost response) ends the walk. Spent faults are removed.
 */
export function takeFaults(
  faults: PanelFault[],
  method: string,
  path: string,
): FaultPlan {
  const plan: FaultPlan = { latencyMs: 0, timeout: false, loseResponse: false };
  for (const fault of [...faults]) {
    if (!matches(fault, method, path)) continue;
    if (fault.times !== undefined) {
      fault.times -= 1;
      if (fault.times <= 0) faults.splice(faults.indexOf(fault), 1);
    }
    plan.latencyMs += fault.latencyMs ?? 0;
    if (!isTerminal(fault)) continue;
    plan.status = fault.status;
    plan.timeout = fault.timeout === true;
    plan.loseResponse = fault.loseResponse === true;
    plan.retryAfterSeconds = fault.retryAfterSeconds;
    break;
  }
  return plan;
}
