/**
 * `npm run doctor -- <order id | email | cs_… | sub_… | panel server id or identifier>
 * [--json]`: explains an order from the operator's terminal. Reads the environment
 * (production: the operator's env) or, when it has no database URL, `.env.local` as
 * `npm start` wrote it; runs the same read-only code as the `order-doctor` function.
 * Exit 0: every order found is healthy or on its way; 1: one needs action; 2: bad input,
 * nothing found, or a side it could not reach.
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

const USAGE = `Usage: npm run doctor -- <query> [--json]
  <query>: ${QUERY_HELP}`;

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

async function main(args: string[]): Promise<number> {
  const asJson = args.includes("--json");
  const rest = args.filter((a) => a !== "--json");
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
  const sql = connect(databaseUrl(config), {
    max: 2,
    applicationName: "doctor",
  });
  try {
    const result = await runDoctor({
      sql,
      ...doctorClients(config),
      supabaseUrl: config.SUPABASE_URL,
    }, rest[0]);
    const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
    if (asJson && !result.badInput) console.log(renderJson(result));
    else if (result.badInput) console.error(`${result.badInput}\n${USAGE}`);
    else console.log(renderText(result, { color }));
    return exitStatus(result);
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

if (import.meta.main) Deno.exit(await main(Deno.args));
