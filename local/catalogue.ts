/**
 * The one catalogue the local platform is built from: `supabase/seed.sql`, the Stripe
 * sandbox's products and prices, and the panel sandbox's locations, nodes,
 * allocations, nests and eggs are all generated from `catalogue.json`.
 *
 * @module
 */
import { z } from "zod";

const EggVariable = z.object({
  name: z.string(),
  env_variable: z.string(),
  default_value: z.string(),
  rules: z.string(),
});

const Egg = z.object({
  id: z.number().int(),
  name: z.string(),
  docker_image: z.string(),
  startup: z.string(),
  variables: z.array(EggVariable),
});

const Term = z.enum(["monthly", "quarterly", "yearly"]);

const Plan = z.object({
  id: z.string().regex(/^[a-z0-9-]+$/),
  game: z.string(),
  display_name: z.string(),
  memory_mb: z.number().int().positive(),
  disk_mb: z.number().int().positive(),
  cpu_percent: z.number().int().nonnegative(),
  swap_mb: z.number().int(),
  io_weight: z.number().int(),
  databases: z.number().int().nonnegative(),
  backups: z.number().int().nonnegative(),
  allocations: z.number().int().positive(),
  nest_id: z.number().int(),
  egg_id: z.number().int(),
  docker_image: z.string().nullable(),
  startup: z.string().nullable(),
  environment: z.record(z.string(), z.string()),
  active: z.boolean(),
  prices: z.partialRecord(Term, z.number().int().positive()),
});

const CatalogueSchema = z.object({
  currency: z.string().length(3),
  locations: z.array(
    z.object({ id: z.number().int(), short: z.string(), long: z.string() }),
  ),
  regions: z.array(
    z.object({
      id: z.string(),
      display_name: z.string(),
      panel_location_id: z.number().int(),
    }),
  ),
  nodes: z.array(z.object({
    id: z.number().int(),
    name: z.string(),
    location_id: z.number().int(),
    fqdn: z.string(),
    memory_mb: z.number().int().positive(),
    memory_overallocate: z.number().int(),
    disk_mb: z.number().int().positive(),
    disk_overallocate: z.number().int(),
    public: z.boolean(),
    allocations: z.object({
      ip: z.string(),
      port_start: z.number().int(),
      count: z.number().int().positive(),
    }),
  })),
  nests: z.array(
    z.object({ id: z.number().int(), name: z.string(), eggs: z.array(Egg) }),
  ),
  plans: z.array(Plan),
  terms: z.record(
    Term,
    z.object({
      interval: z.enum(["day", "week", "month", "year"]),
      interval_count: z.number().int().positive(),
    }),
  ),
});

/** The parsed catalogue. */
export type Catalogue = z.infer<typeof CatalogueSchema>;
/** One plan of the catalogue. */
export type CataloguePlan = z.infer<typeof Plan>;
/** One egg of the catalogue. */
export type CatalogueEgg = z.infer<typeof Egg>;
/** A billing term. */
export type Term = z.infer<typeof Term>;

/** Reads and validates `local/catalogue.json`. */
export async function loadCatalogue(): Promise<Catalogue> {
  const url = new URL("./catalogue.json", import.meta.url);
  return CatalogueSchema.parse(JSON.parse(await Deno.readTextFile(url)));
}

/** The Stripe product id of a plan, e.g. `prod_mc_java_4gb`. */
export function productId(planId: string): string {
  return `prod_${planId.replaceAll("-", "_")}`;
}

/** The Stripe price id of a plan's term, e.g. `price_mc_java_4gb_monthly`. */
export function priceId(planId: string, term: Term): string {
  return `price_${planId.replaceAll("-", "_")}_${term}`;
}

/** Every (plan, term, amount) the catalogue sells, in a stable order. */
export function catalogPrices(
  catalogue: Catalogue,
): { plan: CataloguePlan; term: Term; amount: number; priceId: string }[] {
  return catalogue.plans.flatMap((plan) =>
    Term.options.flatMap((term) => {
      const amount = plan.prices[term];
      return amount === undefined
        ? []
        : [{ plan, term, amount, priceId: priceId(plan.id, term) }];
    })
  );
}
