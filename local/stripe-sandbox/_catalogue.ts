/**
 * Seeds the sandbox's products and prices from the operator's catalogue, as
 * `npm run setup` would make them (same product ids and lookup keys).
 *
 * @module
 */
import type { Catalogue } from "../catalogue.ts";
import { catalogPrices, productId } from "../catalogue.ts";
import { lookupKey } from "../../setup/catalogue.ts";
import { makePrice, makeProduct } from "./_objects.ts";
import type { Store } from "./_state.ts";

/** Adds one product per plan and one recurring price per plan term. */
export function seedCatalogue(store: Store, catalogue: Catalogue): void {
  for (const plan of catalogue.plans) {
    const product = makeProduct(
      { id: productId(plan.id), name: plan.display_name, active: plan.active },
      { plan_id: plan.id, game: plan.game },
    );
    store.products.set(product.id, product);
  }
  for (const { plan, term, amount, priceId } of catalogPrices(catalogue)) {
    const price = makePrice({
      id: priceId,
      product: productId(plan.id),
      currency: catalogue.currency,
      unit_amount: amount,
      active: plan.active,
      recurring: catalogue.terms[term],
      nickname: `${plan.display_name} (${term})`,
      lookup_key: lookupKey(plan.id, term),
      metadata: { plan_id: plan.id, term },
    });
    store.prices.set(price.id, price);
  }
}
