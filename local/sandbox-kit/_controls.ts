/**
 * The control routes every sandbox has: its recorded calls and its faults.
 *
 * @module
 */
import type { CallRecorder } from "./_calls.ts";
import { FaultSchema } from "./_faults.ts";
import type { FaultList } from "./_faults.ts";
import { jsonResponse, noContent } from "./_router.ts";
import type { ControlRoutes } from "./_router.ts";

/**
 * `GET|DELETE /_sandbox/calls`, `GET /_sandbox/calls/counts`,
 * `GET|POST|DELETE /_sandbox/faults` (POST and DELETE answer the faults in force).
 */
export function commonRoutes(
  calls: CallRecorder,
  faults: FaultList,
): ControlRoutes {
  return {
    "GET /_sandbox/calls": () => jsonResponse(calls.list()),
    "DELETE /_sandbox/calls": () => {
      calls.reset();
      return noContent();
    },
    "GET /_sandbox/calls/counts": () => jsonResponse(calls.counts()),
    "GET /_sandbox/faults": () => jsonResponse(faults.list()),
    "POST /_sandbox/faults": async (c) => {
      faults.add(await c.body(FaultSchema));
      return jsonResponse(faults.list());
    },
    "DELETE /_sandbox/faults": () => {
      faults.clear();
      return jsonResponse(faults.list());
    },
  };
}
