/**
 * Price changes of subscription items and what they cost: the `items[]` of an
 * update or a preview, and Stripe's proration lines (credit for the unused time on
 * the old price, debit for the remaining time on the new one, by the second), and
 * the invoice preview (`POST /v1/invoices/create_preview`).
 *
 * @module
 */
import {
  addItem,
  changePrice,
  getSubscription,
  makeInvoice,
} from "./_billing.ts";
import {
  invalidRequest,
  missingParam,
  noSuch,
  unsupported,
} from "./_errors.ts";
import type { FormObject, FormValue } from "./_form.ts";
import { arrayToObject } from "./_form.ts";
import type {
  Invoice,
  InvoiceLine,
  Price,
  Subscription,
  SubscriptionItem,
} from "./_objects.ts";
import { newId, now, periodEnd } from "./_objects.ts";
import {
  onlyKnown,
  optArray,
  optInteger,
  optObject,
  optString,
} from "./_params.ts";
import type { State } from "./_state.ts";

/** How an update bills a change (`proration_behavior`). */
export type ProrationBehavior = "create_prorations" | "always_invoice" | "none";

const PRORATION_BEHAVIORS: readonly ProrationBehavior[] = [
  "create_prorations",
  "always_invoice",
  "none",
];

/** One entry of `items[]`: an existing item moved to a price, or a new item. */
export interface ItemChange {
  /** the item changed; undefined adds a new item */
  item?: SubscriptionItem;
  price: Price;
  quantity: number;
}

/** The `proration_behavior` parameter (default `create_prorations`). */
export function prorationBehavior(
  params: FormObject,
  param = "proration_behavior",
): ProrationBehavior {
  const value = optString(params, "proration_behavior", param);
  if (value === undefined) return "create_prorations";
  if (!PRORATION_BEHAVIORS.includes(value as ProrationBehavior)) {
    throw invalidRequest(
      `Invalid proration_behavior: must be one of ${
        PRORATION_BEHAVIORS.join(", ")
      }`,
      { param },
    );
  }
  return value as ProrationBehavior;
}

/**
 * The `items[]` of an update: with `id`, that item moves to `price` (and
 * `quantity`); without it, a new item is added, as Stripe does.
 */
export function parseItems(
  state: State,
  sub: Subscription,
  raw: FormValue[],
  param: string,
): ItemChange[] {
  return raw.map((value, i) => {
    const at = `${param}[${i}]`;
    const entry = typeof value === "object" && value !== null
      ? (Array.isArray(value) ? arrayToObject(value) : value)
      : undefined;
    if (entry === undefined) {
      throw invalidRequest("Invalid object", { param: at });
    }
    for (const key of ["deleted", "price_data", "metadata"]) {
      if (entry[key] !== undefined) {
        throw unsupported(`${at}[${key}]`, `${key} in items`);
      }
    }
    onlyKnown(entry, ["id", "price", "quantity"]);
    const id = optString(entry, "id", `${at}[id]`);
    const item = id === undefined
      ? undefined
      : sub.items.data.find((i) => i.id === id);
    if (id !== undefined && item === undefined) {
      throw noSuch("subscription item", id, `${at}[id]`, 400);
    }
    const priceId = optString(entry, "price", `${at}[price]`);
    if (priceId === undefined && item === undefined) {
      throw missingParam(`${at}[price]`);
    }
    const price = priceId === undefined
      ? item!.price
      : state.store.prices.get(priceId);
    if (price === undefined) {
      throw noSuch("price", priceId ?? "", `${at}[price]`, 400);
    }
    if (price.recurring === null) {
      throw invalidRequest(
        `The price specified is set to \`type=one_time\` but this field only accepts prices with \`type=recurring\`.`,
        { param: `${at}[price]` },
      );
    }
    if (price.currency !== sub.currency) {
      throw invalidRequest(
        `The price specified (${price.id}) has currency ${price.currency}, but the subscription is in ${sub.currency}.`,
        { param: `${at}[price]` },
      );
    }
    const interval = (item ?? sub.items.data[0])?.price.recurring;
    if (
      interval !== null && interval !== undefined &&
      (interval.interval !== price.recurring.interval ||
        interval.interval_count !== price.recurring.interval_count)
    ) {
      // Stripe restarts the billing period on an interval change; not modelled.
      throw unsupported(
        `${at}[price]`,
        `changing a subscription's billing interval (${interval.interval_count} ${interval.interval} to ${price.recurring.interval_count} ${price.recurring.interval})`,
      );
    }
    const quantity = optInteger(entry, "quantity", `${at}[quantity]`) ??
      item?.quantity ?? 1;
    return { item, price, quantity };
  });
}

