/**
 * Direct Postgres access from a function, as Supabase recommends:
 * `postgres(SUPABASE_DB_URL, { prepare: false })`, which also works through the
 * transaction pooler. Only transaction-scoped features are used (set_config(…, true),
 * row locks, pg_advisory_xact_lock).
 *
 * @module
 */
import postgres from "postgres";

/** The SQL client type. */
export type Sql = postgres.Sql;
/** A transaction's SQL client. */
export type Tx = postgres.TransactionSql;

/** Connects to the database named by `url`. */
export function connect(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    prepare: false,
    max: options.max ?? 5,
    idle_timeout: 20,
    connect_timeout: 10,
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
