import assert from "node:assert/strict";
import { type Check, diagnose, NEEDS_NO_ONE } from "./causes.ts";
import type { OrderFacts } from "./facts.ts";
import type { PlanChange } from "../orders/plan_changes.ts";
import {
  type DoctorResult,
  exitStatus,
  orderReport,
  renderText,
} from "./render.ts";

const NOW = new Date("2026-12-05T12:00:00Z");
const ORDER_ID = "11111111-1111-4111-8111-111111111111";
const USER_ID = "22222222-2222-4222-8222-222222222222";
/** The metadata a checkout session of the fixture order carries. */
const METADATA = {
  order_id: ORDER_ID,
  user_id: USER_ID,
  plan_id: "mc-java-4gb",
  term: "monthly",
  region: "eu-west",
  server_name: "Survival",
};
const minutes = (n: number) => new Date(NOW.getTime() + n * 60_000);

type Patch = {
  order?: Partial<OrderFacts["order"]>;
  stripe?: Partial<OrderFacts["stripe"]>;
  panel?: Partial<OrderFacts["panel"]>;
  shop?: Partial<OrderFacts["shop"]>;
  timeline?: OrderFacts["timeline"];
};

/** Facts of a healthy active order; each case changes what it names. */
function facts(patch: Patch = {}): OrderFacts {
  const order = {
    id: ORDER_ID,
    user_id: USER_ID,
    email: "alice@example.com",
    plan_id: "mc-java-4gb",
    item_type: "game",
    term: "monthly",
    region: "eu-west",
    server_name: "Survival",
    status: "active",
    stripe_price_id: "price_1",
    amount_cents: 1200,
    currency: "eur",
    memory_mb: 4096,
    disk_mb: 20480,
    stripe_checkout_session_id: "cs_test_1",
    stripe_checkout_url: null,
    checkout_expires_at: minutes(-30),
    stripe_customer_id: "cus_1",
    stripe_subscription_id: "sub_1",
    node_id: 3,
    pterodactyl_server_id: 7,
    pterodactyl_server_identifier: "abcd1234",
    error_message: null,
    customer_message: null,
    attempt_count: 1,
    next_attempt_at: null,
    paid_at: minutes(-60),
    paid_until: minutes(60 * 24 * 30),
    subscription_status: "active",
    cancel_at_period_end: false,
    panel_target: "running",
    suspend_reason: null,
    suspend_at: null,
    delete_at: null,
    delete_warned_at: null,
    panel_state: "installed",
    panel_seen_at: minutes(-1),
    panel_action_due_at: null,
    panel_action_attempts: 0,
    was_running: null,
    gave_up_at: null,
    subscription_cancel_due_at: null,
    created_at: minutes(-61),
    updated_at: minutes(-50),
    ...patch.order,
  } as OrderFacts["order"];
  return {
    now: NOW,
    supabaseUrl: "https://proj.supabase.co",
    panelUrl: "https://panel.example.com",
    order,
    timeline: patch.timeline ?? [],
    stripe: {
      session: {
        id: "cs_test_1",
        status: "complete",
        payment_status: "paid",
        metadata: METADATA,
        subscription: "sub_1",
        expires_at: minutes(-30),
      },
      subscription: {
        id: "sub_1",
        status: "active",
        cancel_at_period_end: false,
        cancel_at: null,
        current_period_end: order.paid_until,
        latest_invoice: {
          id: "in_1",
          status: "paid",
          amount_due: 1200,
          currency: "eur",
        },
      },
      events: [{
        id: "evt_1",
        type: "checkout.session.completed",
        created: minutes(-60),
        pending_webhooks: 0,
        outcome: "processed",
      }],
      ...patch.stripe,
    },
    panel: {
      linkedUserId: 5,
      user: { id: 5, email: "alice@example.com" },
      server: {
        id: 7,
        identifier: "abcd1234",
        status: null,
        suspended: false,
        node: 1,
        user: 5,
        memory: 4096,
        disk: 20480,
      },
      ...patch.panel,
    },
    shop: {
      lastSweepAt: minutes(-1),
      undelivered: { supported: true, events: [] },
      ...patch.shop,
    },
  };
}

