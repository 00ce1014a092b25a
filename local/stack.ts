/**
 * The whole backend, locally and without Docker: Postgres (embedded, or the server in
 * DATABASE_URL) prepared like a Supabase project, the Stripe sandbox, and the gateway
 * running every function in process. `npm start` runs it in the foreground; the tests
 * start one per test file on free ports.
 *
 * @module
 */
import {
  type Env,
  parseEnv,
} from "../supabase/functions/_shared/platform/config.ts";
import { lifecycleEnv } from "../supabase/functions/_shared/orders/lifecycle_config.ts";
import {
  createLogger,
  type Logger,
} from "../supabase/functions/_shared/platform/log.ts";
import Stripe from "stripe";
import { loadCatalogue, loadPanelSeed } from "./catalogue.ts";
import { prepareDatabase } from "./database.ts";
import { type Gateway, startGateway } from "./gateway.ts";
import {
  generateLocalKeys,
  loadOrCreateKeys,
  type LocalKeys,
  saveKeys,
} from "./keys.ts";
import { type PanelSandbox, startPanelSandbox } from "./panel-sandbox/mod.ts";
import { type PostgresServer, startPostgres } from "./postgres.ts";
import {
  startStripeSandbox,
  type StripeSandbox,
} from "./stripe-sandbox/mod.ts";
import { startRestApi } from "./rest.ts";
import { startStorefront, type Storefront } from "./storefront.ts";
import { registerWebhookEndpoint } from "./webhook_endpoint.ts";

/** Fixed ports of `npm start` (Supabase's own defaults where it has them). */
export const DEFAULT_PORTS = {
  gateway: 54321,
  db: 54322,
  stripe: 54330,
  panel: 54331,
  /** The reference storefront (the functions' SITE_URL). */
  storefront: 3000,
};

/**
 * Which API keys the functions get, like a project that has only the new keys
 * (`sb_publishable_…` / `sb_secret_…`), only the legacy JWT keys, or both.
 */
export type KeyMode = "new" | "legacy" | "both";

/** Every key mode. */
export const KEY_MODES: readonly KeyMode[] = ["new", "legacy", "both"];

/** The platform's API key variables for `mode`. */
export function apiKeyEnv(keys: LocalKeys, mode: KeyMode): Env {
  const fresh = mode !== "legacy";
  const legacy = mode !== "new";
  return {
    SUPABASE_ANON_KEY: legacy ? keys.anonKey : undefined,
    SUPABASE_SERVICE_ROLE_KEY: legacy ? keys.serviceRoleKey : undefined,
    SUPABASE_PUBLISHABLE_KEYS: fresh
      ? JSON.stringify({ default: keys.publishableKey })
      : undefined,
    SUPABASE_SECRET_KEYS: fresh
      ? JSON.stringify({ default: keys.secretKey })
      : undefined,
  };
}

/** Reads the key mode from SUPABASE_KEYS (`new`, `legacy` or `both`; default both). */
export function keyModeFromEnv(value: string | undefined): KeyMode {
  if (value === undefined || value === "") return "both";
  if ((KEY_MODES as readonly string[]).includes(value)) {
    return value as KeyMode;
  }
  throw new Error(
    `SUPABASE_KEYS must be one of ${KEY_MODES.join(", ")}: got "${value}"`,
  );
}

/** How to start the stack. */
export interface StackOptions {
  /** Which API keys the functions see (default both). */
  keyMode?: KeyMode;
  /** Folder for local state (keys, Postgres data, sandbox state); default `.local`. */
  stateDir?: string;
  /** Use this database instead of starting embedded Postgres. */
  databaseUrl?: string;
  ports?: Partial<typeof DEFAULT_PORTS>;
  /** Fresh keys in memory instead of the ones kept in `stateDir`. */
  ephemeralKeys?: boolean;
  /** Delays between Stripe webhook retries. */
  stripeRetryDelaysMs?: number[];
  /** How long a new panel server stays "installing" (default 2 s). */
  panelInstallDelayMs?: number;
  /** Start the Stripe sandbox without the catalogue's products and prices (for setup tests). */
  emptyStripeCatalogue?: boolean;
  /** Serve the reference storefront too (`storefront/`), as the functions' SITE_URL. */
  storefront?: boolean;
  /** Extra variables for the functions (e.g. ALERT_WEBHOOK_URL). */
  env?: Env;
  log?: Logger;
  /** Where the functions' log lines go (default: stdout). */
  functionLog?: (line: string) => void;
}

