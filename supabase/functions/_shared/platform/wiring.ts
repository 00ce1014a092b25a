/**
 * What every function does at start-up: parse its environment (failing fast), open the
 * database connection and a logger that redacts every configured secret, then build its
 * handler. Deployed `index.ts` files and the local gateway both go through here.
 *
 * @module
 */
import type { z } from "zod";
import { databaseUrl, type Env, parseEnv, type SupabaseEnv } from "./config.ts";
import { connect, type Sql } from "./db.ts";
import type { Handler } from "./http.ts";
import { createLogger, type Logger } from "./log.ts";

/** A handler wired from the environment, and how to release what it holds. */
export interface WiredFunction {
  handler: Handler;
  close(): Promise<void>;
}

/** Options of every wiring (the local gateway routes the log lines). */
export interface WiringOptions {
  write?: (line: string) => void;
}

const SECRET_NAME = /KEY|SECRET|DB_URL|POOLER_URL/;

function secretValues(config: Record<string, unknown>): string[] {
  return Object.entries(config)
    .filter(([name]) => SECRET_NAME.test(name))
    .flatMap(([, value]) => Array.isArray(value) ? value : [value])
    .filter((value): value is string => typeof value === "string");
}

/** Parses `env` with `schema`, connects, and builds the function `name`'s handler. */
export function wireFunction<S extends z.ZodType<SupabaseEnv>>(
  name: string,
  schema: S,
  env: Env,
  options: WiringOptions,
  build: (context: { config: z.infer<S>; sql: Sql; log: Logger }) => Handler,
): WiredFunction {
  const config = parseEnv(schema, env);
  const sql = connect(databaseUrl(config), { applicationName: name });
  const log = createLogger({ fn: name }, {
    write: options.write,
    secrets: secretValues(config as Record<string, unknown>),
  });
  return {
    handler: build({ config, sql, log }),
    close: () => sql.end({ timeout: 5 }),
  };
}
