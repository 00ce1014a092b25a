/**
 * Every kind of object the Stripe sandbox answers with, checked against Stripe's
 * published schemas (`tests/data/stripe_schemas.json`, a copy of
 * `shared/data/stripe_schemas.json`: OpenAPI v2349, with the differences of the
 * SDK's pinned `2026-10-28.endive` under `x-sdk-known`): required fields present,
 * nullable fields present (as `null` when empty), types, enum values, and no field
 * the version does not have (`webhook_endpoint`, `deleted_webhook_endpoint`,
 * `subscription_schedule` and the `billing_portal.*` objects come from the second
 * pass of `shared/data/stripe_schemas.json`). Objects the file only names (charges, payment intents,
 * invoice payments, disputes, refunds) are checked against stripe-node 23.1's
 * non-optional fields.
 */
import assert from "node:assert/strict";
import Stripe from "stripe";
import { loadCatalogue, priceId } from "../local/catalogue.ts";
import {
  startStripeSandbox,
  type StripeSandbox,
} from "../local/stripe-sandbox/mod.ts";
import {
  sandboxClient,
  startWebhookReceiver,
  upgradeNow,
} from "../local/stripe-sandbox/testing.ts";

const KEY = "sk_test_local_0123456789abcdef";
const WHSEC = "whsec_local_test_secret";

interface Schema {
  type?: string;
  enum?: unknown[];
  nullable?: boolean;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  $ref?: string;
  additionalProperties?: boolean | Schema;
}

interface Known {
  enum_values?: Record<string, string[]>;
  optional?: string[];
  properties?: Record<string, string>;
}

interface SchemaFile {
  schemas: Record<string, Schema>;
  stubs: string[];
  "x-sdk-known": Record<string, Known>;
}

const file: SchemaFile = JSON.parse(
  await Deno.readTextFile(
    new URL("./data/stripe_schemas.json", import.meta.url),
  ),
);

/** stripe-node 23.1.0's non-optional fields of objects the schema file only names. */
const SDK_FIELDS: Record<string, string[]> = {
  charge:
    "id object amount amount_captured amount_refunded application application_fee application_fee_amount balance_transaction billing_details calculated_statement_descriptor captured created currency customer description disputed failure_balance_transaction failure_code failure_message fraud_details livemode metadata on_behalf_of outcome paid payment_intent payment_method payment_method_details receipt_email receipt_number receipt_url refunded review shipping source source_transfer statement_descriptor statement_descriptor_suffix status transfer_data transfer_group"
      .split(" "),
  payment_intent:
    "id object allowed_payment_method_types amount amount_capturable amount_received application application_fee_amount automatic_payment_methods canceled_at cancellation_reason capture_method client_secret confirmation_method created currency customer customer_account description excluded_payment_method_types last_payment_error latest_charge livemode managed_payments metadata next_action on_behalf_of payment_method payment_method_configuration_details payment_method_options payment_method_types payment_record processing receipt_email review setup_future_usage shipping source statement_descriptor statement_descriptor_suffix status transfer_group"
      .split(" "),
  invoice_payment:
    "id object amount_paid amount_requested created currency invoice is_default livemode payment status status_transitions"
      .split(" "),
  dispute:
    "id object amount balance_transactions charge created currency enhanced_eligibility_types evidence evidence_details intended_submission_method is_charge_refundable livemode metadata payment_intent reason status"
      .split(" "),
  refund:
    "id object amount balance_transaction charge created currency customer customer_account metadata payment_intent payment_method reason receipt_number source_transfer_reversal status transfer_reversal"
      .split(" "),
};

function refName(ref: string): string {
  return ref.slice(ref.lastIndexOf("/") + 1);
}

function typeOk(value: unknown, type: string | undefined): boolean {
  switch (type) {
    case undefined:
      return true;
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number";
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null &&
        !Array.isArray(value);
    case "string":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
    default:
      return false;
  }
}