/** A running stack. */
export interface Stack {
  keyMode: KeyMode;
  /** The variables the functions see (also written to `.env.local` by `npm start`). */
  env: Env;
  keys: LocalKeys;
  databaseUrl: string;
  gateway: Gateway;
  stripe: StripeSandbox;
  panel: PanelSandbox;
  /** The reference storefront, when asked for. */
  storefront: Storefront | null;
  /** Migration versions this start applied. */
  applied: string[];
  /** Waits for background work: function `waitUntil` tasks and webhook deliveries. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Starts everything; on failure, stops what had started. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const log = options.log ?? createLogger({ component: "stack" });
  const stateDir = options.stateDir ??
    new URL("../.local", import.meta.url).pathname;
  const ports = { ...DEFAULT_PORTS, ...options.ports };
  const keyMode = options.keyMode ?? "both";
  // Sandboxes keep state across restarts unless this is a throwaway test stack.
  const persistent = options.stateDir !== undefined || !options.ephemeralKeys;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
    stops.length = 0;
  };
  try {
    await Deno.mkdir(stateDir, { recursive: true });
    const keysPath = `${stateDir}/keys.json`;
    let keys = options.ephemeralKeys
      ? await generateLocalKeys()
      : await loadOrCreateKeys(keysPath);

    let databaseUrl = options.databaseUrl;
    if (!databaseUrl) {
      const pg: PostgresServer = await startPostgres({
        dataDir: `${stateDir}/postgres`,
        port: ports.db,
        log: (line) => log.debug(line, { component: "postgres" }),
      });
      stops.push(() => pg.stop());
      databaseUrl = pg.url;
    }
    const applied = await prepareDatabase(databaseUrl);

    const catalogue = await loadCatalogue();
    const stripe = await startStripeSandbox({
      catalogue: options.emptyStripeCatalogue ? undefined : catalogue,
      secretKey: keys.stripeSecretKey,
      port: ports.stripe,
      retryDelaysMs: options.stripeRetryDelaysMs,
      // Kept beside the database so both survive a restart; throwaway test stacks keep nothing.
      stateFile: persistent ? `${stateDir}/stripe-state.json` : undefined,
    });
    stops.push(() => stripe.close());
    // Registered like an operator would, before the function gets its secret. A
    // fixed gateway port gives the final URL now; a free one is known once the
    // gateway listens, and the endpoint is pointed there then (nothing is sent
    // meanwhile: no event happens before the stack is up).
    const stripeApi = new Stripe(keys.stripeSecretKey, {
      host: "127.0.0.1",
      port: stripe.port,
      protocol: "http",
      httpClient: Stripe.createFetchHttpClient(),
    });
    const webhookUrl = (base: string) => `${base}/functions/v1/stripe-webhook`;
    const endpoint = await registerWebhookEndpoint(stripeApi, {
      url: webhookUrl(`http://127.0.0.1:${ports.gateway}`),
      known: keys.stripeWebhookEndpointId === undefined ? undefined : {
        id: keys.stripeWebhookEndpointId,
        secret: keys.stripeWebhookSecret,
      },
    });
    if (endpoint.id !== keys.stripeWebhookEndpointId) {
      keys = {
        ...keys,
        stripeWebhookSecret: endpoint.secret,
        stripeWebhookEndpointId: endpoint.id,
      };
      if (!options.ephemeralKeys) await saveKeys(keysPath, keys);
    }

    const panel = await startPanelSandbox({
      seed: await loadPanelSeed(),
      applicationKey: keys.panelApiKey,
      clientKey: keys.panelClientKey,
      port: ports.panel,
      installDelayMs: options.panelInstallDelayMs,
      stateFile: persistent ? `${stateDir}/panel-state.json` : undefined,
    });
    stops.push(() => panel.close());

    const dbUrl = databaseUrl;
    const apiKeys = apiKeyEnv(keys, keyMode);
    const rest = await startRestApi({
      databaseUrl: dbUrl,
      publicJwk: keys.publicJwk,
      keys: {
        publishableKeys: apiKeys.SUPABASE_PUBLISHABLE_KEYS
          ? [keys.publishableKey]
          : [],
        secretKeys: apiKeys.SUPABASE_SECRET_KEYS ? [keys.secretKey] : [],
        anonKey: apiKeys.SUPABASE_ANON_KEY,
        serviceRoleKey: apiKeys.SUPABASE_SERVICE_ROLE_KEY,
      },
    });
    stops.push(() => rest.close());
    const storefront = options.storefront
      ? await startStorefront({
        port: ports.storefront,
        local: { databaseUrl: dbUrl, keys },
      })
      : null;
    if (storefront) stops.push(() => storefront.close());
    let env: Env = {};
    const gateway = await startGateway({
      port: ports.gateway,
      publicJwk: keys.publicJwk,
      log,
      functionLog: options.functionLog,
      rest,
      env: (url) => {
        env = {
          SUPABASE_URL: url,
          SUPABASE_DB_URL: dbUrl,
          ...apiKeys,
          SUPABASE_JWKS: JSON.stringify({ keys: [keys.publicJwk] }),
          STRIPE_SECRET_KEY: keys.stripeSecretKey,
          STRIPE_WEBHOOK_SECRET: keys.stripeWebhookSecret,
          STRIPE_API_BASE: stripe.url,
          SITE_URL: storefront?.url ??
            `http://127.0.0.1:${DEFAULT_PORTS.storefront}`,
          PTERODACTYL_URL: panel.url,
          PTERODACTYL_API_KEY: keys.panelApiKey,
          PTERODACTYL_CLIENT_API_KEY: keys.panelClientKey,
          ...options.env,
        };
        return env;
      },
    });
    stops.push(() => gateway.close());
    storefront?.connect({
      supabaseUrl: gateway.url,
      // The key a browser holds: publishable, or anon on a legacy-only project.
      publishableKey: apiKeys.SUPABASE_PUBLISHABLE_KEYS
        ? keys.publishableKey
        : keys.anonKey,
    });
    if (gateway.port !== ports.gateway) {
      await stripeApi.webhookEndpoints.update(endpoint.id, {
        url: webhookUrl(gateway.url),
      });
    }

    return {
      keyMode,
      env,
      keys,
      databaseUrl: dbUrl,
      gateway,
      stripe,
      panel,
      storefront,
      applied,
      async idle() {
        await stripe.idle();
        await gateway.idle();
      },
      close: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** The `.env.local` text for a running stack. */
export function dotenv(env: Env): string {
  const lines = Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) =>
      `${key}=${/^[\w.:/@-]*$/.test(value) ? value : `'${value}'`}`
    );
  return `# Written by \`npm start\` (local/stack.ts). Local values only; see .env.example.\n${
    lines.join("\n")
  }\n`;
}