function code(patch: Patch): string {
  return diagnose(facts(patch)).cause.code;
}

function checkOf(f: OrderFacts, id: string): Check {
  return diagnose(f).checks.find((c) => c.id === id)!;
}

const PENDING: Patch["order"] = {
  status: "pending",
  stripe_subscription_id: null,
  pterodactyl_server_id: null,
  pterodactyl_server_identifier: null,
  paid_at: null,
  paid_until: null,
  panel_state: null,
  checkout_expires_at: minutes(20),
};
const OPEN_SESSION = {
  id: "cs_test_1",
  status: "open",
  payment_status: "unpaid",
  metadata: METADATA,
  subscription: null,
  expires_at: minutes(20),
};
const NOT_ASKED = { linkedUserId: null, user: undefined, server: undefined };

Deno.test("a healthy active order is ok, every check passes", () => {
  const d = diagnose(facts());
  assert.equal(d.cause.code, "ok");
  assert.equal(d.cause.fix, "Nothing to do");
  assert.deepEqual(d.checks.filter((c) => c.ok !== true).map((c) => c.id), []);
  assert.deepEqual(d.unreachable, []);
});

Deno.test("before payment", async (t) => {
  await t.step("an open checkout is awaiting_payment", () => {
    assert.equal(
      code({
        order: PENDING,
        stripe: { session: OPEN_SESSION, subscription: undefined, events: [] },
        panel: NOT_ASKED,
      }),
      "awaiting_payment",
    );
  });
  await t.step("an expired session is checkout_expired", () => {
    assert.equal(
      code({
        order: { ...PENDING, status: "expired" },
        stripe: {
          session: { ...OPEN_SESSION, status: "expired" },
          subscription: undefined,
          events: [],
        },
        panel: NOT_ASKED,
      }),
      "checkout_expired",
    );
  });
  await t.step(
    "a paid session whose event was never recorded is webhook_not_delivered",
    () => {
      const d = diagnose(facts({
        order: PENDING,
        stripe: {
          events: [{
            id: "evt_9",
            type: "checkout.session.completed",
            created: minutes(-3),
            pending_webhooks: 1,
            outcome: null,
          }],
        },
        panel: NOT_ASKED,
      }));
      assert.equal(d.cause.code, "webhook_not_delivered");
      assert.match(d.cause.message, /evt_9 \(pending_webhooks 1\)/);
      assert.match(
        d.cause.fix,
        /proj\.supabase\.co\/functions\/v1\/stripe-webhook/,
      );
      assert.match(d.cause.fix, /applies evt_9/);
    },
  );
  await t.step("metadata naming another order is payment_mismatch", () => {
    const d = diagnose(facts({
      order: PENDING,
      stripe: {
        session: {
          ...facts().stripe.session!,
          metadata: { ...METADATA, order_id: "other" },
        },
      },
      panel: NOT_ASKED,
    }));
    assert.equal(d.cause.code, "payment_mismatch");
    assert.match(d.cause.message, /order_id is "other"/);
    assert.equal(checkOf(facts(), "checkout_session").ok, true);
  });
  await t.step(
    "Stripe unreachable on a pending order is stripe_unreachable",
    () => {
      const d = diagnose(facts({
        order: PENDING,
        stripe: { error: "Stripe could not be read: timeout" },
        panel: NOT_ASKED,
      }));
      assert.equal(d.cause.code, "stripe_unreachable");
      assert.deepEqual(d.unreachable, ["stripe"]);
    },
  );
});

function errorOrder(error_message: string, extra: Patch["order"] = {}): Patch {
  return {
    order: {
      status: "error",
      error_message,
      attempt_count: 2,
      next_attempt_at: minutes(2),
      pterodactyl_server_id: null,
      pterodactyl_server_identifier: null,
      panel_state: null,
      ...extra,
    },
    panel: { server: null },
  };
}

