import assert from "node:assert/strict";
import { parseEnv } from "../platform/config.ts";
import {
  customerMessage,
  observe,
  panelActionFor,
  SERVER_MISSING,
  statusForServer,
  statusWhenSuspended,
} from "./lifecycle.ts";
import { lifecycleEnv } from "./lifecycle_config.ts";
import type { Order } from "./orders.ts";

type Observed = Parameters<typeof observe>[0];

function orderLike(fields: Partial<Observed> = {}): Observed {
  return {
    status: "active",
    panel_target: "running",
    panel_state: "installed",
    panel_action_due_at: null,
    ...fields,
  };
}

const installed = { status: null, suspended: false };
const suspended = { status: "suspended", suspended: true };

const LIMITS = {
  memory_mb: 2048,
  disk_mb: 10_240,
  cpu_percent: 100,
  swap_mb: 0,
  io_weight: 500,
  databases: 1,
  backups: 1,
  allocations: 1,
};
const CONFIRMED = {
  memory: 2048,
  disk: 10_240,
  cpu: 100,
  swap: 0,
  io: 500,
  databases: 1,
  backups: 1,
  allocations: 1,
};

Deno.test("panelActionFor asks the panel for what the target needs", async (t) => {
  const base = {
    pterodactyl_server_id: 7,
    panel_state: "installed",
    panel_limits: CONFIRMED,
    ...LIMITS,
  } as const;
  await t.step("each target its action", () => {
    assert.equal(
      panelActionFor({ ...base, panel_target: "suspended" }),
      "suspend",
    );
    assert.equal(
      panelActionFor({ ...base, panel_target: "running" }),
      "unsuspend",
    );
    assert.equal(
      panelActionFor({ ...base, panel_target: "deleted" }),
      "delete",
    );
  });
  await t.step("a build once the server is as its target asks", () => {
    const grown = { ...base, memory_mb: 4096 };
    assert.equal(
      panelActionFor({ ...grown, panel_target: "running" }),
      "build",
    );
    assert.equal(
      panelActionFor({
        ...grown,
        panel_target: "running",
        panel_state: "suspended",
      }),
      "unsuspend",
    );
    assert.equal(
      panelActionFor({ ...grown, panel_target: "suspended" }),
      "suspend",
    );
    assert.equal(
      panelActionFor({
        ...grown,
        panel_target: "suspended",
        panel_state: "suspended",
      }),
      "build",
    );
    assert.equal(
      panelActionFor({ ...grown, panel_target: "deleted" }),
      "delete",
    );
    // Nothing confirmed yet: the create sends the limits itself.
    assert.equal(
      panelActionFor({ ...grown, panel_limits: null, panel_target: "running" }),
      "unsuspend",
    );
  });
  await t.step("nothing without a server or once deleted", () => {
    assert.equal(
      panelActionFor({
        ...base,
        pterodactyl_server_id: null,
        panel_target: "suspended",
      }),
      null,
    );
    assert.equal(
      panelActionFor({
        ...base,
        panel_state: "deleted",
        panel_target: "deleted",
      }),
      null,
    );
  });
});

Deno.test("status after a suspension and after an unsuspension", () => {
  assert.equal(statusWhenSuspended("active"), "suspended");
  assert.equal(statusWhenSuspended("installing"), "suspended");
  assert.equal(statusWhenSuspended("canceled"), null);
  assert.equal(statusWhenSuspended("suspended"), null);
  assert.equal(statusForServer(installed), "active");
  assert.equal(
    statusForServer({ status: "installing", suspended: false }),
    "installing",
  );
  assert.equal(
    statusForServer({ status: "install_failed", suspended: false }),
    "error",
  );
});

