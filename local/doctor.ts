/**
 * `npm run doctor -- <order id | email | cs_… | sub_… | panel server id or identifier>
 * [--json]`: explains an order from the operator's terminal. Reads the environment
 * (production: the operator's env) or, when it has no database URL, `.env.local` as
 * `npm start` wrote it; runs the same read-only code as the `order-doctor` function.
 * Exit 0: every order found is healthy or on its way; 1: one needs action; 2: bad input,
 * nothing found, or a side it could not reach.
 *
 * `npm run doctor -- --config [--json]` checks the configuration instead, read-only (one
 * line per check, ✓ / ✗ / !): exit 0 when every check passes, 1 when one fails, 2 when
 * it cannot run (no database URL, or the database cannot be read).
 *
 * @module
 */
import { z } from "zod";
import {
  databaseUrl,
  type Env,
  panelEnv,
  parseEnv,
  stripeEnv,
  supabaseEnv,
} from "../supabase/functions/_shared/platform/config.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import {
  doctorClients,
  exitStatus,
  QUERY_HELP,
  renderJson,
  renderText,
  runDoctor,
} from "../supabase/functions/_shared/doctor/mod.ts";
import { readDotenv } from "./token.ts";
import {
  configChecks,
  configExitStatus,
  renderConfigJson,
  renderConfigText,
} from "../setup/config_checks.ts";
import { gatherConfigFacts } from "../setup/config_facts.ts";

const USAGE = `Usage: npm run doctor -- <query> [--json]
       npm run doctor -- --config [--json]
  <query>: ${QUERY_HELP}
  --config: checks the shop's configuration (env, Stripe, the panel, the database)`;

/** What the doctor needs: the database, and Stripe and the panel when configured. */
const doctorEnv = supabaseEnv.and(stripeEnv.partial()).and(panelEnv);

/** The environment: the process's own when it names a database, else `.env.local`'s. */
export async function doctorEnvironment(own: Env): Promise<Env> {
  if (own.SUPABASE_DB_URL || own.DB_POOLER_URL) return own;
  const root = new URL("../", import.meta.url).pathname;
  try {
    return {
      ...readDotenv(await Deno.readTextFile(`${root}.env.local`)),
      ...own,
    };
  } catch {
    return own;
  }
}

/**
 * Runs `work` over a short-lived connection to `url`; a database it cannot read is exit
 * status 2, as a side the doctor could not reach.
 */
async function withDatabase(
  url: string,
  work: (sql: ReturnType<typeof connect>) => Promise<number>,
): Promise<number> {
  const sql = connect(url, { max: 2, applicationName: "doctor" });
  try {
    return await work(sql);
  } catch (error) {
    console.error(
      `The database could not be read: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
    return 2;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Whether to colour: a terminal, and NO_COLOR unset. */
function colour(): boolean {
  return Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
}

/** `--config`: the configuration checks. */
async function configMain(asJson: boolean): Promise<number> {
  const env = await doctorEnvironment(Deno.env.toObject());
  const url = env.DB_POOLER_URL || env.SUPABASE_DB_URL;
  if (!url) {
    console.error(
      "SUPABASE_DB_URL (or DB_POOLER_URL) is not set: set the production variables, or run `npm start` for a local .env.local",
    );
    return 2;
  }
  return await withDatabase(url, async (sql) => {
    const checks = configChecks(await gatherConfigFacts({ env, sql }));
    console.log(
      asJson
        ? renderConfigJson(checks)
        : renderConfigText(checks, { color: colour() }),
    );
    return configExitStatus(checks);
  });
}

async function main(args: string[]): Promise<number> {
  const asJson = args.includes("--json");
  const rest = args.filter((a) => a !== "--json");
  if (rest.length === 1 && rest[0] === "--config") return configMain(asJson);
  if (rest.length !== 1 || rest[0].startsWith("-")) {
    console.error(USAGE);
    return 2;
  }
  let config: z.infer<typeof doctorEnv>;
  try {
    config = parseEnv(doctorEnv, await doctorEnvironment(Deno.env.toObject()));
  } catch (error) {
    console.error(
      `${
        error instanceof Error ? error.message : String(error)
      }\nSet the production variables, or run \`npm start\` for a local .env.local`,
    );
    return 2;
  }
  return await withDatabase(databaseUrl(config), async (sql) => {
    const result = await runDoctor({
      sql,
      ...doctorClients(config),
      supabaseUrl: config.SUPABASE_URL,
    }, rest[0]);
    if (asJson && !result.badInput) console.log(renderJson(result));
    else if (result.badInput) console.error(`${result.badInput}\n${USAGE}`);
    else console.log(renderText(result, { color: colour() }));
    return exitStatus(result);
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