/** Every way `value` breaks `schema` (named `name` when it is a component). */
function check(
  value: unknown,
  schema: Schema,
  path: string,
  name?: string,
  extraEnum: unknown[] = [],
): string[] {
  if (schema.$ref !== undefined) {
    const ref = refName(schema.$ref);
    if (file.stubs.includes(ref)) {
      return typeOk(value, "object") ? [] : [`${path}: not an object (${ref})`];
    }
    return check(value, file.schemas[ref], path, ref);
  }
  if (value === null) {
    return schema.nullable ? [] : [`${path}: null but not nullable`];
  }
  if (schema.anyOf !== undefined) {
    const tries = schema.anyOf.map((s) => check(value, s, path));
    return tries.some((errors) => errors.length === 0)
      ? []
      : [`${path}: matches none of anyOf (${tries.flat().join("; ")})`];
  }
  if (!typeOk(value, schema.type)) {
    return [`${path}: ${JSON.stringify(value)} is not ${schema.type}`];
  }
  if (schema.enum !== undefined) {
    if (![...schema.enum, ...extraEnum].includes(value)) {
      return [`${path}: ${JSON.stringify(value)} not in ${schema.enum}`];
    }
  }
  if (Array.isArray(value)) {
    return schema.items === undefined
      ? []
      : value.flatMap((v, i) => check(v, schema.items!, `${path}[${i}]`));
  }
  if (typeof value !== "object") return [];
  const record = value as Record<string, unknown>;
  const errors: string[] = [];
  const props = schema.properties ?? {};
  const known = name === undefined ? {} : file["x-sdk-known"][name] ?? {};
  for (const [key, prop] of Object.entries(props)) {
    const expected = (schema.required ?? []).includes(key) || prop.nullable;
    if (!(key in record)) {
      if (expected && !(known.optional ?? []).includes(key)) {
        errors.push(`${path}.${key}: missing`);
      }
      continue;
    }
    // endive's enum additions (x-sdk-known) count as values of this version
    const extra = known.enum_values?.[key] ?? [];
    errors.push(
      ...check(record[key], prop, `${path}.${key}`, undefined, extra),
    );
  }
  for (const key of Object.keys(record)) {
    if (key in props) continue;
    if (known.properties?.[key] !== undefined) continue;
    if (schema.additionalProperties === true) continue;
    if (typeof schema.additionalProperties === "object") {
      errors.push(
        ...check(record[key], schema.additionalProperties, `${path}.${key}`),
      );
      continue;
    }
    if (schema.properties !== undefined) {
      errors.push(`${path}.${key}: not a field of this API version`);
    }
  }
  return errors;
}

/** Fails with every problem of `value` as a `name` object. */
function assertValid(value: unknown, name: string, label = name): void {
  const plain = JSON.parse(JSON.stringify(value));
  delete plain.lastResponse;
  const sdk = SDK_FIELDS[name];
  const errors = sdk === undefined
    ? check(plain, { $ref: `#/components/schemas/${name}` }, label)
    : sdk.filter((key) => !(key in plain)).map((key) =>
      `${label}.${key}: missing`
    );
  assert.deepEqual(errors, [], `${label} breaks the ${name} schema`);
}

async function withSandbox(
  fn: (sandbox: StripeSandbox, stripe: Stripe) => Promise<void>,
) {
  const receiver = await startWebhookReceiver(WHSEC);
  const sandbox = await startStripeSandbox({
    catalogue: await loadCatalogue(),
    secretKey: KEY,
    webhookSecret: WHSEC,
    webhookUrl: receiver.url,
    retryDelaysMs: [20],
  });
  try {
    await fn(sandbox, sandboxClient(sandbox, KEY));
  } finally {
    await sandbox.close();
    await receiver.close();
  }
}