/** The subscription's items as they are after `changes` (the subscription untouched). */
export function itemsAfter(
  sub: Subscription,
  changes: ItemChange[],
): SubscriptionItem[] {
  const copy = structuredClone(sub);
  applyChanges(copy, changes);
  return copy.items.data;
}

/** Applies `changes` to the subscription's items. */
export function applyChanges(sub: Subscription, changes: ItemChange[]): void {
  for (const change of changes) {
    const item = change.item === undefined
      ? undefined
      : sub.items.data.find((i) => i.id === change.item!.id);
    if (item === undefined) {
      sub.items.data.push(addItem(sub, change.price, change.quantity));
    } else {
      changePrice(item, change.price, change.quantity);
    }
  }
}

/**
 * The proration lines of `changes` at `at` (Unix seconds): for each changed item a
 * credit for its unused time on the old price and a debit for the remaining time on
 * the new one; a new item is a debit only. Amounts round to the cent per line.
 */
export function prorationLines(
  state: State,
  sub: Subscription,
  changes: ItemChange[],
  at: number,
): InvoiceLine[] {
  const lines: InvoiceLine[] = [];
  for (const change of changes) {
    const item = change.item ?? sub.items.data[0];
    if (item === undefined) continue;
    const same = change.item !== undefined &&
      change.item.price.id === change.price.id &&
      change.item.quantity === change.quantity;
    if (same) continue;
    const start = item.current_period_start;
    const end = item.current_period_end;
    const share = Math.min(Math.max((end - at) / (end - start), 0), 1);
    if (change.item !== undefined) {
      lines.push(
        prorationLine(state, sub, {
          itemId: change.item.id,
          price: change.item.price,
          quantity: change.item.quantity,
          amount: -Math.round(
            change.item.price.unit_amount * change.item.quantity * share,
          ),
          period: { start: at, end },
          words: "Unused time on",
          credited: creditedLines(state, sub, change.item.id),
        }),
      );
    }
    lines.push(
      prorationLine(state, sub, {
        itemId: change.item?.id ?? "",
        price: change.price,
        quantity: change.quantity,
        amount: Math.round(change.price.unit_amount * change.quantity * share),
        period: { start: at, end },
        words: "Remaining time on",
        credited: null,
      }),
    );
  }
  return lines;
}

function prorationLine(
  state: State,
  sub: Subscription,
  line: {
    itemId: string;
    price: Price;
    quantity: number;
    amount: number;
    period: { start: number; end: number };
    words: string;
    credited: { invoice: string; invoice_line_items: string[] } | null;
  },
): InvoiceLine {
  const name = state.store.products.get(line.price.product)?.name ??
    line.price.id;
  const day = new Date(line.period.start * 1000).toLocaleDateString("en-GB", {
    day: "2-digit",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  });
  return {
    id: newId("il"),
    object: "line_item",
    amount: line.amount,
    currency: line.price.currency,
    description: `${line.words} ${
      line.quantity === 1 ? "" : `${line.quantity} × `
    }${name} after ${day}`,
    discount_amounts: [],
    discountable: false,
    discounts: [],
    invoice: null,
    livemode: false,
    metadata: {},
    parent: {
      type: "subscription_item_details",
      invoice_item_details: null,
      subscription_item_details: {
        invoice_item: newId("ii"),
        proration: true,
        proration_details: { credited_items: line.credited },
        subscription: sub.id,
        subscription_item: line.itemId,
      },
    },
    period: line.period,
    pretax_credit_amounts: [],
    pricing: {
      type: "price_details",
      price_details: { price: line.price.id, product: line.price.product },
      unit_amount_decimal: line.price.unit_amount_decimal,
    },
    quantity: line.quantity,
    quantity_decimal: String(line.quantity),
    subscription: sub.id,
    subtotal: line.amount,
    taxes: [],
  };
}

