/**
 * Test helpers for the panel sandbox: a tiny HTTP client that speaks to it like a
 * panel client would, a path reader for untyped JSON, and request fixtures.
 *
 * @module
 */
import { loadPanelSeed } from "../catalogue.ts";
import {
  type PanelSandbox,
  type PanelSandboxOptions,
  startPanelSandbox,
} from "./mod.ts";

/** The keys test sandboxes are started with. */
export const TEST_KEYS = {
  application: "ptla_testadminkey0000000000000000000000000001",
  nonAdmin: "ptla_teststaffkey0000000000000000000000000002",
  client: "ptlc_testclientkey000000000000000000000000003",
} as const;

/** A reply: status, headers and the parsed JSON body (null when empty). */
export interface PanelReply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Starts a sandbox with the test keys, port 0 and a short install delay. */
export async function startTestPanel(
  options: Partial<PanelSandboxOptions> = {},
): Promise<PanelSandbox> {
  return await startPanelSandbox({
    seed: await loadPanelSeed(),
    applicationKey: TEST_KEYS.application,
    nonAdminKey: TEST_KEYS.nonAdmin,
    clientKey: TEST_KEYS.client,
    installDelayMs: 50,
    ...options,
  });
}

/** Calls the sandbox as a panel client does (Bearer key, JSON accept and body). */
export async function callPanel(
  sandbox: PanelSandbox,
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown; signal?: AbortSignal } = {},
): Promise<PanelReply> {
  const headers: Record<string, string> = { accept: "application/json" };
  const key = options.key === undefined ? TEST_KEYS.application : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${sandbox.url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? null : JSON.parse(text),
  };
}

/** Reads a dotted path (`attributes.limits.memory`, `data.0.id`) from JSON. */
export function at(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split(".")) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** A valid `POST /users` body. */
export function userPayload(
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    email: "alice@example.com",
    username: "alice",
    first_name: "Alice",
    last_name: "Liddell",
    ...overrides,
  };
}

/** A valid `POST /servers` body for the Paper egg (egg 1), on allocation 1. */
export function serverPayload(
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name: "Test server",
    user: 1,
    egg: 1,
    docker_image: "ghcr.io/pterodactyl/yolks:java_21",
    startup: "java -jar {{SERVER_JARFILE}}",
    environment: {
      MINECRAFT_VERSION: "latest",
      SERVER_JARFILE: "server.jar",
      BUILD_NUMBER: "latest",
    },
    limits: { memory: 4096, swap: 0, disk: 20000, io: 500, cpu: 200 },
    feature_limits: { databases: 0, backups: 1 },
    allocation: { default: 1 },
    ...overrides,
  };
}

/** Polls a server until its status leaves `installing` (or fails after 2 s). */
export async function waitForInstall(
  sandbox: PanelSandbox,
  serverId: number,
): Promise<unknown> {
  for (let i = 0; i < 100; i++) {
    const server = sandbox.state().servers.find((s) => s.id === serverId);
    if (server && server.status !== "installing") return server.status;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Server did not finish installing: ${serverId}`);
}
