/**
 * The call recorder both sandboxes share: one row per API request, with its status
 * and duration, and a masked key.
 *
 * @module
 */

/**
 * One recorded request: `query` has no leading `?`, `key` is masked (`ptla_…abcd`,
 * "" without a key), `status` 0 means the sandbox never answered (timeout fault).
 */
export interface SandboxCall {
  method: string;
  path: string;
  query: string;
  status: number;
  /** milliseconds from arrival to the answer (0 while unanswered) */
  ms: number;
  key: string;
  /** arrival, in epoch milliseconds */
  at: number;
}

/** Masks a key for the call log: its prefix (`ptla_`, `sk_test_`) and last four. */
export function maskKey(token: string | undefined): string {
  if (!token) return "";
  const prefix = /^[a-z]+_(test_|live_)?/.exec(token)?.[0] ?? token.slice(0, 5);
  return `${prefix}…${token.slice(-4)}`;
}

/** The recorded calls of one sandbox. */
export class CallRecorder {
  #calls: SandboxCall[] = [];

  /** Records a request as it arrives; call `finish` with its status when answered. */
  start(
    request: Request,
    token: string | undefined,
  ): { finish(status: number): void } {
    const url = new URL(request.url);
    const started = performance.now();
    const call: SandboxCall = {
      method: request.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ""),
      status: 0,
      ms: 0,
      key: maskKey(token),
      at: Date.now(),
    };
    this.#calls.push(call);
    return {
      finish(status) {
        call.status = status;
        call.ms = Math.round(performance.now() - started);
      },
    };
  }

  /** A copy of the calls so far, oldest first. */
  list(): SandboxCall[] {
    return structuredClone(this.#calls);
  }

  /** Forgets every call. */
  reset(): void {
    this.#calls = [];
  }

  /** How many calls each `METHOD path` got, e.g. `{"GET /api/application/servers": 11}`. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.#calls) {
      const key = `${c.method} ${c.path}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }
}