Deno.test("provisioning errors, by the panel's own words", async (t) => {
  await t.step(
    "a transient panel error is provisioning_retrying with the next attempt",
    () => {
      const d = diagnose(facts(errorOrder(
        "Creating the server on the panel failed: POST /servers: panel answered 503: Wings is restarting",
      )));
      assert.equal(d.cause.code, "provisioning_retrying");
      assert.match(
        d.cause.message,
        /Wings is restarting; next attempt at 2026-12-05T12:02:00Z/,
      );
      assert.match(
        d.cause.fix,
        /servers-provision' -H "apikey: \$SECRET_KEY" .* -d '\{"order_id":"11111111-1111-4111-8111-111111111111"\}'/,
      );
    },
  );
  await t.step("after the last attempt it is provisioning_gave_up", () => {
    assert.equal(
      code(errorOrder("Creating the server on the panel failed: x", {
        gave_up_at: minutes(-1),
        next_attempt_at: null,
      })),
      "provisioning_gave_up",
    );
  });
  await t.step("no node or allocation is no_capacity", () => {
    assert.equal(
      code(errorOrder(
        'Choosing a node failed: no enabled node in region "eu-west" has 4096 MB memory',
      )),
      "no_capacity",
    );
    assert.equal(
      code(
        errorOrder(
          'Finding a free allocation failed: node "eu-west-1" has no free allocation',
        ),
      ),
      "no_capacity",
    );
  });
  await t.step("no answer is panel_unreachable", () => {
    assert.equal(
      code(errorOrder(
        "Ensuring the x failed: GET /users/external/u: the panel could not be reached",
      )),
      "panel_unreachable",
    );
  });
  await t.step("a 422 is panel_rejected with the field and rule", () => {
    const d = diagnose(facts({
      ...errorOrder(
        "Creating the server on the panel failed: POST /servers: panel answered 422: The environment.VERSION field is invalid.",
      ),
      timeline: [{
        at: minutes(-1),
        kind: "provision_attempt",
        message: "Attempt 2 failed",
        from_status: null,
        to_status: null,
        detail: {
          error: "x",
          panel_status: 422,
          panel_field: "environment.VERSION",
          panel_rule: "regex",
        },
      }],
    }));
    assert.equal(d.cause.code, "panel_rejected");
    assert.match(d.cause.message, /field "environment\.VERSION", rule "regex"/);
  });
  await t.step("a missing egg is egg_missing", () => {
    assert.equal(
      code(errorOrder(
        'Reading the egg failed: plan "mc-java-4gb" uses egg 5 of nest 1, which the panel does not have',
      )),
      "egg_missing",
    );
  });
  await t.step("a failed account step is panel_account_problem", () => {
    assert.equal(
      code(errorOrder(
        "Ensuring the customer's panel account failed: POST /users: panel answered 422: email taken",
      )),
      "panel_account_problem",
    );
  });
  await t.step(
    "a linked panel user gone before provisioning is panel_account_problem",
    () => {
      assert.equal(
        code({
          order: {
            status: "paid",
            pterodactyl_server_id: null,
            panel_state: null,
          },
          panel: { user: null, server: null },
        }),
        "panel_account_problem",
      );
    },
  );
  await t.step("a failed install seen by the sweep is install_failed", () => {
    assert.equal(
      code(
        errorOrder(
          'installation failed on the panel (status "install_failed")',
          {
            pterodactyl_server_id: 7,
          },
        ),
      ),
      "install_failed",
    );
  });
  await t.step(
    "a server gone, as the sweep recorded it, is server_missing",
    () => {
      assert.equal(
        code(
          errorOrder("server missing on the panel", {
            pterodactyl_server_id: 7,
          }),
        ),
        "server_missing",
      );
    },
  );
});

