/**
 * The catalogue the operator edits (`catalogue.json` at the repository root): what
 * the shop sells. Plans (game, egg, limits, feature limits, environment), the terms
 * with their prices and currency, and the regions with the panel location each maps
 * to. Panel facts (nodes, allocations, eggs' variables) are not here: `npm run setup`
 * reads them from the panel. Both setup and the local stack read this module; the
 * deployed functions never do (they read the database setup fills).
 *
 * @module
 */
import { z } from "zod";

/** A billing term the database knows (`public.billing_term`). */
export const Term = z.enum(["monthly", "quarterly", "yearly"]);
/** A billing term. */
export type Term = z.infer<typeof Term>;

const Plan = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{1,62}$/),
  game: z.string().min(1),
  display_name: z.string().min(1),
  memory_mb: z.number().int().positive(),
  disk_mb: z.number().int().positive(),
  cpu_percent: z.number().int().nonnegative(),
  swap_mb: z.number().int().min(-1),
  io_weight: z.number().int().min(10).max(1000),
  databases: z.number().int().nonnegative(),
  backups: z.number().int().nonnegative(),
  allocations: z.number().int().positive(),
  nest_id: z.number().int().positive(),
  egg_id: z.number().int().positive(),
  docker_image: z.string().nullable(),
  startup: z.string().nullable(),
  environment: z.record(z.string(), z.string()),
  active: z.boolean(),
  /** Amounts in the currency's smallest unit, per term sold. */
  prices: z.partialRecord(Term, z.number().int().positive()),
}).strict();

const Region = z.object({
  id: z.string().regex(/^[a-z0-9-]{2,32}$/),
  display_name: z.string().min(1),
  panel_location_id: z.number().int().positive(),
}).strict();

/** The schema of `catalogue.json`. */
export const CatalogueSchema = z.object({
  currency: z.string().regex(/^[a-z]{3}$/, "must be a lower-case ISO code"),
  terms: z.record(
    Term,
    z.object({
      interval: z.enum(["day", "week", "month", "year"]),
      interval_count: z.number().int().positive(),
    }).strict(),
  ),
  regions: z.array(Region).min(1),
  plans: z.array(Plan).min(1),
}).strict().superRefine((catalogue, ctx) => {
  const unique = (ids: string[], what: string) => {
    const seen = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) {
        ctx.addIssue({ code: "custom", message: `${what} "${id}" is twice` });
      }
      seen.add(id);
    }
  };
  unique(catalogue.plans.map((p) => p.id), "plan");
  unique(catalogue.regions.map((r) => r.id), "region");
});

/** The parsed catalogue. */
export type Catalogue = z.infer<typeof CatalogueSchema>;
/** One plan of the catalogue. */
export type CataloguePlan = z.infer<typeof Plan>;
/** One region of the catalogue. */
export type CatalogueRegion = z.infer<typeof Region>;

/** Where the operator's catalogue is. */
export const CATALOGUE_PATH = new URL("../catalogue.json", import.meta.url);

/** Reads and validates the catalogue (default: `catalogue.json` at the root). */
export async function loadCatalogue(
  path: string | URL = CATALOGUE_PATH,
): Promise<Catalogue> {
  const text = await Deno.readTextFile(path);
  const parsed = CatalogueSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(
      `Invalid catalogue ${String(path)}: ${
        parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`)
          .join("; ")
      }`,
    );
  }
  return parsed.data;
}

/** The Stripe product id of a plan, e.g. `prod_mc_java_4gb` (setup creates it so). */
export function productId(planId: string): string {
  return `prod_${planId.replaceAll("-", "_")}`;
}

/** The `lookup_key` setup finds a plan's price by, e.g. `mc-java-4gb_monthly`. */
export function lookupKey(planId: string, term: Term): string {
  return `${planId}_${term}`;
}

/** One price the catalogue sells. */
export interface CataloguePrice {
  plan: CataloguePlan;
  term: Term;
  amount: number;
}

/** Every (plan, term, amount) the catalogue sells, in a stable order. */
export function cataloguePrices(catalogue: Catalogue): CataloguePrice[] {
  return catalogue.plans.flatMap((plan) =>
    Term.options.flatMap((term) => {
      const amount = plan.prices[term];
      return amount === undefined ? [] : [{ plan, term, amount }];
    })
  );
}
