import assert from "node:assert/strict";
import type { OrderStatus } from "./orders.ts";
import {
  disagreements,
  type InvoiceFacts,
  reconcileFirstInvoice,
  reconcileSession,
  type SessionFacts,
} from "./reconcile.ts";

const ORDER = {
  id: "0b6e4a4e-5a0c-4a43-9d57-2f7b3f0a1c11",
  user_id: "6a3c1f3e-2b1d-4c8e-9f0a-1b2c3d4e5f60",
  plan_id: "mc-java-4gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Survival",
  status: "pending" as OrderStatus,
  amount_cents: 999,
  currency: "usd",
  stripe_checkout_session_id: "cs_test_1",
  stripe_customer_id: "cus_1",
  stripe_subscription_id: null as string | null,
};

const METADATA = {
  order_id: ORDER.id,
  user_id: ORDER.user_id,
  item_type: "game",
  plan_id: ORDER.plan_id,
  term: ORDER.term,
  region: ORDER.region,
  server_name: ORDER.server_name,
};

const SESSION: SessionFacts = {
  id: "cs_test_1",
  metadata: METADATA,
  customer: "cus_1",
  subscription: "sub_1",
  amount_total: 999,
  currency: "usd",
  payment_status: "paid",
};

const INVOICE: InvoiceFacts = {
  metadata: METADATA,
  customer: "cus_1",
  subscription: "sub_1",
  amount_paid: 999,
  currency: "usd",
};

const COMPLETED = "checkout.session.completed";

function problemsOf(result: ReturnType<typeof reconcileSession>): string[] {
  assert.equal(result.outcome, "mismatch");
  return result.outcome === "mismatch" ? result.problems : [];
}

Deno.test("reconcileSession: a paid session for a pending order pays it and links Stripe ids", () => {
  assert.deepEqual(reconcileSession(COMPLETED, "evt_1", SESSION, ORDER), {
    outcome: "processed",
    link: { customer: "cus_1", subscription: "sub_1" },
    transition: {
      to: "paid",
      reason: "Payment confirmed by checkout.session.completed (evt_1)",
    },
  });
  const async = reconcileSession(
    "checkout.session.async_payment_succeeded",
    "evt_2",
    SESSION,
    ORDER,
  );
  assert.equal(async.outcome, "processed");
  assert.equal(
    async.outcome === "processed" && async.transition?.to,
    "paid",
  );
});

Deno.test("reconcileSession: each metadata field that differs is a mismatch naming it", () => {
  const expected = {
    order_id: ORDER.id,
    user_id: ORDER.user_id,
    plan_id: ORDER.plan_id,
    term: ORDER.term,
    region: ORDER.region,
    server_name: ORDER.server_name,
  };
  for (const [key, value] of Object.entries(expected)) {
    const changed = reconcileSession(COMPLETED, "evt", {
      ...SESSION,
      metadata: { ...METADATA, [key]: "other" },
    }, ORDER);
    assert.deepEqual(problemsOf(changed), [
      `${key} is "other", the order has "${value}"`,
    ]);
    const rest: Record<string, string> = { ...METADATA };
    delete rest[key];
    const missing = reconcileSession(COMPLETED, "evt", {
      ...SESSION,
      metadata: rest,
    }, ORDER);
    assert.deepEqual(problemsOf(missing), [
      `${key} is "(missing)", the order has "${value}"`,
    ]);
  }
  assert.equal(
    problemsOf(
      reconcileSession(COMPLETED, "evt", { ...SESSION, metadata: null }, ORDER),
    ).length,
    6,
  );
});

Deno.test("reconcileSession: another customer than the order's is a mismatch", () => {
  assert.deepEqual(
    problemsOf(
      reconcileSession(
        COMPLETED,
        "evt",
        { ...SESSION, customer: "cus_other" },
        ORDER,
      ),
    ),
    ['customer is "cus_other", the order has "cus_1"'],
  );
  // An order without a customer yet takes the session's.
  const fresh = reconcileSession(COMPLETED, "evt", {
    ...SESSION,
    customer: "cus_new",
  }, { ...ORDER, stripe_customer_id: null });
  assert.equal(fresh.outcome, "processed");
});

