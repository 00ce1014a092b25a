/**
 * `PATCH /api/application/servers/{id}/build` as panel v1.11.8 answers it
 * (`UpdateServerBuildConfigurationRequest`, `BuildModificationService`), the node's
 * allocated resources after a build change, and the usage control behind the
 * client API's resources.
 */
import assert from "node:assert/strict";
import {
  at,
  callPanel,
  serverPayload,
  startTestPanel,
  TEST_KEYS,
  waitForInstall,
} from "../local/panel-sandbox/testing.ts";
import type { PanelSandbox } from "../local/panel-sandbox/mod.ts";

/** A whole build body for allocation 1 with 4096 MiB, overridden by `patch`. */
function build(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    allocation: 1,
    memory: 4096,
    swap: 0,
    disk: 20000,
    io: 500,
    cpu: 200,
    threads: null,
    feature_limits: { databases: 0, allocations: 1, backups: 1 },
    ...patch,
  };
}

function errors(body: unknown): unknown[] {
  const list = at(body, "errors");
  assert.ok(Array.isArray(list), JSON.stringify(body));
  return list.map((e) => [
    at(e, "code"),
    at(e, "status"),
    at(e, "meta.source_field"),
    at(e, "meta.rule"),
    at(e, "detail"),
  ]);
}

async function patchBuild(panel: PanelSandbox, id: number, body: unknown) {
  return await callPanel(
    panel,
    "PATCH",
    `/api/application/servers/${id}/build`,
    {
      body,
    },
  );
}

async function nodeAllocated(panel: PanelSandbox, node: number) {
  const r = await callPanel(panel, "GET", `/api/application/nodes/${node}`);
  return at(r.body, "attributes.allocated_resources");
}

