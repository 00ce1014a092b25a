/**
 * The path every API request takes through a sandbox: recorded, then delayed, held,
 * failed or answered as the faults say.
 *
 * @module
 */
import type { CallRecorder } from "./_calls.ts";
import type { FaultList, FaultPlan } from "./_faults.ts";

/** What `intercept` needs from a sandbox. */
export interface InterceptOptions {
  faults: FaultList;
  calls: CallRecorder;
  /** the request's API key, for the masked key in the call log */
  token: string | undefined;
  /** aborts when the sandbox closes, releasing held requests */
  closing: AbortSignal;
  /** the real answer */
  answer(request: Request): Promise<Response>;
  /** the sandbox's error answer for a status fault */
  faultAnswer(plan: FaultPlan & { status: number }): Response;
  /** the sandbox's answer when the real one is lost (a 504, as from a proxy) */
  lostAnswer(): Response;
}

/** Waits `ms` (forever when undefined) or until any signal aborts. */
export function wait(
  ms: number | undefined,
  signals: AbortSignal[],
): Promise<void> {
  return new Promise((resolve) => {
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done, { once: true });
    if (signals.some((s) => s.aborted)) done();
    function done() {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Answers one API request through the sandbox's faults, recording the call. */
export async function intercept(
  request: Request,
  options: InterceptOptions,
): Promise<Response> {
  const call = options.calls.start(request, options.token);
  const plan = options.faults.take(
    request.method,
    new URL(request.url).pathname,
  );
  const signals = [options.closing];
  // request.signal is only read for held requests: reading it opts the request
  // into Deno's abort tracking, which logs a notice.
  if (plan.latencyMs > 0 || plan.timeout) signals.push(request.signal);
  if (plan.latencyMs > 0) await wait(plan.latencyMs, signals);
  if (plan.timeout) {
    await wait(undefined, signals);
    return new Response(null, { status: 504 });
  }
  let response = plan.status !== undefined
    ? options.faultAnswer({ ...plan, status: plan.status })
    : await options.answer(request);
  if (plan.loseResponse) {
    // The work is done; only the answer is lost, as when a proxy times out.
    await response.body?.cancel();
    response = options.lostAnswer();
  }
  call.finish(response.status);
  return response;
}
