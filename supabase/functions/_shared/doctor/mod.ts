/**
 * The order doctor: finds the orders a query names, gathers what each side says
 * (read-only), and names one cause per order. The `order-doctor` function and
 * `npm run doctor` both run this.
 *
 * @module
 */
import { panelFromConfig } from "../panel/client.ts";
import { createStripe } from "../stripe/client.ts";
import { diagnose } from "./causes.ts";
import {
  DOCTOR_TIMEOUT_MS,
  findOrders,
  type GatherDeps,
  gatherOrder,
  gatherShop,
  queryKind,
} from "./facts.ts";
import { type DoctorResult, orderReport } from "./render.ts";

export { type GatherDeps } from "./facts.ts";
export {
  type DoctorReport,
  type DoctorResult,
  exitStatus,
  renderJson,
  renderText,
} from "./render.ts";

/** What the doctor accepts, for messages. */
export const QUERY_HELP =
  "an order id, a customer email, a checkout session id (cs_…), a subscription id (sub_…), or a panel server id or identifier";

/** Runs the doctor on one query. */
export async function runDoctor(
  deps: GatherDeps,
  query: string,
): Promise<DoctorResult> {
  const q = query.trim();
  const empty = {
    report: { query: q, orders: [] },
    unreachable: [],
    emails: {},
  };
  if (queryKind(q) === null) {
    return { ...empty, badInput: `"${q}" is not ${QUERY_HELP}` };
  }
  const orders = await findOrders(deps.sql, q);
  if (orders.length === 0) return empty;
  const shop = await gatherShop(deps);
  const result: DoctorResult = { ...empty, report: { query: q, orders: [] } };
  const unreachable = new Set<string>();
  // A few at a time: an email with many orders stays within the panel's rate limit.
  for (let i = 0; i < orders.length; i += 4) {
    const batch = orders.slice(i, i + 4);
    const facts = await Promise.all(
      batch.map((order) => gatherOrder(deps, order, shop)),
    );
    for (const f of facts) {
      const diagnosis = diagnose(f);
      diagnosis.unreachable.forEach((side) => unreachable.add(side));
      result.report.orders.push(orderReport(f.order, diagnosis));
      result.emails[f.order.id] = f.order.email;
    }
  }
  result.unreachable = [...unreachable];
  return result;
}

/**
 * The doctor's clients from configuration: Stripe and the panel with a short timeout
 * and no retry (a diagnosis answers in seconds, or says which side did not answer).
 */
export function doctorClients(
  config: {
    STRIPE_SECRET_KEY?: string;
    STRIPE_API_BASE?: string;
    PTERODACTYL_URL?: string;
    PTERODACTYL_API_KEY?: string;
  },
): Pick<GatherDeps, "stripe" | "panel"> {
  return {
    stripe: config.STRIPE_SECRET_KEY
      ? createStripe(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE, {
        timeoutMs: DOCTOR_TIMEOUT_MS,
        retries: 0,
      })
      : null,
    panel: panelFromConfig(config, {
      timeoutMs: DOCTOR_TIMEOUT_MS,
      attempts: 1,
    }),
  };
}
