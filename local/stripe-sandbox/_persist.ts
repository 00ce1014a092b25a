/**
 * The sandbox's state as the JSON a state file keeps (`../sandbox-kit`'s
 * `createStateFile`): every stored object, idempotency records and the delivery
 * log, so a restarted `npm start` still knows the customers and subscriptions the
 * database refers to. Ids are random, so there are no counters to keep; invoice
 * numbers continue from each customer's `next_invoice_sequence`.
 *
 * @module
 */
import { z } from "zod";
import type { IdempotentResult, State, Store } from "./_state.ts";
import { emptyStore } from "./_state.ts";
import type { Delivery } from "./_webhooks.ts";

const StoredObject = z.custom<object>(
  (value) => typeof value === "object" && value !== null,
  "Expected an object",
);

const IdempotencySchema = z.object({
  fingerprint: z.string(),
  status: z.number().int(),
  body: z.string(),
  requestId: z.string(),
}) satisfies z.ZodType<IdempotentResult>;

const DeliverySchema = z.object({
  event_id: z.string(),
  type: z.string(),
  // state files from before endpoints have no endpoint id
  endpoint: z.string().default(""),
  attempt: z.number().int(),
  status: z.number().int(),
  at: z.string(),
}) satisfies z.ZodType<Delivery>;

/** The saved state, as the state file holds it. */
export const SnapshotSchema = z.object({
  version: z.literal(1),
  store: z.record(z.string(), z.array(z.tuple([z.string(), StoredObject]))),
  idempotency: z.array(z.tuple([z.string(), IdempotencySchema])),
  deliveries: z.array(DeliverySchema),
});

/** The saved state. */
export type Snapshot = z.infer<typeof SnapshotSchema>;

/** The state to save now. */
export function snapshot(state: State): Snapshot {
  return {
    version: 1,
    store: Object.fromEntries(
      Object.entries(state.store).map((
        [name, map]: [string, Map<string, object>],
      ) => [name, [...map.entries()]]),
    ),
    idempotency: [...state.idempotency.entries()],
    deliveries: state.webhooks.log,
  };
}

/** Replaces the state's objects, idempotency records and delivery log with saved ones. */
export function restore(state: State, saved: Snapshot): void {
  const store: Store = emptyStore();
  for (const [name, map] of Object.entries(store)) {
    // Each map holds what `snapshot` took from the map of the same name.
    for (const [id, value] of saved.store[name] ?? []) {
      (map as Map<string, object>).set(id, value);
    }
  }
  state.store = store;
  state.idempotency = new Map(saved.idempotency);
  state.webhooks.log.splice(0, state.webhooks.log.length, ...saved.deliveries);
}
