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

type Level = "debug" | "info" | "warn" | "error";

const SECRET_KEY =
  /(secret|password|token|authorization|api_?key|apikey|signature)/i;

function redact(value: unknown, secrets: string[], depth = 0): unknown {
  if (typeof value === "string") {
    return secrets.reduce(
      (text, secret) => text.replaceAll(secret, "[redacted]"),
      value,
    );
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

/**
 * Creates a logger writing JSON lines to `write` (default `console.log`).
 * `secrets` are values that must never be printed, whatever key holds them.
 */
export function createLogger(
  base: LogFields = {},
  options: { write?: (line: string) => void; secrets?: string[] } = {},
): Logger {
  const write = options.write ?? ((line: string) => console.log(line));
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
    write(JSON.stringify(line));
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, { write, secrets }),
  };
}
