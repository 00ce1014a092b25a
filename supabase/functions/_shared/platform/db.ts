/**
 * Direct Postgres access from a function, as Supabase recommends:
 * `postgres(SUPABASE_DB_URL, { prepare: false })`, or the transaction pooler's URL
 * (DB_POOLER_URL, port 6543) when configured. Only transaction-scoped features are
 * used (set_config(…, true), row locks, pg_advisory_xact_lock): no session SET, no
 * LISTEN, no session advisory locks, no prepared statements, so any pooled server
 * connection can serve each transaction.
 *
 * @module
 */
import postgres from "postgres";

/** The SQL client type. */
export type Sql = postgres.Sql;
/** A transaction's SQL client. */
export type Tx = postgres.TransactionSql;

/**
 * Connections one function instance opens at most. A burst beyond that waits for a
 * free connection instead of opening more; idle ones close after 20 s.
 */
export const POOL_MAX = 5;

/**
 * Connects to the database named by `url`; `applicationName` names the connections in
 * pg_stat_activity (the function's name).
 */
export function connect(
  url: string,
  options: { max?: number; applicationName?: string } = {},
): Sql {
  return postgres(url, {
    prepare: false,
    max: options.max ?? POOL_MAX,
    idle_timeout: 20,
    connect_timeout: 10,
    connection: { application_name: options.applicationName ?? "gameshop" },
    onnotice: () => {},
    transform: { undefined: null },
  });
}

/** Whether an error is Postgres saying the database is unreachable or overloaded. */
export function isTransientDbError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" &&
    ([
      "ECONNREFUSED",
      "ECONNRESET",
      "ETIMEDOUT",
      "CONNECT_TIMEOUT",
      "CONNECTION_CLOSED",
    ]
      .includes(code) ||
      code.startsWith("08") || code === "57P01" || code === "53300" ||
      code === "40001" || code === "40P01");
}