Deno.test("reconcileSession: another subscription than the order's is a mismatch", () => {
  assert.deepEqual(
    problemsOf(
      reconcileSession(COMPLETED, "evt", SESSION, {
        ...ORDER,
        stripe_subscription_id: "sub_other",
      }),
    ),
    ['subscription is "sub_1", the order has "sub_other"'],
  );
});

Deno.test("reconcileSession: another session than the order's is a mismatch", () => {
  assert.deepEqual(
    problemsOf(
      reconcileSession(
        COMPLETED,
        "evt",
        { ...SESSION, id: "cs_test_2" },
        ORDER,
      ),
    ),
    ['session is "cs_test_2", the order has "cs_test_1"'],
  );
  const noSessionYet = reconcileSession(COMPLETED, "evt", SESSION, {
    ...ORDER,
    stripe_checkout_session_id: null,
  });
  assert.equal(noSessionYet.outcome, "processed");
});

Deno.test("reconcileSession: a missing or different amount is a mismatch", () => {
  assert.deepEqual(
    problemsOf(
      reconcileSession(
        COMPLETED,
        "evt",
        { ...SESSION, amount_total: 1 },
        ORDER,
      ),
    ),
    ["amount is 1, the order has 999"],
  );
  assert.deepEqual(
    problemsOf(
      reconcileSession(
        COMPLETED,
        "evt",
        { ...SESSION, amount_total: null },
        ORDER,
      ),
    ),
    ["amount is missing, the order has 999"],
  );
});

Deno.test("reconcileSession: a different or missing currency is a mismatch, case aside", () => {
  assert.deepEqual(
    problemsOf(
      reconcileSession(
        COMPLETED,
        "evt",
        { ...SESSION, currency: "eur" },
        ORDER,
      ),
    ),
    ['currency is "eur", the order has "usd"'],
  );
  assert.deepEqual(
    problemsOf(
      reconcileSession(COMPLETED, "evt", { ...SESSION, currency: null }, ORDER),
    ),
    ['currency is "(missing)", the order has "usd"'],
  );
  assert.equal(
    reconcileSession(COMPLETED, "evt", { ...SESSION, currency: "USD" }, ORDER)
      .outcome,
    "processed",
  );
});

Deno.test("reconcileSession: every problem is listed at once", () => {
  const problems = problemsOf(
    reconcileSession(COMPLETED, "evt", {
      ...SESSION,
      id: "cs_test_2",
      customer: "cus_other",
      amount_total: 5,
      currency: "eur",
    }, ORDER),
  );
  assert.equal(problems.length, 4);
});

Deno.test("reconcileSession: a completed but unpaid session only notes it", () => {
  assert.deepEqual(
    reconcileSession(
      COMPLETED,
      "evt",
      { ...SESSION, payment_status: "unpaid" },
      ORDER,
    ),
    {
      outcome: "processed",
      note: "Checkout completed; the payment is still processing",
    },
  );
});

Deno.test("reconcileSession: a payment for an expired or canceled order is a mismatch", () => {
  for (const status of ["expired", "canceled"] as const) {
    for (
      const type of [
        COMPLETED,
        "checkout.session.async_payment_succeeded",
      ] as const
    ) {
      assert.deepEqual(
        problemsOf(
          reconcileSession(type, "evt", SESSION, { ...ORDER, status }),
        ),
        [
          `payment received for an order that is "${status}"; refund or restore it by hand`,
        ],
      );
    }
  }
});

Deno.test("reconcileSession: a payment for an order further along links ids without a transition", () => {
  for (
    const status of [
      "paid",
      "provisioning",
      "installing",
      "active",
      "error",
    ] as const
  ) {
    assert.deepEqual(
      reconcileSession(COMPLETED, "evt", SESSION, { ...ORDER, status }),
      {
        outcome: "processed",
        link: { customer: "cus_1", subscription: "sub_1" },
      },
    );
  }
});