Deno.test("after provisioning, the panel", async (t) => {
  await t.step("a server still installing is installing", () => {
    assert.equal(
      code({
        order: { status: "installing", panel_state: "installing" },
        panel: { server: { ...facts().panel.server!, status: "installing" } },
      }),
      "installing",
    );
  });
  await t.step("a server the panel failed to install is install_failed", () => {
    const d = diagnose(facts({
      order: { status: "installing" },
      panel: { server: { ...facts().panel.server!, status: "install_failed" } },
    }));
    assert.equal(d.cause.code, "install_failed");
    assert.match(d.cause.fix, /abcd1234 → Manage → Reinstall/);
  });
  await t.step("no server on the panel is server_missing", () => {
    const d = diagnose(facts({ panel: { server: null } }));
    assert.equal(d.cause.code, "server_missing");
    assert.equal(d.checks.find((c) => c.id === "panel_server")!.ok, false);
  });
  await t.step("the panel not answering is panel_unreachable", () => {
    const d = diagnose(facts({
      panel: { error: "the panel could not be read: no answer within 5000 ms" },
    }));
    assert.equal(d.cause.code, "panel_unreachable");
    assert.deepEqual(d.unreachable, ["panel"]);
  });
  await t.step(
    "suspended on the panel while it should run is state_drift",
    () => {
      const d = diagnose(facts({
        panel: { server: { ...facts().panel.server!, suspended: true } },
      }));
      assert.equal(d.cause.code, "state_drift");
      assert.match(d.cause.fix, /sync-server-status/);
    },
  );
  await t.step("a panel action under way is not drift", () => {
    assert.equal(
      code({
        order: { panel_action_due_at: minutes(-1) },
        panel: { server: { ...facts().panel.server!, suspended: true } },
      }),
      "ok",
    );
  });
  await t.step("limits other than the plan sold are state_drift", () => {
    assert.equal(
      code({ panel: { server: { ...facts().panel.server!, memory: 2048 } } }),
      "state_drift",
    );
  });
});

Deno.test("the lifecycle after payment", async (t) => {
  await t.step(
    "a failed payment in grace is payment_grace with the time",
    () => {
      const d = diagnose(facts({
        order: { suspend_at: minutes(60 * 72) },
        stripe: {
          subscription: { ...facts().stripe.subscription!, status: "past_due" },
        },
      }));
      assert.equal(d.cause.code, "payment_grace");
      assert.match(d.cause.message, /until 2026-12-08T12:00:00Z/);
    },
  );
  const suspended = (reason: string) => ({
    order: {
      status: "suspended",
      panel_target: "suspended",
      suspend_reason: reason,
      panel_state: "suspended",
    } as Patch["order"],
    panel: { server: { ...facts().panel.server!, suspended: true } },
    stripe: {
      subscription: {
        ...facts().stripe.subscription!,
        status: reason === "billing" ? "unpaid" : "active",
      },
    },
  });
  await t.step("billing, dispute, admin suspensions", () => {
    assert.equal(code(suspended("billing")), "suspended_billing");
    assert.equal(code(suspended("dispute")), "suspended_dispute");
    assert.equal(code(suspended("admin")), "suspended_admin");
    assert.match(
      diagnose(facts(suspended("dispute"))).cause.fix,
      /"lift_suspension":true/,
    );
  });
  const canceled: Patch = {
    order: {
      status: "canceled",
      panel_target: "suspended",
      suspend_reason: "canceled",
      delete_at: minutes(60 * 24 * 14),
      panel_state: "suspended",
    },
    panel: { server: { ...facts().panel.server!, suspended: true } },
    stripe: {
      subscription: { ...facts().stripe.subscription!, status: "canceled" },
    },
  };
  await t.step(
    "a cancellation is canceled_pending_deletion with the time",
    () => {
      const d = diagnose(facts(canceled));
      assert.equal(d.cause.code, "canceled_pending_deletion");
      assert.match(d.cause.message, /deleted at 2026-12-19T12:00:00Z/);
    },
  );
  await t.step("a deleted server is deleted", () => {
    assert.equal(
      code({
        ...canceled,
        order: {
          ...canceled.order,
          panel_target: "deleted",
          panel_state: "deleted",
        },
        panel: { server: null },
      }),
      "deleted",
    );
  });
  await t.step(
    "Stripe canceled, the order active: state_drift naming the lost event",
    () => {
      const d = diagnose(facts({
        stripe: {
          subscription: { ...facts().stripe.subscription!, status: "canceled" },
          events: [{
            id: "evt_del",
            type: "customer.subscription.deleted",
            created: minutes(-10),
            pending_webhooks: 1,
            outcome: null,
          }],
        },
      }));
      assert.equal(d.cause.code, "state_drift");
      assert.match(d.cause.message, /customer\.subscription\.deleted evt_del/);
      assert.match(d.cause.fix, /Resend evt_del/);
    },
  );
  await t.step(
    "a renewal Stripe has and the order lacks is state_drift",
    () => {
      assert.equal(
        code({
          stripe: {
            subscription: {
              ...facts().stripe.subscription!,
              current_period_end: minutes(60 * 24 * 60),
            },
          },
        }),
        "state_drift",
      );
    },
  );
  await t.step("past_due without grace is state_drift", () => {
    assert.equal(
      code({
        stripe: {
          subscription: { ...facts().stripe.subscription!, status: "past_due" },
        },
      }),
      "state_drift",
    );
  });
});

