/**
 * What the Stripe and panel sandboxes share: one fault format ({@linkcode FaultSchema},
 * a path string or `^regex`), one call recorder ({@linkcode CallRecorder}), one control
 * router ({@linkcode controlRouter}) with the common `/_sandbox/calls` and
 * `/_sandbox/faults` routes, the request path through faults ({@linkcode intercept}),
 * a state file for surviving restarts ({@linkcode createStateFile}), and a loopback
 * server that closes without waiting on idle connections ({@linkcode serveLoopback}).
 *
 * @module
 */
export { CallRecorder, maskKey, type SandboxCall } from "./_calls.ts";
export { commonRoutes } from "./_controls.ts";
export {
  type Fault,
  type FaultInput,
  type FaultLike,
  FaultList,
  type FaultPlan,
  FaultSchema,
  parseFault,
} from "./_faults.ts";
export { intercept, type InterceptOptions, wait } from "./_intercept.ts";
export {
  ControlError,
  type ControlHandler,
  type ControlRequest,
  controlRouter,
  type ControlRouterOptions,
  type ControlRoutes,
  jsonResponse,
  noContent,
} from "./_router.ts";
export {
  type LoopbackServer,
  type LoopbackServerOptions,
  serveLoopback,
} from "./_serve.ts";
export {
  createStateFile,
  type StateFile,
  type StateFileOptions,
} from "./_state_file.ts";
