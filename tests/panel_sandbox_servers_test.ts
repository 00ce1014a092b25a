import assert from "node:assert/strict";
import {
  at,
  callPanel,
  serverPayload,
  startTestPanel,
  TEST_KEYS,
  waitForInstall,
} from "../local/panel-sandbox/testing.ts";

function errorFields(body: unknown): unknown[] {
  const errors = at(body, "errors");
  assert.ok(Array.isArray(errors));
  return errors.map((e) => [at(e, "meta.source_field"), at(e, "meta.rule")]);
}

Deno.test("panel sandbox creates servers like the panel", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step(
      "allocation.default creates an installing server",
      async () => {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({ external_id: "order-1" }),
        });
        assert.equal(r.status, 201);
        assert.equal(at(r.body, "object"), "server");
        assert.equal(at(r.body, "attributes.status"), "installing");
        assert.equal(at(r.body, "attributes.suspended"), false);
        assert.equal(at(r.body, "attributes.node"), 1);
        assert.equal(at(r.body, "attributes.allocation"), 1);
        assert.equal(at(r.body, "attributes.nest"), 1);
        assert.equal(at(r.body, "attributes.external_id"), "order-1");
        assert.equal(at(r.body, "attributes.container.installed"), 0);
        assert.equal(at(r.body, "attributes.limits.memory"), 4096);
        const uuid = String(at(r.body, "attributes.uuid"));
        assert.equal(at(r.body, "attributes.identifier"), uuid.slice(0, 8));
        assert.equal(
          at(r.body, "attributes.container.environment.SERVER_JARFILE"),
          "server.jar",
        );
        const allocation = panel.state().allocations.find((a) => a.id === 1);
        assert.equal(allocation?.server_id, at(r.body, "attributes.id"));
      },
    );

    await t.step("a taken allocation is 422 exists", async () => {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload(),
      });
      assert.equal(r.status, 422);
      assert.deepEqual(errorFields(r.body), [["allocation.default", "exists"]]);
    });

    await t.step("a duplicate external_id is 422 unique", async () => {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({
          external_id: "order-1",
          allocation: { default: 2 },
        }),
      });
      assert.equal(r.status, 422);
      assert.deepEqual(errorFields(r.body), [["external_id", "unique"]]);
    });

    await t.step(
      "a missing required variable fails; defaults are not filled",
      async () => {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({
            allocation: { default: 2 },
            environment: {
              MINECRAFT_VERSION: "latest",
              BUILD_NUMBER: "latest",
            },
          }),
        });
        assert.equal(r.status, 422);
        assert.deepEqual(r.body, {
          errors: [{
            code: "ValidationException",
            status: "422",
            detail: "The Server Jar File variable field is required.",
            meta: {
              source_field: "environment.SERVER_JARFILE",
              rule: "required",
            },
          }],
        });
      },
    );

    await t.step("the regex rule rejects a bad jar name", async () => {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({
          allocation: { default: 2 },
          environment: {
            SERVER_JARFILE: "server.zip",
            BUILD_NUMBER: "latest",
          },
        }),
      });
      assert.deepEqual(errorFields(r.body), [[
        "environment.SERVER_JARFILE",
        "regex",
      ]]);
    });

    await t.step(
      "integer and between rules check the Impostor egg",
      async () => {
        const body = serverPayload({
          egg: 3,
          allocation: { default: 2 },
          environment: { IMPOSTOR_VERSION: "latest", MAX_PLAYERS: "40" },
        });
        const high = await callPanel(
          panel,
          "POST",
          "/api/application/servers",
          {
            body,
          },
        );
        assert.deepEqual(errorFields(high.body), [[
          "environment.MAX_PLAYERS",
          "between",
        ]]);
        const text = await callPanel(
          panel,
          "POST",
          "/api/application/servers",
          {
            body: {
              ...body,
              environment: { IMPOSTOR_VERSION: "1", MAX_PLAYERS: "many" },
            },
          },
        );
        assert.deepEqual(errorFields(text.body)[0], [
          "environment.MAX_PLAYERS",
          "integer",
        ]);
        const ok = await callPanel(panel, "POST", "/api/application/servers", {
          body: {
            ...body,
            environment: { IMPOSTOR_VERSION: "1", MAX_PLAYERS: 10 },
          },
        });
        assert.equal(ok.status, 201);
        assert.equal(at(ok.body, "attributes.nest"), 2);
        assert.equal(
          at(ok.body, "attributes.container.environment.PUBLIC_IP"),
          "",
        );
      },
    );

    await t.step("request rules name every bad field", async () => {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({
          name: "",
          user: 999,
          allocation: { default: 5 },
          limits: { memory: 1024, swap: -2, disk: 1000, io: 5, cpu: 0 },
        }),
      });
      assert.equal(r.status, 422);
      assert.deepEqual(errorFields(r.body), [
        ["name", "required"],
        ["user", "exists"],
        ["limits.swap", "min"],
        ["limits.io", "between"],
      ]);
    });

    await t.step(
      "deploy picks a node in the location and a free port",
      async () => {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({
            allocation: undefined,
            deploy: {
              locations: [2],
              dedicated_ip: false,
              port_range: ["25600-25610"],
            },
          }),
        });
        assert.equal(r.status, 201);
        assert.ok([3, 4].includes(Number(at(r.body, "attributes.node"))));
        const allocation = panel.state().allocations.find((a) =>
          a.id === at(r.body, "attributes.allocation")
        );
        assert.ok(
          allocation && allocation.port >= 25600 && allocation.port <= 25610,
        );
      },
    );

    await t.step(
      "deploy without capacity is 400 and creates nothing",
      async () => {
        const before = panel.state().servers.length;
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({
            allocation: undefined,
            limits: { memory: 999999, swap: 0, disk: 1000, io: 500, cpu: 100 },
            deploy: { locations: [1], dedicated_ip: false, port_range: [] },
          }),
        });
        assert.equal(r.status, 400);
        assert.equal(at(r.body, "errors.0.code"), "NoViableNodeException");
        assert.equal(at(r.body, "errors.0.status"), "400");
        assert.equal(panel.state().servers.length, before);
      },
    );
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox fills nodes before deploying elsewhere", async (t) => {
  const panel = await startTestPanel();
  const deploy = serverPayload({
    allocation: undefined,
    deploy: { locations: [2], dedicated_ip: false, port_range: [] },
  });
  try {
    await t.step("two servers fill node 4's memory", async () => {
      // Node 4 has 8192 MiB and allocations 121..140.
      for (const id of [121, 122]) {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: serverPayload({ allocation: { default: id } }),
        });
        assert.equal(at(r.body, "attributes.node"), 4);
      }
      const node = await callPanel(panel, "GET", "/api/application/nodes/4");
      assert.equal(
        at(node.body, "attributes.allocated_resources.memory"),
        8192,
      );
    });

    await t.step("the third goes to node 3", async () => {
      for (let i = 0; i < 5; i++) {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: deploy,
        });
        assert.equal(at(r.body, "attributes.node"), 3);
      }
    });

    await t.step("node 3 full too: 400 and nothing created", async () => {
      // Node 3 has 32768 MiB: 5 × 4096 used, 3 more fit, then none.
      for (let i = 0; i < 3; i++) {
        const r = await callPanel(panel, "POST", "/api/application/servers", {
          body: deploy,
        });
        assert.equal(r.status, 201);
      }
      const count = panel.state().servers.length;
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: deploy,
      });
      assert.equal(r.status, 400);
      assert.equal(panel.state().servers.length, count);
    });

    await t.step("dedicated_ip needs an unused IP", async () => {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({
          allocation: undefined,
          deploy: { locations: [1], dedicated_ip: true, port_range: [] },
        }),
      });
      assert.equal(r.status, 201);
      const again = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({
          allocation: undefined,
          limits: { memory: 1024, swap: 0, disk: 1000, io: 500, cpu: 100 },
          deploy: { locations: [1], dedicated_ip: true, port_range: [] },
        }),
      });
      assert.equal(again.status, 201);
      assert.notEqual(
        at(again.body, "attributes.node"),
        at(r.body, "attributes.node"),
      );
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox runs the install lifecycle", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 80 });
  const create = async (allocation: number) => {
    const r = await callPanel(panel, "POST", "/api/application/servers", {
      body: serverPayload({ allocation: { default: allocation } }),
    });
    assert.equal(r.status, 201);
    return {
      id: Number(at(r.body, "attributes.id")),
      identifier: String(at(r.body, "attributes.identifier")),
    };
  };
  const resources = (identifier: string) =>
    callPanel(panel, "GET", `/api/client/servers/${identifier}/resources`, {
      key: TEST_KEYS.client,
    });
  try {
    const server = await create(1);

    await t.step("client resources are 409 while installing", async () => {
      const r = await resources(server.identifier);
      assert.equal(r.status, 409);
      assert.deepEqual(r.body, {
        errors: [{
          code: "ServerStateConflictException",
          status: "409",
          detail:
            "This server has not yet completed its installation process, please try again later.",
        }],
      });
    });

    await t.step("installed after the delay, then running", async () => {
      assert.equal(await waitForInstall(panel, server.id), null);
      const view = await callPanel(
        panel,
        "GET",
        `/api/application/servers/${server.id}`,
      );
      assert.equal(at(view.body, "attributes.status"), null);
      assert.equal(at(view.body, "attributes.container.installed"), 1);
      const r = await resources(server.identifier);
      assert.equal(r.status, 200);
      assert.equal(at(r.body, "object"), "stats");
      assert.equal(at(r.body, "attributes.current_state"), "running");
      assert.ok(Number(at(r.body, "attributes.resources.memory_bytes")) > 0);
    });

    await t.step("the power state can be set for tests", async () => {
      const response = await fetch(
        `${panel.url}/_sandbox/servers/${server.id}/power`,
        { method: "POST", body: JSON.stringify({ state: "offline" }) },
      );
      await response.body?.cancel();
      const r = await resources(server.identifier);
      assert.equal(at(r.body, "attributes.current_state"), "offline");
    });

    await t.step("suspend and unsuspend", async () => {
      const s = await callPanel(
        panel,
        "POST",
        `/api/application/servers/${server.id}/suspend`,
      );
      assert.equal(s.status, 204);
      const view = await callPanel(
        panel,
        "GET",
        `/api/application/servers/${server.id}`,
      );
      assert.equal(at(view.body, "attributes.status"), "suspended");
      assert.equal(at(view.body, "attributes.suspended"), true);
      const r = await resources(server.identifier);
      assert.equal(r.status, 409);
      assert.match(String(at(r.body, "errors.0.detail")), /suspended/);
      const u = await callPanel(
        panel,
        "POST",
        `/api/application/servers/${server.id}/unsuspend`,
      );
      assert.equal(u.status, 204);
      assert.equal(panel.state().servers[0].status, null);
    });

    await t.step(
      "reinstall goes back to installing, then installed",
      async () => {
        const r = await callPanel(
          panel,
          "POST",
          `/api/application/servers/${server.id}/reinstall`,
        );
        assert.equal(r.status, 204);
        assert.equal(panel.state().servers[0].status, "installing");
        assert.equal(await waitForInstall(panel, server.id), null);
      },
    );

    await t.step("install_failed when configured", async () => {
      panel.configure({ installOutcome: "failure" });
      const failed = await create(2);
      assert.equal(await waitForInstall(panel, failed.id), "install_failed");
      const r = await resources(failed.identifier);
      assert.equal(r.status, 409);
    });

    await t.step("a user with servers cannot be deleted", async () => {
      const r = await callPanel(panel, "DELETE", "/api/application/users/1");
      assert.equal(r.status, 400);
      assert.equal(at(r.body, "errors.0.code"), "DisplayException");
    });

    await t.step("delete and force delete free the allocations", async () => {
      const d = await callPanel(
        panel,
        "DELETE",
        `/api/application/servers/${server.id}`,
      );
      assert.equal(d.status, 204);
      const f = await callPanel(
        panel,
        "DELETE",
        "/api/application/servers/2/force",
      );
      assert.equal(f.status, 204);
      const state = panel.state();
      assert.equal(state.servers.length, 0);
      assert.equal(
        state.allocations.filter((a) => a.server_id !== null).length,
        0,
      );
      const gone = await callPanel(
        panel,
        "GET",
        `/api/application/servers/${server.id}`,
      );
      assert.equal(gone.status, 404);
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox finds, filters and edits servers", async (t) => {
  const panel = await startTestPanel();
  try {
    const r = await callPanel(panel, "POST", "/api/application/servers", {
      body: serverPayload({ external_id: "order-42", name: "Alpha" }),
    });
    const id = Number(at(r.body, "attributes.id"));

    await t.step("external lookup is exact", async () => {
      const found = await callPanel(
        panel,
        "GET",
        "/api/application/servers/external/order-42",
      );
      assert.equal(at(found.body, "attributes.id"), id);
      const partial = await callPanel(
        panel,
        "GET",
        "/api/application/servers/external/order-4",
      );
      assert.equal(partial.status, 404);
    });

    await t.step("filters and include", async () => {
      const list = await callPanel(
        panel,
        "GET",
        "/api/application/servers?filter[external_id]=order&include=allocations,user,egg,variables,location,node,nest",
      );
      assert.equal(at(list.body, "meta.pagination.total"), 1);
      const rel = at(list.body, "data.0.attributes.relationships");
      assert.equal(at(rel, "user.attributes.username"), "admin");
      assert.equal(at(rel, "allocations.data.0.attributes.assigned"), true);
      assert.equal(at(rel, "location.attributes.short"), "us-east");
      assert.equal(
        at(rel, "variables.data.1.attributes.server_value"),
        "server.jar",
      );
      assert.equal(at(rel, "egg.attributes.id"), 1);
      const none = await callPanel(
        panel,
        "GET",
        "/api/application/servers?filter[name]=zzz",
      );
      assert.equal(at(none.body, "meta.pagination.total"), 0);
    });

    await t.step("PATCH build changes limits", async () => {
      const b = await callPanel(
        panel,
        "PATCH",
        `/api/application/servers/${id}/build`,
        {
          body: {
            allocation: 1,
            memory: 2048,
            swap: 0,
            disk: 10000,
            io: 500,
            cpu: 100,
            feature_limits: { databases: 1, backups: 2 },
          },
        },
      );
      assert.equal(b.status, 200);
      assert.equal(at(b.body, "attributes.limits.memory"), 2048);
      assert.equal(at(b.body, "attributes.feature_limits.backups"), 2);
      const bad = await callPanel(
        panel,
        "PATCH",
        `/api/application/servers/${id}/build`,
        {
          body: {
            allocation: 1,
            limits: { memory: -5 },
            feature_limits: { databases: 0, backups: 0 },
          },
        },
      );
      assert.equal(bad.status, 422);
      assert.deepEqual(errorFields(bad.body)[0], ["limits.memory", "min"]);
    });

    await t.step("PATCH details renames", async () => {
      const d = await callPanel(
        panel,
        "PATCH",
        `/api/application/servers/${id}/details`,
        {
          body: { name: "Beta", user: 1, external_id: "order-42" },
        },
      );
      assert.equal(d.status, 200);
      assert.equal(at(d.body, "attributes.name"), "Beta");
    });
  } finally {
    await panel.close();
  }
});