Deno.test("panel sandbox validates build changes like panel v1.11", async (t) => {
  const panel = await startTestPanel();
  try {
    const created = await callPanel(panel, "POST", "/api/application/servers", {
      body: serverPayload(),
    });
    const id = Number(at(created.body, "attributes.id"));
    await waitForInstall(panel, id);
    const before = structuredClone(
      panel.state().servers.find((s) => s.id === id),
    );
    const unchanged = () =>
      assert.deepEqual(panel.state().servers.find((s) => s.id === id), before);

    await t.step("allocation and feature_limits are required", async () => {
      const r = await patchBuild(panel, id, { memory: 1024 });
      assert.equal(r.status, 422);
      assert.deepEqual(errors(r.body), [
        [
          "ValidationException",
          "422",
          "allocation",
          "required",
          "The allocation field is required.",
        ],
        [
          "ValidationException",
          "422",
          "swap",
          "required_without",
          "The swap field is required when limits is not present.",
        ],
        [
          "ValidationException",
          "422",
          "io",
          "required_without",
          "The io field is required when limits is not present.",
        ],
        [
          "ValidationException",
          "422",
          "cpu",
          "required_without",
          "The cpu field is required when limits is not present.",
        ],
        [
          "ValidationException",
          "422",
          "disk",
          "required_without",
          "The disk field is required when limits is not present.",
        ],
        [
          "ValidationException",
          "422",
          "feature_limits",
          "required",
          "The feature limits field is required.",
        ],
        [
          "ValidationException",
          "422",
          "feature_limits.databases",
          "present",
          "The Database Limit field must be present.",
        ],
        [
          "ValidationException",
          "422",
          "feature_limits.backups",
          "present",
          "The Backup Limit field must be present.",
        ],
      ]);
      unchanged();
    });

    await t.step("databases and backups must be present", async () => {
      const r = await patchBuild(
        panel,
        id,
        build({ feature_limits: { allocations: 1 } }),
      );
      assert.equal(r.status, 422);
      assert.deepEqual(errors(r.body).map((e) => (e as unknown[]).slice(2)), [
        [
          "feature_limits.databases",
          "present",
          "The Database Limit field must be present.",
        ],
        [
          "feature_limits.backups",
          "present",
          "The Backup Limit field must be present.",
        ],
      ]);
      unchanged();
    });

    await t.step("nested limits: each one required with limits", async () => {
      const r = await patchBuild(panel, id, {
        allocation: 1,
        limits: { memory: 2048, io: 5 },
        feature_limits: { databases: 0, backups: 1 },
      });
      assert.equal(r.status, 422);
      assert.deepEqual(
        errors(r.body).map((e) => (e as unknown[]).slice(2, 4)),
        [
          ["limits.swap", "required_with"],
          ["limits.io", "between"],
          ["limits.cpu", "required_with"],
          ["limits.disk", "required_with"],
        ],
      );
      unchanged();
    });

    await t.step("threads must match the panel's pattern", async () => {
      const r = await patchBuild(panel, id, build({ threads: "0-1;2" }));
      assert.equal(r.status, 422);
      assert.deepEqual(
        errors(r.body).map((e) => (e as unknown[]).slice(2, 4)),
        [
          ["threads", "regex"],
        ],
      );
    });

    await t.step("an allocation of another server is 422 unique", async () => {
      await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({ allocation: { default: 2 } }),
      });
      const r = await patchBuild(panel, id, build({ allocation: 2 }));
      assert.equal(r.status, 422);
      assert.deepEqual(
        errors(r.body).map((e) => (e as unknown[]).slice(2, 4)),
        [
          ["allocation", "unique"],
        ],
      );
      unchanged();
    });

    await t.step(
      "a default allocation not the server's is 400 and adds nothing",
      async () => {
        const r = await patchBuild(
          panel,
          id,
          build({ allocation: 3, add_allocations: [8] }),
        );
        assert.equal(r.status, 400);
        assert.deepEqual(errors(r.body), [[
          "DisplayException",
          "400",
          undefined,
          undefined,
          "The requested default allocation is not currently assigned to this server.",
        ]]);
        unchanged();
        // The transaction is rolled back: allocation 8 was not added.
        assert.equal(
          panel.state().allocations.find((a) => a.id === 8)?.server_id,
          null,
        );
      },
    );

    await t.step(
      "removing the default without a fallback is 400",
      async () => {
        const r = await patchBuild(
          panel,
          id,
          build({ add_allocations: [2], remove_allocations: [1] }),
        );
        assert.equal(r.status, 400);
        assert.equal(
          at(r.body, "errors.0.detail"),
          "You are attempting to delete the default allocation for this server but there is no fallback allocation to use.",
        );
        unchanged();
        const r2 = await patchBuild(
          panel,
          id,
          build({
            add_allocations: [4],
            allocation: 4,
            remove_allocations: [9],
          }),
        );
        assert.equal(r2.status, 200);
        assert.equal(at(r2.body, "attributes.allocation"), 4);
        const bad = await patchBuild(
          panel,
          id,
          build({
            allocation: 4,
            add_allocations: [5],
            remove_allocations: [5],
          }),
        );
        assert.equal(bad.status, 200);
        // An id both added and removed stays added, as the panel's query does.
        assert.equal(
          panel.state().allocations.find((a) => a.id === 5)?.server_id,
          id,
        );
      },
    );

    await t.step(
      "a removed default falls back to the first added",
      async () => {
        const r = await patchBuild(
          panel,
          id,
          build({
            allocation: 4,
            add_allocations: [7, 6],
            remove_allocations: [4],
          }),
        );
        assert.equal(r.status, 200);
        assert.equal(at(r.body, "attributes.allocation"), 6);
        assert.equal(
          panel.state().allocations.find((a) => a.id === 4)?.server_id,
          null,
        );
      },
    );

    await t.step(
      "nested limits win; omitted allocations is unlimited",
      async () => {
        const r = await patchBuild(panel, id, {
          allocation: 6,
          memory: 1,
          limits: { memory: 6144, swap: -1, disk: 30000, io: 1000, cpu: 0 },
          feature_limits: { databases: null, backups: null },
          oom_disabled: false,
        });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(at(r.body, "attributes.limits.memory"), 6144);
        assert.equal(at(r.body, "attributes.limits.swap"), -1);
        assert.equal(at(r.body, "attributes.limits.oom_disabled"), false);
        assert.equal(at(r.body, "attributes.feature_limits.databases"), null);
        assert.equal(at(r.body, "attributes.feature_limits.allocations"), null);
        assert.equal(at(r.body, "attributes.feature_limits.backups"), 0);
      },
    );
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox node resources follow build changes", async (t) => {
  const panel = await startTestPanel();
  try {
    // Node 4 has 8192 MiB and allocations 121..140: two 4096 MiB servers fill it.
    const ids: number[] = [];
    for (const allocation of [121, 122]) {
      const r = await callPanel(panel, "POST", "/api/application/servers", {
        body: serverPayload({ allocation: { default: allocation } }),
      });
      ids.push(Number(at(r.body, "attributes.id")));
    }
    assert.deepEqual(
      await nodeAllocated(panel, 4),
      { memory: 8192, disk: 40000 },
    );

    await t.step("an upgrade past the node's room is accepted", async () => {
      const r = await patchBuild(
        panel,
        ids[0],
        build({ allocation: 121, memory: 16384, disk: 50000 }),
      );
      assert.equal(r.status, 200);
      assert.deepEqual(
        await nodeAllocated(panel, 4),
        { memory: 20480, disk: 70000 },
      );
    });

    await t.step("a downgrade frees the node's room", async () => {
      const r = await patchBuild(panel, ids[1], {
        allocation: 122,
        limits: { memory: 1024, swap: 0, disk: 5000, io: 500, cpu: 100 },
        feature_limits: { databases: 0, backups: 0 },
      });
      assert.equal(r.status, 200);
      assert.deepEqual(
        await nodeAllocated(panel, 4),
        { memory: 17408, disk: 55000 },
      );
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox usage control sets the client resources", async (t) => {
  const panel = await startTestPanel();
  const usage = (id: number, body: unknown) =>
    fetch(`${panel.url}/_sandbox/servers/${id}/usage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  try {
    const created = await callPanel(panel, "POST", "/api/application/servers", {
      body: serverPayload(),
    });
    const id = Number(at(created.body, "attributes.id"));
    const identifier = String(at(created.body, "attributes.identifier"));
    await waitForInstall(panel, id);
    const resources = async () => {
      const r = await callPanel(
        panel,
        "GET",
        `/api/client/servers/${identifier}/resources`,
        { key: TEST_KEYS.client },
      );
      assert.equal(r.status, 200);
      return at(r.body, "attributes.resources");
    };

    await t.step("the usage set is what the client API reports", async () => {
      const r = await usage(id, {
        disk_bytes: 15_000_000_000,
        memory_bytes: 3_000_000_000,
      });
      assert.equal(r.status, 200);
      await r.body?.cancel();
      const stats = await resources();
      assert.equal(at(stats, "disk_bytes"), 15_000_000_000);
      assert.equal(at(stats, "memory_bytes"), 3_000_000_000);
    });

    await t.step(
      "a stopped server keeps its disk, not its memory",
      async () => {
        const power = await callPanel(
          panel,
          "POST",
          `/api/client/servers/${identifier}/power`,
          { key: TEST_KEYS.client, body: { signal: "stop" } },
        );
        assert.equal(power.status, 204);
        const stats = await resources();
        assert.equal(at(stats, "disk_bytes"), 15_000_000_000);
        assert.equal(at(stats, "memory_bytes"), 0);
      },
    );

    await t.step("a bad usage body is 400 and changes nothing", async () => {
      const r = await usage(id, { disk_bytes: -1, memory_bytes: 1 });
      assert.equal(r.status, 400);
      await r.body?.cancel();
      const unknown = await usage(999, { disk_bytes: 1, memory_bytes: 1 });
      assert.equal(unknown.status, 404);
      await unknown.body?.cancel();
      assert.equal(at(await resources(), "disk_bytes"), 15_000_000_000);
    });
  } finally {
    await panel.close();
  }
});
