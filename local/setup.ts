/**
 * `npm run setup [--dry-run] [--yes] [--catalogue <file>]`: makes Stripe, the database and
 * the webhook endpoint match `catalogue.json` (see `setup/setup.ts`). The target is the
 * environment when it has STRIPE_SECRET_KEY (production: export the project's
 * secrets and SUPABASE_DB_URL), else `.env.local` (the stack `npm start` runs).
 * Exit 0 done, 1 a named failure, 2 cannot run.
 *
 * @module
 */
import { loadCatalogue } from "../setup/catalogue.ts";
import { runSetup } from "../setup/setup.ts";

/** Parses `KEY=value` lines (quotes as `npm start` writes them). */
export function parseDotenv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (!m) continue;
    let value = m[2].trim();
    if (/^'.*'$|^".*"$/.test(value)) value = value.slice(1, -1);
    env[m[1]] = value;
  }
  return env;
}

async function main(args: string[]): Promise<number> {
  const known = new Set(["--dry-run", "--yes", "--catalogue"]);
  const unknown = args.filter((a, i) =>
    a.startsWith("--") && !known.has(a) && args[i - 1] !== "--catalogue"
  );
  if (unknown.length > 0) {
    console.error(`Unknown option: ${unknown.join(", ")}`);
    return 2;
  }
  const at = args.indexOf("--catalogue");
  const path = at >= 0 ? args[at + 1] : undefined;
  let env: Record<string, string | undefined> = Deno.env.toObject();
  let source = "the environment";
  if (!env.STRIPE_SECRET_KEY) {
    const file = new URL("../.env.local", import.meta.url);
    try {
      env = parseDotenv(await Deno.readTextFile(file));
      source = ".env.local";
    } catch {
      console.error(
        "No STRIPE_SECRET_KEY in the environment and no .env.local: run `npm start`, or export the target's secrets",
      );
      return 2;
    }
  }
  let catalogue;
  try {
    catalogue = await loadCatalogue(path);
  } catch (error) {
    console.error(`✗ ${(error as Error).message}`);
    return 2;
  }
  console.log(`Target from ${source}; catalogue ${path ?? "catalogue.json"}`);
  const result = await runSetup({
    catalogue,
    env,
    dryRun: args.includes("--dry-run"),
    yes: args.includes("--yes"),
    confirm: (question) => confirm(question),
  });
  return result.exitCode;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