/** The lines of the last paid invoice that billed an item (what a credit gives back). */
function creditedLines(
  state: State,
  sub: Subscription,
  itemId: string,
): { invoice: string; invoice_line_items: string[] } | null {
  const paid = [...state.store.invoices.values()].reverse().find((i) =>
    i.parent.subscription_details.subscription === sub.id &&
    i.status === "paid" &&
    i.lines.data.some((l) =>
      l.parent.subscription_item_details.subscription_item === itemId &&
      !l.parent.subscription_item_details.proration
    )
  );
  if (paid === undefined) return null;
  return {
    invoice: paid.id,
    invoice_line_items: paid.lines.data.filter((l) =>
      l.parent.subscription_item_details.subscription_item === itemId &&
      !l.parent.subscription_item_details.proration
    ).map((l) => l.id),
  };
}

/**
 * `POST /v1/invoices/create_preview` for a subscription change: with
 * `always_invoice`, the invoice the update would make now (its proration lines);
 * otherwise the next renewal (pending proration lines and the next period at the
 * new prices). Nothing is stored; the preview has no id, as Stripe's.
 */
export function previewInvoice(
  state: State,
  params: FormObject,
): Omit<Invoice, "id"> {
  onlyKnown(params, [
    "customer",
    "subscription",
    "subscription_details",
    "expand",
  ]);
  const customerId = optString(params, "customer");
  const subId = optString(params, "subscription");
  if (customerId === undefined && subId === undefined) {
    throw invalidRequest(
      "Must provide either customer or subscription to retrieve a preview invoice.",
    );
  }
  if (subId === undefined) {
    throw invalidRequest(
      "The Stripe sandbox previews subscription changes only: pass subscription",
      { param: "subscription" },
    );
  }
  const sub = getSubscription(state, subId);
  if (customerId !== undefined && customerId !== sub.customer) {
    throw invalidRequest(
      `The subscription ${sub.id} does not belong to customer ${customerId}.`,
      { param: "subscription" },
    );
  }
  const details = optObject(params, "subscription_details") ?? {};
  onlyKnown(details, ["items", "proration_behavior", "proration_date"]);
  const behavior = prorationBehavior(
    details,
    "subscription_details[proration_behavior]",
  );
  const at = optInteger(
    details,
    "proration_date",
    "subscription_details[proration_date]",
  ) ?? now();
  const raw = optArray(details, "items", "subscription_details[items]") ?? [];
  const changes = parseItems(state, sub, raw, "subscription_details[items]");
  const lines = behavior === "none"
    ? []
    : prorationLines(state, sub, changes, at);
  const customer = state.store.customers.get(sub.customer);
  const after = structuredClone(sub);
  applyChanges(after, changes);
  const pending = [...state.store.pendingItems.values()]
    .filter((p) => p.subscription === sub.id).map((p) => p.line);
  const invoice = behavior === "always_invoice"
    ? makeInvoice(state, after, customer, "subscription_update", [], {
      start: at,
      end: at,
    }, lines)
    : makeInvoice(
      state,
      after,
      customer,
      "upcoming",
      after.items.data.map((item) => ({
        price: item.price,
        quantity: item.quantity,
        amount: item.price.unit_amount * item.quantity,
        description: `${item.quantity} × ${
          state.store.products.get(item.price.product)?.name ?? item.price.id
        }`,
      })),
      {
        start: Math.min(...sub.items.data.map((i) => i.current_period_start)),
        end: Math.max(...sub.items.data.map((i) => i.current_period_end)),
      },
      [...pending, ...lines],
    );
  state.store.invoices.delete(invoice.id);
  if (behavior !== "always_invoice") {
    // The renewal bills the period after the current one.
    for (const line of invoice.lines.data) {
      const item = after.items.data.find((i) =>
        i.id === line.parent.subscription_item_details.subscription_item
      );
      const recurring = item?.price.recurring;
      if (line.parent.subscription_item_details.proration || !recurring) {
        continue;
      }
      line.period = {
        start: item.current_period_end,
        end: periodEnd(
          item.current_period_end,
          recurring.interval,
          recurring.interval_count,
        ),
      };
    }
  }
  const { id: _id, ...preview } = invoice;
  preview.lines.url = "/v1/invoices/upcoming/lines";
  for (const line of preview.lines.data) {
    line.id = newId("il_tmp");
    line.invoice = null;
  }
  preview.webhooks_delivered_at = null;
  return preview;
}