Deno.test("shop problems are failing checks whatever the order's cause", async (t) => {
  await t.step("a sweep older than five minutes", () => {
    const f = facts({ shop: { lastSweepAt: minutes(-6) } });
    assert.equal(diagnose(f).cause.code, "ok");
    assert.equal(checkOf(f, "shop_sweep").ok, false);
    assert.equal(
      checkOf(facts({ shop: { lastSweepAt: null } }), "shop_sweep").ok,
      false,
    );
    assert.equal(
      checkOf(facts({ shop: { lastSweepAt: minutes(-4) } }), "shop_sweep").ok,
      true,
    );
  });
  await t.step(
    "undelivered events; unknown when Stripe ignored the filter",
    () => {
      const f = facts({
        shop: {
          undelivered: {
            supported: true,
            events: [{
              id: "evt_x",
              type: "invoice.paid",
              created: minutes(-10),
            }],
          },
        },
      });
      assert.equal(checkOf(f, "shop_webhook_delivery").ok, false);
      assert.match(
        checkOf(f, "shop_webhook_delivery").detail,
        /evt_x invoice\.paid/,
      );
      const unknown = facts({
        shop: {
          undelivered: { supported: false, reason: "ignored the filter" },
        },
      });
      assert.equal(checkOf(unknown, "shop_webhook_delivery").ok, null);
    },
  );
});

Deno.test("exit status and text rendering", () => {
  const report = (f: OrderFacts) => orderReport(f.order, diagnose(f));
  const result = (orders: OrderFacts[]): DoctorResult => ({
    report: { query: "q", orders: orders.map(report) },
    unreachable: [],
    emails: {},
  });
  assert.equal(exitStatus(result([facts()])), 0);
  assert.equal(
    exitStatus(result([facts(), facts({ panel: { server: null } })])),
    1,
  );
  assert.equal(exitStatus(result([])), 2);
  assert.equal(exitStatus({ ...result([facts()]), unreachable: ["panel"] }), 2);
  assert.equal(exitStatus({ ...result([]), badInput: "bad" }), 2);
  for (const code of NEEDS_NO_ONE) assert.ok(code.length > 0);
  const plain = renderText(result([facts({ panel: { server: null } })]), {
    color: false,
  });
  assert.match(plain, /✗ panel_server/);
  assert.match(plain, /✓ order/);
  assert.match(plain, /cause: server_missing/);
  assert.ok(!plain.includes("\x1b["));
  const coloured = renderText(result([facts()]), { color: true });
  assert.ok(coloured.includes("\x1b[32m✓\x1b[0m"));
});