/**
 * Calls sync-server-status as the schedule does (a secret key in `apikey`); with no
 * `order_id` in `body` that is one sweep. Answers its status and JSON body.
 */
export async function callSweep(
  stack: Pick<Stack, "gateway" | "keys">,
  body: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(
    `${stack.gateway.url}/functions/v1/sync-server-status`,
    {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        apikey: stack.keys.secretKey,
      },
      body: JSON.stringify(body),
    },
  );
  return { status: res.status, body: await res.json() };
}

/**
 * What pg_cron does on hosted Supabase: call the sweep through the gateway with a
 * secret key, every `intervalMs`, never two at once.
 */
function startSweepTimer(
  stack: Stack,
  intervalMs: number,
  log: Logger,
): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  const run = async () => {
    try {
      const { status, body } = await callSweep(stack);
      if (status !== 200) log.error("Sweep failed", { status, body });
      else if (Object.keys(body.outcomes ?? {}).length > 0) {
        log.info("Sweep", body);
      }
    } catch (error) {
      log.error("Sweep could not run", { error });
    }
  };
  const tick = () => {
    if (running) return;
    running = run().finally(() => running = null);
  };
  // One sweep at start too: after a restart, work left by the last run (and the
  // doctor's "sweep ran recently" check) does not wait a whole interval.
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const verbose = Deno.env.get("LOG_LEVEL") === "debug";
  const log = createLogger({ component: "stack" }, {
    write: (line) => {
      if (verbose || !line.includes('"level":"debug"')) console.log(line);
    },
  });
  // Short grace and retention here let a person watch a server's whole life.
  const lifecycleNames = Object.keys(lifecycleEnv.shape);
  const lifecycle = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) =>
      lifecycleNames.includes(name)
    ),
  );
  const { SWEEP_INTERVAL_SECONDS } = parseEnv(lifecycleEnv, lifecycle);
  const stack = await startStack({
    keyMode: keyModeFromEnv(Deno.env.get("SUPABASE_KEYS")),
    databaseUrl: Deno.env.get("DATABASE_URL"),
    log,
    env: lifecycle,
    storefront: true,
  });
  const sweeps = startSweepTimer(stack, SWEEP_INTERVAL_SECONDS * 1000, log);
  const root = new URL("../", import.meta.url).pathname;
  await Deno.writeTextFile(`${root}.env.local`, dotenv(stack.env), {
    mode: 0o600,
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nStopping…");
    await sweeps.stop();
    await stack.close();
    console.log("Stopped.");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`
Game-server shop backend is running (ready in ${seconds} s)

  Storefront  ${stack.storefront?.url}  (sign in with any email: local tokens)
  Functions   ${stack.gateway.url}/functions/v1/<name>
  Data API    ${stack.gateway.url}/rest/v1/<table>  (reads, with RLS)
  Health      ${stack.gateway.url}/health
  Database    ${stack.databaseUrl.replace(/:[^:@/]+@/, ":***@")}
  Stripe      ${stack.stripe.url}  (sandbox; control calls under /_sandbox)
  Panel       ${stack.panel.url}  (Pterodactyl sandbox; state at /_sandbox/state)
  Migrations  ${stack.applied.length} applied now
  API keys    ${
    {
      new: "new only (SUPABASE_PUBLISHABLE_KEYS, SUPABASE_SECRET_KEYS)",
      legacy: "legacy only (SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY)",
      both: "new and legacy",
    }[stack.keyMode]
  }; SUPABASE_KEYS=new|legacy|both picks
  Env         .env.local (SUPABASE_URL, keys, STRIPE_*, ...)

  Sweep       sync-server-status every ${SWEEP_INTERVAL_SECONDS} s (SWEEP_INTERVAL_SECONDS)
  Token       npm run token -- alice@example.com
  Stop        Ctrl-C
`);
}

if (import.meta.main) {
  await main();
}