Deno.test("reconcileSession: a failed or expired checkout expires a pending order", () => {
  assert.deepEqual(
    reconcileSession(
      "checkout.session.async_payment_failed",
      "evt_f",
      { ...SESSION, payment_status: "unpaid" },
      ORDER,
    ),
    {
      outcome: "processed",
      transition: { to: "expired", reason: "The payment failed (evt_f)" },
    },
  );
  assert.deepEqual(
    reconcileSession(
      "checkout.session.expired",
      "evt_e",
      { ...SESSION, payment_status: "unpaid" },
      ORDER,
    ),
    {
      outcome: "processed",
      transition: {
        to: "expired",
        reason: "Checkout expired without payment (evt_e)",
      },
    },
  );
});

Deno.test("reconcileSession: a failed or expired checkout leaves an order past pending alone", () => {
  for (
    const type of [
      "checkout.session.async_payment_failed",
      "checkout.session.expired",
    ] as const
  ) {
    for (
      const status of ["paid", "installing", "active", "expired"] as const
    ) {
      assert.deepEqual(
        reconcileSession(type, "evt", SESSION, { ...ORDER, status }),
        { outcome: "processed" },
      );
    }
  }
});

Deno.test("reconcileSession: a failed checkout that disagrees with the order is still a mismatch", () => {
  assert.equal(
    reconcileSession(
      "checkout.session.expired",
      "evt",
      { ...SESSION, amount_total: 1 },
      ORDER,
    ).outcome,
    "mismatch",
  );
});

Deno.test("reconcileFirstInvoice: a first invoice that agrees pays a pending order", () => {
  assert.deepEqual(reconcileFirstInvoice("evt_i", INVOICE, ORDER), {
    outcome: "processed",
    link: { customer: "cus_1", subscription: "sub_1" },
    transition: {
      to: "paid",
      reason: "Payment confirmed by invoice.paid (evt_i)",
    },
  });
  assert.deepEqual(
    reconcileFirstInvoice("evt_i", INVOICE, { ...ORDER, status: "installing" }),
    {
      outcome: "processed",
      link: { customer: "cus_1", subscription: "sub_1" },
    },
  );
});

Deno.test("reconcileFirstInvoice: metadata, customer, amount and currency are checked", () => {
  const mismatch = (invoice: Partial<InvoiceFacts>, order = ORDER) => {
    const result = reconcileFirstInvoice(
      "evt",
      { ...INVOICE, ...invoice },
      order,
    );
    assert.equal(result.outcome, "mismatch");
    return result.outcome === "mismatch" ? result.problems : [];
  };
  assert.deepEqual(mismatch({ metadata: { ...METADATA, region: "us-east" } }), [
    'region is "us-east", the order has "eu-west"',
  ]);
  assert.deepEqual(mismatch({ customer: "cus_other" }), [
    'customer is "cus_other", the order has "cus_1"',
  ]);
  assert.deepEqual(
    mismatch({}, { ...ORDER, stripe_subscription_id: "sub_other" }),
    ['subscription is "sub_1", the order has "sub_other"'],
  );
  assert.deepEqual(mismatch({ amount_paid: 0 }), [
    "amount paid is 0, the order has 999",
  ]);
  assert.deepEqual(mismatch({ currency: "eur" }), [
    'currency is "eur", the order has "usd"',
  ]);
  assert.deepEqual(mismatch({}, { ...ORDER, status: "canceled" }), [
    'payment received for an order that is "canceled"; refund or restore it by hand',
  ]);
  assert.deepEqual(mismatch({}, { ...ORDER, status: "expired" }), [
    'payment received for an order that is "expired"; refund or restore it by hand',
  ]);
});

Deno.test("disagreements: nothing to say when payment and order agree", () => {
  assert.deepEqual(disagreements(ORDER, SESSION), []);
  // Ids Stripe has not sent yet are no disagreement.
  assert.deepEqual(
    disagreements(
      { ...ORDER, stripe_subscription_id: "sub_1" },
      { ...SESSION, customer: null, subscription: null },
    ),
    [],
  );
});