Deno.test("plan changes and server builds", async (t) => {
  const change = {
    id: "33333333-3333-4333-8333-333333333333",
    order_id: ORDER_ID,
    user_id: USER_ID,
    kind: "upgrade" as PlanChange["kind"],
    status: "awaiting_payment" as PlanChange["status"],
    from_plan_id: "mc-java-4gb",
    to_plan_id: "mc-java-8gb",
    from_price_id: "price_4",
    to_price_id: "price_8",
    amount_cents: 1899,
    currency: "usd",
    limits: {
      memory_mb: 8192,
      disk_mb: 40960,
      cpu_percent: 300,
      swap_mb: 0,
      io_weight: 500,
      databases: 3,
      backups: 3,
      allocations: 2,
    },
    amount_due_cents: 880,
    node_id: 3,
    reserve_memory_mb: 4096,
    reserve_disk_mb: 20480,
    proration_date: minutes(-5),
    effective_at: null,
    expires_at: minutes(60 * 23),
    stripe_invoice_id: "in_up",
    stripe_schedule_id: null,
    idempotency_key: "plan-change-3",
    next_attempt_at: minutes(60 * 23 + 5),
    attempts: 0,
    error_message: null,
    customer_message: null,
    actor: "change-server-plan",
    created_at: minutes(-5),
    updated_at: minutes(-5),
    settled_at: null,
  } satisfies PlanChange;
  const withChange = (patch: Partial<PlanChange>): OrderFacts => ({
    ...facts(),
    planChange: { ...change, ...patch },
  });

  await t.step("an upgrade waiting for its payment needs no one", () => {
    const { cause } = diagnose(withChange({}));
    assert.equal(cause.code, "plan_change_pending");
    assert.match(cause.message, /in_up/);
    assert.match(cause.message, /4096 MB memory and 20480 MB disk are held/);
    assert.ok(NEEDS_NO_ONE.has("plan_change_pending"));
  });
  await t.step("a scheduled downgrade names its date", () => {
    const { cause } = diagnose(withChange({
      kind: "downgrade",
      status: "scheduled",
      to_plan_id: "mc-java-2gb",
      effective_at: minutes(60 * 24 * 30),
      stripe_schedule_id: "sub_sched_1",
    }));
    assert.equal(cause.code, "plan_change_pending");
    assert.match(cause.message, /sub_sched_1/);
    assert.match(
      cause.message,
      /2027-01-04T12:00:00Z/,
    );
  });
  await t.step("a change Stripe keeps failing, and one it refused", () => {
    const failing = diagnose(withChange({
      status: "requested",
      attempts: 2,
      error_message: "Connection error",
    })).cause;
    assert.equal(failing.code, "plan_change_failing");
    assert.match(failing.fix, /plan-change-3/);
    const refused = diagnose(withChange({
      status: "failed",
      error_message: "Stripe refused the change: No such price",
      updated_at: minutes(-10),
    })).cause;
    assert.equal(refused.code, "plan_change_failed");
    assert.match(refused.message, /No such price/);
    // A requested change not yet retried, or an old failure, is not the cause.
    assert.equal(
      diagnose(withChange({ status: "requested" })).cause.code,
      "ok",
    );
    assert.equal(
      diagnose(withChange({
        status: "failed",
        updated_at: minutes(-60 * 24 * 8),
      })).cause.code,
      "ok",
    );
  });
  await t.step("a build the panel keeps refusing, a disk too full", () => {
    const confirmed = {
      memory: 4096,
      swap: 0,
      disk: 20480,
      io: 500,
      cpu: 200,
      databases: 2,
      backups: 2,
      allocations: 1,
    };
    const shrinking = facts({
      order: {
        memory_mb: 2048,
        disk_mb: 10240,
        cpu_percent: 100,
        swap_mb: 0,
        io_weight: 500,
        databases: 1,
        backups: 1,
        allocations: 1,
        panel_limits: confirmed,
        panel_action_attempts: 3,
        panel_action_due_at: minutes(10),
      },
      timeline: [{
        at: minutes(-1),
        kind: "panel",
        message:
          "Panel build failed (attempt 3): the server uses 15000 MB of disk, more than the 10240 MB of its new plan; it keeps its disk until files are removed",
        from_status: null,
        to_status: null,
        detail: {},
      }],
    });
    const { cause } = diagnose(shrinking);
    assert.equal(cause.code, "build_failing");
    assert.match(cause.message, /15000 MB of disk/);
    assert.match(cause.fix, /removes files/);
    // While the first try is due, the sweep is on it: no cause, no drift.
    const due = facts({
      order: {
        ...shrinking.order,
        panel_action_attempts: 0,
        panel_action_due_at: minutes(0),
      },
    });
    assert.equal(diagnose(due).cause.code, "ok");
  });
});