Deno.test("observe turns the panel's view into order changes", async (t) => {
  await t.step("an installed server makes an installing order active", () => {
    const change = observe(
      orderLike({ status: "installing", panel_state: "installing" }),
      installed,
    );
    assert.equal(change?.to, "active");
    assert.equal(change?.panel_state, "installed");
  });
  await t.step(
    "a failed install is an error with the cause and an alert",
    () => {
      const change = observe(
        orderLike({ status: "installing", panel_state: "installing" }),
        { status: "install_failed", suspended: false },
      );
      assert.equal(change?.to, "error");
      assert.match(change?.error_message ?? "", /"install_failed"/);
      assert.equal(change?.alert, "Server installation failed");
    },
  );
  await t.step("a server gone is an error once, with an alert", () => {
    const change = observe(orderLike(), null);
    assert.equal(change?.to, "error");
    assert.equal(change?.error_message, SERVER_MISSING);
    assert.ok(change?.alert);
    assert.equal(observe(orderLike({ panel_state: "missing" }), null), null);
  });
  await t.step("a server gone is the end of a deletion", () => {
    const change = observe(
      orderLike({ status: "canceled", panel_target: "deleted" }),
      null,
    );
    assert.equal(change?.panel_state, "deleted");
    assert.equal(change?.to, undefined);
    assert.equal(change?.alert, undefined);
  });
  await t.step("a panel changed by hand is acted on again", () => {
    assert.equal(observe(orderLike(), suspended)?.reconverge, true);
    assert.equal(
      observe(
        orderLike({
          status: "suspended",
          panel_target: "suspended",
          panel_state: "suspended",
        }),
        installed,
      )?.reconverge,
      true,
    );
  });
  await t.step(
    "an action already due is left to run; a match changes nothing",
    () => {
      assert.equal(
        observe(orderLike({ panel_action_due_at: new Date() }), suspended)
          ?.reconverge,
        undefined,
      );
      assert.equal(observe(orderLike(), installed), null);
      assert.equal(
        observe(
          orderLike({ status: "installing", panel_state: "installing" }),
          {
            status: "installing",
            suspended: false,
          },
        ),
        null,
      );
    },
  );
});

Deno.test("customerMessage says what the customer needs, never internals", () => {
  const base: Parameters<typeof customerMessage>[0] = {
    status: "active",
    suspend_reason: null,
    suspend_at: null,
    delete_at: null,
    paid_until: null,
    cancel_at_period_end: false,
    gave_up_at: null,
    panel_state: "installed",
    panel_target: "running",
  };
  assert.equal(customerMessage(base), "Your server is running");
  assert.match(
    customerMessage({ ...base, suspend_at: new Date("2026-12-03T10:00:00Z") }),
    /before 2026-12-03/,
  );
  assert.match(
    customerMessage({
      ...base,
      status: "suspended",
      suspend_reason: "billing",
      panel_target: "suspended",
    }),
    /non-payment/,
  );
  // Lifted, the panel not yet confirming: never "running" before it runs.
  assert.match(
    customerMessage({ ...base, status: "suspended", suspend_reason: null }),
    /resuming/,
  );
  assert.match(
    customerMessage({
      ...base,
      status: "canceled",
      delete_at: new Date("2026-12-14T00:00:00Z"),
    }),
    /kept until 2026-12-14/,
  );
  const failed = { ...base, status: "error" } as const satisfies Partial<
    Order
  >;
  assert.match(customerMessage(failed), /retrying/);
  assert.match(
    customerMessage({ ...failed, gave_up_at: new Date() }),
    /alerted/,
  );
});

Deno.test("lifecycle env: defaults, and a bad value is named", () => {
  const config = parseEnv(lifecycleEnv, {});
  assert.equal(config.PAYMENT_GRACE_SECONDS, 259_200);
  assert.equal(config.RETENTION_SECONDS, 1_209_600);
  assert.equal(config.PROVISION_MAX_ATTEMPTS, 8);
  assert.equal(config.SWEEP_INTERVAL_SECONDS, 15);
  assert.equal(config.PTERODACTYL_CLIENT_API_KEY, undefined);
  assert.equal(
    parseEnv(lifecycleEnv, { PAYMENT_GRACE_SECONDS: "60" })
      .PAYMENT_GRACE_SECONDS,
    60,
  );
  assert.throws(
    () => parseEnv(lifecycleEnv, { PTERODACTYL_CLIENT_API_KEY: "ptla_x" }),
    /PTERODACTYL_CLIENT_API_KEY/,
  );
});
