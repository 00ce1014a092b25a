import assert from "node:assert/strict";
import {
  decideLifecycle,
  formatMoney,
  type LifecycleEvent,
  type LifecycleOrder,
  type SubscriptionFacts,
} from "./lifecycle.ts";

const NOW = new Date("2026-12-01T12:00:00Z");
const CONFIG = { paymentGraceSeconds: 3 * 86400, retentionSeconds: 14 * 86400 };
const PERIOD_END = new Date("2027-01-01T12:00:00Z");
const NEXT_PERIOD_END = new Date("2027-02-01T12:00:00Z");

function order(fields: Partial<LifecycleOrder> = {}): LifecycleOrder {
  return {
    status: "active",
    paid_until: PERIOD_END,
    subscription_status: "active",
    cancel_at_period_end: false,
    cancel_at: null,
    panel_target: "running",
    suspend_reason: null,
    suspend_at: null,
    delete_at: null,
    pterodactyl_server_id: 7,
    statusBeforeSuspension: null,
    ...fields,
  };
}

function sub(fields: Partial<SubscriptionFacts> = {}): SubscriptionFacts {
  return {
    id: "sub_1",
    status: "active",
    cancelAtPeriodEnd: false,
    cancelAt: null,
    currentPeriodEnd: PERIOD_END,
    priceId: "price_1",
    pendingUpdate: false,
    ...fields,
  };
}

function decide(
  o: LifecycleOrder,
  s: SubscriptionFacts,
  e: LifecycleEvent = { type: "subscription_changed" },
) {
  return decideLifecycle(o, s, e, { now: NOW, config: CONFIG });
}

const changed: LifecycleEvent = { type: "subscription_changed" };
const failed: LifecycleEvent = {
  type: "payment_failed",
  invoiceId: "in_2",
  due: { amount: 1200, currency: "eur" },
};

function paid(firstTime = true): LifecycleEvent {
  return {
    type: "invoice_paid",
    invoiceId: "in_2",
    paid: { amount: 1200, currency: "eur" },
    firstTime,
    periodEnd: NEXT_PERIOD_END,
  };
}

const GRACE_END = new Date(NOW.getTime() + CONFIG.paymentGraceSeconds * 1000);
const RETENTION_END = new Date(
  NOW.getTime() + CONFIG.retentionSeconds * 1000,
);

Deno.test("decideLifecycle: renewals", async (t) => {
  await t.step("a paid renewal extends paid-until to its period", () => {
    const change = decide(
      order(),
      sub({ currentPeriodEnd: NEXT_PERIOD_END }),
      paid(),
    );
    assert.deepEqual(change.set, { paid_until: NEXT_PERIOD_END });
    assert.equal(change.to, undefined);
    assert.equal(change.sync, false);
    assert.deepEqual(change.notes.map((n) => n.message), [
      "Payment received: paid until 2027-02-01",
    ]);
  });

  await t.step("an invoice applied before changes nothing", () => {
    const change = decide(
      order({ paid_until: NEXT_PERIOD_END }),
      sub({ currentPeriodEnd: NEXT_PERIOD_END }),
      paid(false),
    );
    assert.deepEqual(change.set, {});
    assert.deepEqual(change.notes, []);
  });

  await t.step("a late old invoice never moves paid-until back", () => {
    const change = decide(
      order({ paid_until: new Date("2027-03-01T00:00:00Z") }),
      sub(),
      paid(),
    );
    assert.equal(change.set.paid_until, undefined);
  });

  await t.step(
    "the payment lifts a billing suspension; the status waits for the panel's unsuspension",
    () => {
      const change = decide(
        order({
          status: "suspended",
          panel_target: "suspended",
          suspend_reason: "billing",
          statusBeforeSuspension: "active",
        }),
        sub({ currentPeriodEnd: NEXT_PERIOD_END }),
        paid(),
      );
      // Never "active" while the server is still suspended on the panel: converge's
      // unsuspend moves the status once the panel confirms.
      assert.equal(change.to, undefined);
      assert.equal(change.set.panel_target, "running");
      assert.equal(change.set.suspend_reason, null);
      assert.deepEqual(change.set.panel_action_due_at, NOW);
      assert.equal(change.sync, true);
      assert.equal(change.provision, false);
    },
  );

  await t.step(
    "a suspended order without a server goes back to paid and is provisioned",
    () => {
      const change = decide(
        order({
          status: "suspended",
          panel_target: "suspended",
          suspend_reason: "billing",
          pterodactyl_server_id: null,
          statusBeforeSuspension: "provisioning",
        }),
        sub(),
        paid(),
      );
      assert.equal(change.to, "paid");
      assert.equal(change.provision, true);
    },
  );

  await t.step("the payment clears a running grace period", () => {
    const change = decide(
      order({ suspend_at: GRACE_END, subscription_status: "past_due" }),
      sub(),
      paid(),
    );
    assert.equal(change.set.suspend_at, null);
    assert.equal(change.set.subscription_status, "active");
    assert.equal(change.sync, false);
  });

  for (const reason of ["dispute", "admin", "canceled"] as const) {
    await t.step(`a ${reason} suspension is not lifted by a payment`, () => {
      const change = decide(
        order({
          status: reason === "canceled" ? "canceled" : "suspended",
          panel_target: "suspended",
          suspend_reason: reason,
        }),
        sub(),
        paid(),
      );
      assert.equal(change.to, undefined);
      assert.equal(change.set.panel_target, undefined);
      assert.equal(change.set.suspend_reason, undefined);
      assert.equal(change.sync, false);
    });
  }
});