async function post(sandbox: StripeSandbox, path: string, body = {}) {
  const res = await fetch(`${sandbox.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

async function purchase(
  sandbox: StripeSandbox,
  stripe: Stripe,
  outcome = "paid",
) {
  const session = await stripe.checkout.sessions.create({
    mode: "subscription",
    success_url: "https://shop.example/success",
    cancel_url: "https://shop.example/cancel",
    customer_email: "ada@example.com",
    client_reference_id: "order-1",
    metadata: { order_id: "order-1" },
    line_items: [{ price: priceId("mc-java-4gb", "monthly"), quantity: 1 }],
    subscription_data: { metadata: { order_id: "order-1" } },
  });
  const done = await post(
    sandbox,
    `/_sandbox/checkout/sessions/${session.id}/complete`,
    { outcome },
  );
  return { session, subId: String(done.session.subscription) };
}

Deno.test("stripe sandbox objects follow the endive schemas", async (t) => {
  await withSandbox(async (sandbox, stripe) => {
    const open = await stripe.checkout.sessions.create({
      mode: "subscription",
      success_url: "https://shop.example/success",
      customer_email: "open@example.com",
      line_items: [{ price: priceId("mc-java-4gb", "yearly"), quantity: 1 }],
    });
    const { session, subId } = await purchase(sandbox, stripe);
    await post(sandbox, `/_sandbox/subscriptions/${subId}/renew`, {
      outcome: "failed",
    });
    await post(sandbox, `/_sandbox/subscriptions/${subId}/recover`);
    await post(sandbox, `/_sandbox/subscriptions/${subId}/dispute`);
    const refunded = await purchase(sandbox, stripe);
    await post(sandbox, `/_sandbox/subscriptions/${refunded.subId}/refund`);
    await stripe.subscriptions.update(refunded.subId, {
      cancel_at_period_end: true,
    });
    await post(sandbox, `/_sandbox/subscriptions/${refunded.subId}/advance`);
    const pending = await purchase(sandbox, stripe, "async_pending");
    const deleted = await stripe.customers.create({ email: "del@x.test" });
    await stripe.customers.del(deleted.id);
    const changed = await purchase(sandbox, stripe);
    const changedSub = await stripe.subscriptions.retrieve(changed.subId);
    await upgradeNow(stripe, changedSub, priceId("mc-java-8gb", "monthly"));
    const waiting = await purchase(sandbox, stripe);
    const waitingSub = await stripe.subscriptions.retrieve(waiting.subId);
    await post(
      sandbox,
      `/_sandbox/customers/${waitingSub.customer}/payment_method`,
      { outcome: "declines" },
    );
    await upgradeNow(stripe, waitingSub, priceId("mc-java-8gb", "monthly"));
    await post(
      sandbox,
      `/_sandbox/subscriptions/${waiting.subId}/expire_pending_update`,
    );
    await upgradeNow(stripe, waitingSub, priceId("mc-java-8gb", "monthly"));
    const schedule = await stripe.subscriptionSchedules.create({
      from_subscription: changed.subId,
    });
    await stripe.subscriptionSchedules.update(schedule.id, {
      phases: [
        { items: [{ price: priceId("mc-java-8gb", "monthly") }] },
        {
          items: [{ price: priceId("mc-java-2gb", "monthly") }],
          duration: { interval: "month" },
        },
      ],
      end_behavior: "release",
    });
    await post(sandbox, `/_sandbox/subscriptions/${changed.subId}/renew`);
    await post(sandbox, `/_sandbox/subscriptions/${changed.subId}/renew`);
    const portal = await stripe.billingPortal.sessions.create({
      customer: String(changedSub.customer),
      return_url: "https://shop.example/account",
      flow_data: {
        type: "subscription_cancel",
        subscription_cancel: { subscription: changed.subId },
      },
    });
    await post(
      sandbox,
      `/_sandbox/billing_portal/sessions/${portal.id}/cancel`,
      {
        subscription: changed.subId,
        feedback: "unused",
      },
    );
    await sandbox.idle();

    await t.step("checkout sessions, open and complete", async () => {
      assertValid(open, "checkout.session", "open session");
      assert.equal(open.ui_mode, "hosted_page");
      const complete = await stripe.checkout.sessions.retrieve(session.id, {
        expand: ["line_items"],
      });
      assertValid(complete, "checkout.session", "complete session");
      for (const item of complete.line_items?.data ?? []) {
        assertValid(item, "item");
      }
      assertValid(
        await stripe.checkout.sessions.retrieve(pending.session.id),
        "checkout.session",
        "pending session",
      );
    });

    await t.step("customers, products, prices", async () => {
      const customers = (await stripe.customers.list()).data;
      assert.ok(customers.length > 0);
      customers.forEach((c) => assertValid(c, "customer"));
      (await stripe.products.list({ limit: 3 })).data.forEach((p) =>
        assertValid(p, "product")
      );
      (await stripe.prices.list({ limit: 3 })).data.forEach((p) =>
        assertValid(p, "price")
      );
    });

    await t.step("subscriptions and items in every state", async () => {
      const subs = (await stripe.subscriptions.list({ status: "all" })).data;
      assert.deepEqual(
        [...new Set(subs.map((s) => s.status))].sort(),
        ["active", "canceled", "incomplete"],
      );
      const pending = await stripe.subscriptions.retrieve(waiting.subId);
      assert.notEqual(pending.pending_update, null);
      assertValid(pending, "subscription", "subscription with pending_update");
      for (const sub of subs) {
        assertValid(sub, "subscription", `subscription ${sub.status}`);
        const items = await stripe.subscriptionItems.list({
          subscription: sub.id,
        });
        items.data.forEach((i) => assertValid(i, "subscription_item"));
      }
    });

    await t.step("invoices and their lines", async () => {
      const invoices = (await stripe.invoices.list({ limit: 100 })).data;
      assert.ok(invoices.length >= 4);
      for (const invoice of invoices) {
        assertValid(invoice, "invoice", `invoice ${invoice.billing_reason}`);
        const lines = await stripe.invoices.listLineItems(invoice.id);
        lines.data.forEach((l) => assertValid(l, "line_item"));
      }
    });

    await t.step("payments: intents, charges, invoice payments", async () => {
      (await stripe.paymentIntents.list({ limit: 100 })).data.forEach((p) =>
        assertValid(p, "payment_intent")
      );
      const charges = (await stripe.charges.list({ limit: 100 })).data;
      assert.deepEqual(
        [...new Set(charges.map((c) => c.status))].sort(),
        ["failed", "succeeded"],
      );
      charges.forEach((c) => assertValid(c, "charge"));
      (await stripe.invoicePayments.list({ limit: 100 })).data.forEach((p) =>
        assertValid(p, "invoice_payment")
      );
      (await stripe.disputes.list()).data.forEach((d) =>
        assertValid(d, "dispute")
      );
      (await stripe.refunds.list()).data.forEach((r) =>
        assertValid(r, "refund")
      );
    });

    await t.step("every event and the object it carries", async () => {
      const events = await stripe.events.list({ limit: 100 })
        .autoPagingToArray({ limit: 1000 });
      const kinds = new Set(events.map((e) => e.data.object.object));
      assert.deepEqual(
        [...kinds].sort(),
        [
          "charge",
          "checkout.session",
          "customer",
          "dispute",
          "invoice",
          "refund",
          "subscription",
          "subscription_schedule",
        ],
      );
      const types = new Set(events.map((e) => e.type));
      for (
        const type of [
          "customer.subscription.pending_update_applied",
          "customer.subscription.pending_update_expired",
          "subscription_schedule.created",
          "subscription_schedule.updated",
          "subscription_schedule.released",
        ]
      ) assert.ok(types.has(type as Stripe.Event.Type), type);
      for (const event of events) {
        assertValid(event, "event", `event ${event.type}`);
        assertValid(
          event.data.object,
          event.data.object.object,
          `${event.type} data.object`,
        );
      }
    });

    await t.step("plan changes: preview, schedule, portal", async () => {
      const sub = await stripe.subscriptions.retrieve(pending.subId);
      const preview = await stripe.invoices.createPreview({
        subscription: pending.subId,
        subscription_details: {
          items: [{
            id: sub.items.data[0].id,
            price: priceId("mc-java-8gb", "monthly"),
          }],
          proration_behavior: "always_invoice",
        },
      });
      // Stripe's preview has no id (the spec: "always present unless upcoming")
      assertValid({ ...preview, id: "upcoming" }, "invoice", "preview");
      assertValid(
        await stripe.subscriptionSchedules.retrieve(schedule.id),
        "subscription_schedule",
      );
      assertValid(portal, "billing_portal.session");
      assertValid(
        await stripe.billingPortal.configurations.retrieve(
          String(portal.configuration),
        ),
        "billing_portal.configuration",
      );
      assertValid(
        await stripe.billingPortal.configurations.create({
          features: { invoice_history: { enabled: true } },
        }),
        "billing_portal.configuration",
        "created configuration",
      );
    });

    await t.step("webhook endpoints, created, listed and deleted", async () => {
      const created = await stripe.webhookEndpoints.create({
        url: "https://shop.example/hook",
        enabled_events: ["invoice.paid"],
      });
      assertValid(created, "webhook_endpoint", "created endpoint");
      for (const endpoint of (await stripe.webhookEndpoints.list()).data) {
        assertValid(endpoint, "webhook_endpoint", `endpoint ${endpoint.url}`);
      }
      assertValid(
        await stripe.webhookEndpoints.del(created.id),
        "deleted_webhook_endpoint",
      );
    });

    await t.step("errors", async () => {
      const res = await fetch(`${sandbox.url}/v1/customers/cus_nope`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      assert.equal(res.status, 404);
      assertValid(await res.json(), "error");
    });
  });
});

Deno.test("stripe sandbox schema check catches a wrong object", () => {
  const bad = {
    id: "cs_test_x",
    object: "checkout.session",
    ui_mode: "hosted",
    subscription_typo: null,
  };
  const errors = check(
    bad,
    { $ref: "#/components/schemas/checkout.session" },
    "session",
  );
  assert.ok(errors.some((e) => e.startsWith("session.ui_mode: ")), "enum");
  assert.ok(errors.includes("session.created: missing"), "required");
  assert.ok(errors.includes("session.url: missing"), "nullable");
  assert.ok(
    errors.includes(
      "session.subscription_typo: not a field of this API version",
    ),
    "unknown field",
  );
});
