/**
 * What the shop sells, read from the database only: a plan's price for a term, and
 * whether a region can take the plan now.
 *
 * @module
 */
import type { Sql, Tx } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import type { OrderLimits } from "./orders.ts";
import type { NodeRoom } from "./placement.ts";
import type { Term } from "../contract.ts";

export { type Term, TERMS } from "../contract.ts";

/** A plan at a price in a region: everything an order is made from. */
export interface Offer {
  planId: string;
  displayName: string;
  term: Term;
  region: string;
  stripePriceId: string;
  amountCents: number;
  currency: string;
  memoryMb: number;
  diskMb: number;
  /** Every limit the order will be entitled to. */
  limits: OrderLimits;
}

/**
 * Resolves an offer, refusing what cannot be sold: unknown or inactive plan (404),
 * term not offered (422), unknown region (422), no capacity left in the region (409).
 */
export async function resolveOffer(
  sql: Sql,
  request: { planId: string; term: Term; region: string },
): Promise<Offer> {
  const [plan] = await sql<(OrderLimits & {
    display_name: string;
    active: boolean;
    stripe_price_id: string | null;
    amount_cents: number | null;
    currency: string | null;
  })[]>`
    select p.display_name, p.active, p.memory_mb, p.disk_mb, p.cpu_percent, p.swap_mb,
      p.io_weight, p.databases, p.backups, p.allocations, pp.stripe_price_id, pp.amount_cents, pp.currency
    from public.plans p
    left join public.plan_prices pp
      on pp.plan_id = p.id and pp.term = ${request.term} and pp.active
    where p.id = ${request.planId}`;
  if (!plan) {
    throw new DomainError(
      "not_found",
      "plan_not_found",
      `Plan "${request.planId}" does not exist`,
    );
  }
  if (!plan.active) {
    throw new DomainError(
      "not_found",
      "plan_inactive",
      `Plan "${request.planId}" is no longer sold`,
    );
  }
  if (!plan.stripe_price_id || plan.amount_cents === null || !plan.currency) {
    const offered = await sql<{ term: string }[]>`
      select term::text from public.plan_prices
      where plan_id = ${request.planId} and active order by term`;
    throw new DomainError(
      "invalid",
      "term_not_offered",
      `Plan "${request.planId}" is not sold with term "${request.term}"`,
      { details: { offered_terms: offered.map((row) => row.term) } },
    );
  }
  const [region] = await sql<{ available: boolean }[]>`
    select exists (
      select 1 from public.node_capacity c
      where c.region = r.id
        and c.free_memory_mb >= ${plan.memory_mb} and c.free_disk_mb >= ${plan.disk_mb}
    ) as available
    from public.regions r
    where r.id = ${request.region} and r.active`;
  if (!region) {
    const regions = await sql<{ id: string }[]>`
      select id from public.regions where active order by id`;
    throw new DomainError(
      "invalid",
      "region_unknown",
      `Region "${request.region}" does not exist`,
      {
        details: { regions: regions.map((row) => row.id) },
      },
    );
  }
  if (!region.available) {
    throw new DomainError(
      "conflict",
      "region_sold_out",
      `Region "${request.region}" has no capacity left for plan "${request.planId}"`,
    );
  }
  return {
    planId: request.planId,
    displayName: plan.display_name,
    term: request.term,
    region: request.region,
    stripePriceId: plan.stripe_price_id,
    amountCents: plan.amount_cents,
    currency: plan.currency,
    memoryMb: plan.memory_mb,
    diskMb: plan.disk_mb,
    limits: {
      memory_mb: plan.memory_mb,
      disk_mb: plan.disk_mb,
      cpu_percent: plan.cpu_percent,
      swap_mb: plan.swap_mb,
      io_weight: plan.io_weight,
      databases: plan.databases,
      backups: plan.backups,
      allocations: plan.allocations,
    },
  };
}

/**
 * Locks the enabled nodes of a region and answers the room left on each. Every booking
 * (a checkout reserving room, provisioning placing a server) holds these row locks, so
 * concurrent bookings in one region wait here and then see each other in node_capacity.
 */
export async function lockRegionRooms(
  tx: Tx,
  region: string,
): Promise<NodeRoom[]> {
  await tx`select id from public.ptero_nodes where region = ${region} and enabled
    order by id for update`;
  return await tx<NodeRoom[]>`
    select n.id::int as id, n.panel_node_id, n.name, n.region, c.free_memory_mb,
      c.free_disk_mb
    from public.node_capacity c join public.ptero_nodes n on n.id = c.node_id
    where c.region = ${region}`;
}