Deno.test("decideLifecycle: failed payments", async (t) => {
  await t.step(
    "a failure starts the grace period and tells the customer",
    () => {
      const change = decide(order(), sub({ status: "past_due" }), failed);
      assert.deepEqual(change.set, {
        subscription_status: "past_due",
        suspend_at: GRACE_END,
      });
      assert.equal(change.to, undefined);
      assert.equal(change.sync, false);
      assert.equal(change.notes.length, 1);
      assert.equal(change.notes[0].kind, "payment");
      assert.match(change.notes[0].message, /Your payment failed/);
    },
  );

  await t.step("a second failure keeps the first deadline", () => {
    const first = new Date(NOW.getTime() - 3600_000);
    const change = decide(
      order({ subscription_status: "past_due", suspend_at: first }),
      sub({ status: "past_due" }),
      failed,
    );
    assert.equal(change.set.suspend_at, undefined);
  });

  await t.step(
    "a late failure of a subscription paid since changes nothing",
    () => {
      const change = decide(order(), sub({ status: "active" }), failed);
      assert.deepEqual(change.set, {});
      assert.deepEqual(change.notes.map((n) => n.kind), ["note"]);
    },
  );

  for (const status of ["unpaid", "paused"]) {
    await t.step(`a subscription turned ${status} suspends at once`, () => {
      const change = decide(
        order({ suspend_at: GRACE_END, subscription_status: "past_due" }),
        sub({ status }),
        changed,
      );
      assert.equal(change.to, "suspended");
      assert.equal(change.set.panel_target, "suspended");
      assert.equal(change.set.suspend_reason, "billing");
      assert.equal(change.set.suspend_at, null);
      assert.equal(change.sync, true);
    });
  }

  await t.step("a dispute suspension is not turned into a billing one", () => {
    const change = decide(
      order({
        status: "suspended",
        panel_target: "suspended",
        suspend_reason: "dispute",
      }),
      sub({ status: "unpaid" }),
      changed,
    );
    assert.equal(change.set.suspend_reason, undefined);
  });
});

Deno.test("decideLifecycle: cancellations", async (t) => {
  await t.step(
    "cancel at period end is stored and shown, the server keeps running",
    () => {
      const change = decide(order(), sub({ cancelAtPeriodEnd: true }));
      assert.deepEqual(change.set, { cancel_at_period_end: true });
      assert.equal(change.to, undefined);
      assert.deepEqual(change.notes.map((n) => n.message), [
        "Your subscription ends on 2027-01-01; the server keeps running until then",
      ]);
    },
  );

  await t.step(
    "an ended subscription cancels the order, suspends now, deletes later",
    () => {
      const change = decide(
        order({ cancel_at_period_end: true }),
        sub({ status: "canceled", cancelAtPeriodEnd: true }),
      );
      assert.equal(change.to, "canceled");
      assert.deepEqual(change.set, {
        subscription_status: "canceled",
        suspend_reason: "canceled",
        panel_target: "suspended",
        panel_action_due_at: NOW,
        panel_action_attempts: 0,
        delete_at: RETENTION_END,
      });
      assert.equal(change.sync, true);
    },
  );

  await t.step("the end arriving again keeps the first deletion date", () => {
    const first = new Date(NOW.getTime() - 86400_000);
    const change = decide(
      order({
        status: "canceled",
        subscription_status: "canceled",
        panel_target: "suspended",
        suspend_reason: "canceled",
        delete_at: first,
      }),
      sub({ status: "canceled" }),
    );
    assert.equal(change.to, undefined);
    assert.deepEqual(change.set, {});
    assert.equal(change.sync, false);
  });

  await t.step("a deleted server stays deleted", () => {
    const change = decide(
      order({
        status: "canceled",
        subscription_status: "canceled",
        panel_target: "deleted",
        suspend_reason: "canceled",
        delete_at: null,
      }),
      sub({ status: "canceled" }),
    );
    assert.deepEqual(change.set, {});
  });

  await t.step("a canceled order is not revived by a payment", () => {
    const change = decide(
      order({
        status: "canceled",
        panel_target: "suspended",
        suspend_reason: "canceled",
        delete_at: RETENTION_END,
      }),
      sub({ status: "active" }),
      paid(),
    );
    assert.equal(change.to, undefined);
    assert.equal(change.set.panel_target, undefined);
  });
});

