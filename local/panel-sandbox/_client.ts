/**
 * The client API routes the shop uses (`routes/api-client.php`): a server's
 * resources and power, behind `AuthenticateServerAccess`.
 *
 * @module
 */
import { bodyObject, type Context } from "./_context.ts";
import {
  assertValid,
  json,
  notFound,
  type StateConflict,
  stateConflict,
} from "./_errors.ts";
import { isInstalled, type PanelServer, setPower } from "./_state.ts";
import { validate } from "../../setup/laravel_validation.ts";

/** Why `Server::validateCurrentState` refuses the server, in the panel's order. */
function conflictOf(
  ctx: Context,
  server: PanelServer,
): StateConflict | undefined {
  if (server.status === "suspended") return "suspended";
  const node = ctx.state.nodes.find((n) => n.id === server.node_id);
  if (node?.maintenance_mode) return "maintenance";
  if (!isInstalled(server)) return "installing";
  if (server.status === "restoring_backup") return "restoring";
  return undefined;
}

/**
 * `AuthenticateServerAccess`: the server by identifier or uuid, visible to its owner
 * and root admins (404 otherwise), and 409 `ServerStateConflictException` unless it
 * can be used now.
 */
function serverAccess(ctx: Context): PanelServer {
  const id = decodeURIComponent(ctx.params[0]);
  const server = ctx.state.servers.find((s) =>
    s.identifier === id || s.uuid === id
  );
  if (!server) throw notFound();
  if (server.owner_id !== ctx.user.id && !ctx.user.root_admin) throw notFound();
  const conflict = conflictOf(ctx, server);
  if (conflict) throw stateConflict(conflict);
  return server;
}

/** `GET /servers/{identifier}/resources`: Wings' stats through `StatsTransformer`. */
export function serverResources(ctx: Context): Response {
  const server = serverAccess(ctx);
  ctx.lifecycle.daemon();
  const on = server.power_state !== "offline";
  const mib = 1024 * 1024;
  return json({
    object: "stats",
    attributes: {
      current_state: server.power_state,
      is_suspended: false,
      resources: {
        // A stopped container uses no memory; its files stay on disk.
        memory_bytes: on
          ? server.usage?.memory_bytes ?? Math.round(server.memory * mib * 0.4)
          : 0,
        cpu_absolute: on ? 12.5 : 0,
        disk_bytes: server.usage?.disk_bytes ??
          Math.round(server.disk * mib * 0.1),
        network_rx_bytes: on ? 48_213 : 0,
        network_tx_bytes: on ? 20_488 : 0,
        uptime: on ? Date.now() - Date.parse(server.power_changed_at) : 0,
      },
    },
  });
}

/**
 * `POST /servers/{identifier}/power` `{"signal": "start"|"stop"|"restart"|"kill"}`:
 * 204 once Wings took the action (it runs it in the background; the sandbox applies
 * it at once).
 */
export function sendPower(ctx: Context): Response {
  const server = serverAccess(ctx);
  const body = bodyObject(ctx);
  assertValid(
    validate(body, { signal: "required|string|in:start,stop,restart,kill" }),
  );
  ctx.lifecycle.daemon();
  const signal = String(body.signal);
  if (signal === "restart") setPower(server, "offline");
  setPower(
    server,
    signal === "start" || signal === "restart" ? "running" : "offline",
  );
  return new Response(null, { status: 204 });
}
