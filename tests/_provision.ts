/**
 * Provisioning in process, over a test stack's database and panel sandbox: the same
 * `provisionOrder` servers-provision runs, with the clock, retry policy and panel client
 * chosen by the test.
 *
 * @module
 */
import { createAlerter } from "../supabase/functions/_shared/platform/alerts.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import {
  createPanelClient,
  type PanelClient,
  type PanelClientOptions,
} from "../supabase/functions/_shared/panel/client.ts";
import {
  type ProvisionDeps,
  provisionOrder,
  type ProvisionSummary,
} from "../supabase/functions/_shared/panel/provision.ts";
import type { TestStack } from "./_stack.ts";

/** A provisioning worker for tests. */
export interface Provisioner {
  deps: ProvisionDeps;
  /** The worker's log lines. */
  logs: string[];
  provision(orderId: string): Promise<ProvisionSummary>;
  close(): Promise<void>;
}

/** Builds a worker; `panel` wraps the sandbox client when a test interleaves calls. */
export function provisioner(
  stack: TestStack,
  options: {
    now?: () => Date;
    panel?: (client: PanelClient) => PanelClient;
    client?: Omit<PanelClientOptions, "url" | "apiKey">;
  } = {},
): Provisioner {
  const sql = connect(stack.databaseUrl);
  const logs: string[] = [];
  const log = createLogger({ fn: "servers-provision" }, {
    write: (line) => logs.push(line),
    secrets: [stack.keys.panelApiKey],
  });
  const client = createPanelClient({
    url: stack.panel.url,
    apiKey: stack.keys.panelApiKey,
    ...options.client,
  });
  const deps: ProvisionDeps = {
    sql,
    panel: options.panel?.(client) ?? client,
    alert: createAlerter({ sql, log }),
    log,
    now: options.now,
  };
  return {
    deps,
    logs,
    provision: (orderId) =>
      provisionOrder(deps, orderId, { actor: "test-worker" }),
    close: () => sql.end({ timeout: 5 }),
  };
}