Deno.test("decideLifecycle: disputes and refunds", async (t) => {
  await t.step("a dispute suspends at once and stops the grace clock", () => {
    const change = decide(
      order({ suspend_at: GRACE_END }),
      sub({ status: "past_due" }),
      { type: "dispute", disputeId: "dp_1" },
    );
    assert.equal(change.to, "suspended");
    assert.equal(change.set.panel_target, "suspended");
    assert.equal(change.set.suspend_reason, "dispute");
    assert.equal(change.set.suspend_at, null);
    assert.equal(change.sync, true);
  });

  await t.step("a full refund of the only payment cancels", () => {
    const change = decide(order(), sub(), {
      type: "refund",
      chargeId: "ch_1",
      refunded: { amount: 1200, currency: "eur" },
      full: true,
      onlyPayment: true,
    });
    assert.equal(change.to, "canceled");
    assert.equal(change.cancelSubscription, true);
    assert.equal(change.set.suspend_reason, "canceled");
    assert.deepEqual(change.set.delete_at, RETENTION_END);
  });

  await t.step(
    "a partial refund, or one of several payments, only leaves a note",
    () => {
      for (
        const [full, onlyPayment] of [[false, true], [true, false]] as const
      ) {
        const change = decide(order(), sub(), {
          type: "refund",
          chargeId: "ch_1",
          refunded: { amount: 1200, currency: "eur" },
          full,
          onlyPayment,
        });
        assert.equal(change.to, undefined);
        assert.equal(change.cancelSubscription, false);
        assert.deepEqual(change.set, {});
        assert.equal(change.notes.length, 1);
      }
    },
  );
});

Deno.test("decideLifecycle: out of order and unpaid orders", async (t) => {
  await t.step(
    "a stale past_due event after recovery does not restart the grace",
    () => {
      // The event said past_due; Stripe says active now: nothing to do.
      const change = decide(order(), sub({ status: "active" }), changed);
      assert.deepEqual(change.set, {});
      assert.equal(change.to, undefined);
    },
  );

  await t.step("a pending order is left to the checkout events", () => {
    const change = decide(order({ status: "pending" }), sub(), paid());
    assert.match(change.ignored ?? "", /pending/);
    assert.deepEqual(change.set, {});
  });
});

Deno.test("decideLifecycle: payments in customer words", async (t) => {
  const words = (e: LifecycleEvent, s = sub()) =>
    decide(order(), s, e).notes.flatMap((n) =>
      n.kind === "payment" ? [n.customerMessage ?? n.message] : []
    );

  await t.step("money reads in the currency's units", () => {
    assert.equal(formatMoney({ amount: 1200, currency: "eur" }), "12.00 EUR");
    assert.equal(formatMoney({ amount: 999, currency: "usd" }), "9.99 USD");
    assert.equal(formatMoney({ amount: 500, currency: "jpy" }), "500 JPY");
    assert.equal(formatMoney({ amount: 1234, currency: "kwd" }), "1.234 KWD");
  });

  await t.step("paid, failed and refunded, with amount and currency", () => {
    assert.deepEqual(words(paid()), [
      "Payment of 12.00 EUR received; paid until 2027-02-01",
    ]);
    const [failure] = words(failed, sub({ status: "past_due" }));
    assert.match(failure, /^Payment of 12\.00 EUR failed; we will retry\. /);
    assert.deepEqual(
      words({
        type: "refund",
        chargeId: "ch_1",
        refunded: { amount: 500, currency: "eur" },
        full: false,
        onlyPayment: true,
      }),
      ["Refund of 5.00 EUR issued"],
    );
  });
});
