/**
 * The doctor's report: the JSON the function answers and `--json` prints, the terminal
 * text (✓ / ✗ / ! per link, colour only on a terminal without NO_COLOR), and the exit
 * status of `npm run doctor`.
 *
 * @module
 */
import {
  type Cause,
  type Check,
  type Diagnosis,
  NEEDS_NO_ONE,
} from "./causes.ts";

/** One order in the report. */
export interface OrderReport {
  order_id: string;
  status: string;
  cause: Cause;
  checks: Check[];
}

/** The report of one query. */
export interface DoctorReport {
  query: string;
  orders: OrderReport[];
}

/** What a run found, with what the report does not show (bad input, sides unreached). */
export interface DoctorResult {
  report: DoctorReport;
  /** Set when the query is none of the ids the doctor knows. */
  badInput?: string;
  /** Sides that could not be read for some order. */
  unreachable: string[];
  /** Customer email per order, for the one-line list. */
  emails: Record<string, string | null>;
}

/** One order's entry in the report. */
export function orderReport(
  order: { id: string; status: string },
  diagnosis: Diagnosis,
): OrderReport {
  return {
    order_id: order.id,
    status: order.status,
    cause: diagnosis.cause,
    checks: diagnosis.checks,
  };
}

/**
 * `npm run doctor`'s exit status: 2 for bad input, nothing found or a side it could not
 * reach; 1 when an order needs someone; 0 when every order is healthy or on its way.
 */
export function exitStatus(result: DoctorResult): 0 | 1 | 2 {
  if (result.badInput || result.report.orders.length === 0) return 2;
  if (result.unreachable.length > 0) return 2;
  return result.report.orders.every((o) => NEEDS_NO_ONE.has(o.cause.code))
    ? 0
    : 1;
}

/** Whether to colour: a terminal, and no NO_COLOR. */
export interface TextOptions {
  color: boolean;
}

const CODES = { green: 32, red: 31, yellow: 33, bold: 1, dim: 2 } as const;

function paint(options: TextOptions) {
  return (name: keyof typeof CODES, text: string) =>
    options.color ? `\x1b[${CODES[name]}m${text}\x1b[0m` : text;
}

function mark(ok: boolean | null): "✓" | "✗" | "!" {
  return ok === true ? "✓" : ok === false ? "✗" : "!";
}

function orderText(order: OrderReport, options: TextOptions): string[] {
  const c = paint(options);
  const healthy = NEEDS_NO_ONE.has(order.cause.code);
  const width = Math.max(...order.checks.map((check) => check.id.length));
  return [
    c("bold", `order ${order.order_id} (${order.status})`),
    ...order.checks.map((check) => {
      const symbol = mark(check.ok);
      const colour = check.ok === true
        ? "green"
        : check.ok === false
        ? "red"
        : "yellow";
      return `  ${c(colour, symbol)} ${
        check.id.padEnd(width)
      }  ${check.detail}`;
    }),
    `  ${c("bold", "cause:")} ${
      c(healthy ? "green" : "red", order.cause.code)
    }: ${order.cause.message}`,
    `  ${c("bold", "fix:")}   ${order.cause.fix}`,
  ];
}

/** The terminal report. */
export function renderText(
  result: DoctorResult,
  options: TextOptions,
): string {
  const { report } = result;
  if (result.badInput) return result.badInput;
  if (report.orders.length === 0) {
    return `No order found for "${report.query}"`;
  }
  const lines: string[] = [];
  let detailed = report.orders;
  if (report.orders.length > 1) {
    lines.push(`${report.orders.length} orders for "${report.query}":`);
    for (const order of report.orders) {
      lines.push(
        `  ${order.order_id}  ${order.status.padEnd(12)} ${order.cause.code}${
          result.emails[order.order_id]
            ? `  ${result.emails[order.order_id]}`
            : ""
        }`,
      );
    }
    detailed = report.orders.filter((o) => !NEEDS_NO_ONE.has(o.cause.code));
    if (detailed.length) lines.push("");
  }
  detailed.forEach((order, i) => {
    if (i > 0) lines.push("");
    lines.push(...orderText(order, options));
  });
  return lines.join("\n");
}

/** The JSON report: `{query, orders: [{order_id, status, cause, checks}]}`. */
export function renderJson(result: DoctorResult): string {
  return JSON.stringify(result.report, null, 2);
}
