/**
 * What the local platform is built from: the operator's catalogue (`catalogue.json`
 * at the root, `setup/catalogue.ts`) for what the shop sells, and the sandbox panel's
 * own seed (`local/panel_seed.json`: locations, nodes, allocations, nests and eggs),
 * which stands in for a real panel's. `supabase/seed.sql` and the Stripe sandbox's
 * products and prices are generated from both, as `npm run setup` would make them.
 *
 * @module
 */
import { z } from "zod";
import {
  type Catalogue,
  type CataloguePlan,
  cataloguePrices,
  loadCatalogue,
  productId,
  type Term,
} from "../setup/catalogue.ts";

export { loadCatalogue, productId };
export type { Catalogue, CataloguePlan, Term };

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

const PanelSeedSchema = z.object({
  locations: z.array(
    z.object({ id: z.number().int(), short: z.string(), long: z.string() }),
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
});

/** What the sandbox panel starts with. */
export type PanelSeed = z.infer<typeof PanelSeedSchema>;
/** One egg of the panel seed. */
export type CatalogueEgg = z.infer<typeof Egg>;

/** Reads and validates `local/panel_seed.json`. */
export async function loadPanelSeed(): Promise<PanelSeed> {
  const url = new URL("./panel_seed.json", import.meta.url);
  return PanelSeedSchema.parse(JSON.parse(await Deno.readTextFile(url)));
}

/** The price id the local stack seeds for a plan's term, e.g. `price_mc_java_4gb_monthly`. */
export function priceId(planId: string, term: Term): string {
  return `price_${planId.replaceAll("-", "_")}_${term}`;
}

/** Every (plan, term, amount) the catalogue sells with its seeded price id. */
export function catalogPrices(
  catalogue: Catalogue,
): { plan: CataloguePlan; term: Term; amount: number; priceId: string }[] {
  return cataloguePrices(catalogue).map((p) => ({
    ...p,
    priceId: priceId(p.plan.id, p.term),
  }));
}
