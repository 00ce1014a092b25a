/**
 * Structured logging: one JSON object a line, with correlation fields (`fn`,
 * `order_id`, `event_id`, `request_id`) carried by child loggers. Values under keys that
 * look secret are redacted, and so is any known secret value wherever it appears.
 *
 * @module
 */

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger adding `fields` to every line. */
  child(fields: LogFields): Logger;
}

/** A log level. */
export type Level = "debug" | "info" | "warn" | "error";

const SECRET_KEY =
  /(secret|password|token|authorization|api_?key|apikey|signature)/i;

function redact(value: unknown, secrets: string[], depth = 0): unknown {
  if (typeof value === "string") {
    return secrets.reduce(
      (text, secret) => text.replaceAll(secret, "[redacted]"),
      value,
    );
  }
  // A Date has no own fields: written as its ISO string, as JSON.stringify would.
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? null : value.toISOString();
  }
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redact(value.message, secrets, depth + 1),
    };
  }
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    return value.map((item) => redact(item, secrets, depth + 1));
  }
  return Object.fromEntries(
    Object.entries(value).map((
      [key, item],
    ) => [
      key,
      SECRET_KEY.test(key) ? "[redacted]" : redact(item, secrets, depth + 1),
    ]),
  );
}

/** Where a line of each level goes by default. */
export type LevelWriter = (line: string, level: Level) => void;

/**
 * The platform's writer: the Supabase log explorer takes a line's level from the
 * console method, so errors go to console.error and warnings to console.warn.
 */
export const consoleWriter: LevelWriter = (line, level) => {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
};

/**
 * Creates a logger writing JSON lines to `write` (default: the console method of the
 * line's level). `secrets` are values that must never be printed, whatever key holds
 * them.
 */
export function createLogger(
  base: LogFields = {},
  options: { write?: LevelWriter; secrets?: string[] } = {},
): Logger {
  const write = options.write ?? consoleWriter;
  const secrets = (options.secrets ?? []).filter((secret) =>
    secret.length >= 8
  );
  const emit = (level: Level, msg: string, fields?: LogFields) => {
    const line = redact({
      level,
      msg,
      time: new Date().toISOString(),
      ...base,
      ...fields,
    }, secrets);
    write(JSON.stringify(line), level);
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, { write, secrets }),
  };
}
