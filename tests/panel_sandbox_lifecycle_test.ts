import assert from "node:assert/strict";
import {
  at,
  callPanel,
  type PanelReply,
  serverPayload,
  startTestPanel,
  TEST_KEYS,
} from "../local/panel-sandbox/testing.ts";
import type { PanelSandbox } from "../local/panel-sandbox/mod.ts";

const SERVERS = "/api/application/servers";

async function control(
  panel: PanelSandbox,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${panel.url}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text === "" ? null : JSON.parse(text) };
}

/** A server that finished installing (installs finished through the control call). */
async function installedServer(
  panel: PanelSandbox,
  allocation: number,
  overrides: Record<string, unknown> = {},
): Promise<{ id: number; identifier: string }> {
  const r = await callPanel(panel, "POST", SERVERS, {
    body: serverPayload({ allocation: { default: allocation }, ...overrides }),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = Number(at(r.body, "attributes.id"));
  const done = await control(panel, "POST", "/_sandbox/installs/finish", {
    server_id: id,
  });
  assert.deepEqual(done.body, { finished: [id] });
  return { id, identifier: String(at(r.body, "attributes.identifier")) };
}

function server(panel: PanelSandbox, id: number) {
  return panel.state().servers.find((s) => s.id === id);
}

function power(panel: PanelSandbox, identifier: string, signal: unknown) {
  return callPanel(panel, "POST", `/api/client/servers/${identifier}/power`, {
    key: TEST_KEYS.client,
    body: { signal },
  });
}

function resources(panel: PanelSandbox, identifier: string) {
  return callPanel(
    panel,
    "GET",
    `/api/client/servers/${identifier}/resources`,
    { key: TEST_KEYS.client },
  );
}

function conflict(r: PanelReply, detail: RegExp): void {
  assert.equal(r.status, 409);
  assert.equal(at(r.body, "errors.0.code"), "ServerStateConflictException");
  assert.equal(at(r.body, "errors.0.status"), "409");
  assert.match(String(at(r.body, "errors.0.detail")), detail);
}

Deno.test("panel sandbox suspends and unsuspends like the panel", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 600_000 });
  try {
    const s = await installedServer(panel, 1);
    assert.equal(server(panel, s.id)?.power_state, "running");

    await t.step("suspend: 204, suspended and stopped", async () => {
      const r = await callPanel(panel, "POST", `${SERVERS}/${s.id}/suspend`);
      assert.equal(r.status, 204);
      const view = await callPanel(panel, "GET", `${SERVERS}/${s.id}`);
      assert.equal(at(view.body, "attributes.status"), "suspended");
      assert.equal(at(view.body, "attributes.suspended"), true);
      assert.equal(server(panel, s.id)?.power_state, "offline");
    });

    await t.step("suspending again is a 204 no-op", async () => {
      const before = server(panel, s.id)?.updated_at;
      await new Promise((resolve) => setTimeout(resolve, 5));
      const r = await callPanel(panel, "POST", `${SERVERS}/${s.id}/suspend`);
      assert.equal(r.status, 204);
      assert.equal(server(panel, s.id)?.updated_at, before);
    });

    await t.step("the client API refuses a suspended server", async () => {
      conflict(
        await resources(panel, s.identifier),
        /^This server is currently suspended/,
      );
      conflict(
        await power(panel, s.identifier, "start"),
        /^This server is currently suspended/,
      );
      assert.equal(server(panel, s.id)?.power_state, "offline");
    });

    await t.step("unsuspend clears the status and does not start", async () => {
      const r = await callPanel(panel, "POST", `${SERVERS}/${s.id}/unsuspend`);
      assert.equal(r.status, 204);
      assert.equal(server(panel, s.id)?.status, null);
      const stats = await resources(panel, s.identifier);
      assert.equal(stats.status, 200);
      assert.equal(at(stats.body, "attributes.current_state"), "offline");
      assert.equal(at(stats.body, "attributes.is_suspended"), false);
      const again = await callPanel(
        panel,
        "POST",
        `${SERVERS}/${s.id}/unsuspend`,
      );
      assert.equal(again.status, 204);
      assert.equal(server(panel, s.id)?.status, null);
    });

    await t.step("a failing Wings rolls a suspension back", async () => {
      panel.configure({ wingsStatus: 502 });
      const r = await callPanel(panel, "POST", `${SERVERS}/${s.id}/suspend`);
      assert.equal(r.status, 502);
      assert.equal(at(r.body, "errors.0.code"), "DaemonConnectionException");
      assert.equal(server(panel, s.id)?.status, null);
      panel.configure({ wingsStatus: null });
    });

    await t.step("an unknown server is 404", async () => {
      const r = await callPanel(panel, "POST", `${SERVERS}/999/suspend`);
      assert.equal(r.status, 404);
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox power signals through the client API", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 600_000 });
  try {
    const s = await installedServer(panel, 1);

    await t.step("stop, start, restart and kill answer 204", async () => {
      for (
        const [signal, state] of [
          ["stop", "offline"],
          ["start", "running"],
          ["kill", "offline"],
          ["restart", "running"],
        ]
      ) {
        const r = await power(panel, s.identifier, signal);
        assert.equal(r.status, 204, signal);
        const stats = await resources(panel, s.identifier);
        assert.equal(at(stats.body, "attributes.current_state"), state);
      }
    });

    await t.step("an unknown signal is 422", async () => {
      const r = await power(panel, s.identifier, "explode");
      assert.equal(r.status, 422);
      assert.equal(at(r.body, "errors.0.meta.source_field"), "signal");
      assert.equal(at(r.body, "errors.0.meta.rule"), "in");
    });

    await t.step("an application key is refused", async () => {
      const r = await callPanel(
        panel,
        "POST",
        `/api/client/servers/${s.identifier}/power`,
        { body: { signal: "start" } },
      );
      assert.equal(r.status, 403);
    });

    await t.step("an installing server is 409", async () => {
      const r = await callPanel(panel, "POST", SERVERS, {
        body: serverPayload({ allocation: { default: 2 } }),
      });
      conflict(
        await power(
          panel,
          String(at(r.body, "attributes.identifier")),
          "start",
        ),
        /^This server has not yet completed its installation process/,
      );
    });

    await t.step("a failing Wings answers as the panel does", async () => {
      panel.configure({ wingsStatus: 0 });
      const r = await power(panel, s.identifier, "stop");
      assert.equal(r.status, 504);
      assert.equal(at(r.body, "errors.0.code"), "DaemonConnectionException");
      assert.equal(server(panel, s.id)?.power_state, "running");
      panel.configure({ wingsStatus: null });
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox reinstalls and finishes installs on demand", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 600_000 });
  try {
    const s = await installedServer(panel, 1);

    await t.step(
      "reinstall of a suspended server: installing, then installed",
      async () => {
        await callPanel(panel, "POST", `${SERVERS}/${s.id}/suspend`);
        const r = await callPanel(
          panel,
          "POST",
          `${SERVERS}/${s.id}/reinstall`,
        );
        assert.equal(r.status, 204);
        assert.equal(server(panel, s.id)?.status, "installing");
        const view = await callPanel(panel, "GET", `${SERVERS}/${s.id}`);
        assert.equal(at(view.body, "attributes.container.installed"), 0);
        assert.equal(at(view.body, "attributes.suspended"), false);
        const done = await control(
          panel,
          "POST",
          "/_sandbox/installs/finish",
          {},
        );
        assert.deepEqual(done.body, { finished: [s.id] });
        assert.equal(server(panel, s.id)?.status, null);
        assert.equal(server(panel, s.id)?.power_state, "running");
      },
    );

    await t.step("a failed reinstall is reinstall_failed", async () => {
      await callPanel(panel, "POST", `${SERVERS}/${s.id}/reinstall`);
      await control(panel, "POST", "/_sandbox/installs/finish", {
        outcome: "failure",
      });
      assert.equal(server(panel, s.id)?.status, "reinstall_failed");
    });

    await t.step("installOutcome failure makes new installs fail", async () => {
      panel.configure({ installOutcome: "failure" });
      const r = await callPanel(panel, "POST", SERVERS, {
        body: serverPayload({ allocation: { default: 2 } }),
      });
      const id = Number(at(r.body, "attributes.id"));
      await control(panel, "POST", "/_sandbox/installs/finish", {});
      assert.equal(server(panel, id)?.status, "install_failed");
      panel.configure({ installOutcome: "success" });
    });

    await t.step(
      "a suspension during an install survives its end",
      async () => {
        await callPanel(panel, "POST", `${SERVERS}/${s.id}/reinstall`);
        await callPanel(panel, "POST", `${SERVERS}/${s.id}/suspend`);
        await control(panel, "POST", "/_sandbox/installs/finish", {});
        assert.equal(server(panel, s.id)?.status, "suspended");
      },
    );
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox deletes servers like the panel", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 600_000 });
  try {
    await t.step("delete: 204, then 404, allocation freed", async () => {
      const s = await installedServer(panel, 1);
      const r = await callPanel(panel, "DELETE", `${SERVERS}/${s.id}`);
      assert.equal(r.status, 204);
      const gone = await callPanel(panel, "GET", `${SERVERS}/${s.id}`);
      assert.equal(gone.status, 404);
      assert.equal(
        panel.state().allocations.find((a) => a.id === 1)?.server_id,
        null,
      );
    });

    await t.step(
      "a Wings error stops a normal delete; force goes on",
      async () => {
        const s = await installedServer(panel, 2);
        panel.configure({ wingsStatus: 500 });
        const r = await callPanel(panel, "DELETE", `${SERVERS}/${s.id}`);
        assert.equal(r.status, 500);
        assert.equal(at(r.body, "errors.0.code"), "DaemonConnectionException");
        assert.match(String(at(r.body, "errors.0.detail")), /\(code: 500\)/);
        assert.ok(server(panel, s.id));
        const other = await callPanel(
          panel,
          "DELETE",
          `${SERVERS}/${s.id}/soft`,
        );
        assert.equal(other.status, 500);
        const f = await callPanel(panel, "DELETE", `${SERVERS}/${s.id}/force`);
        assert.equal(f.status, 204);
        assert.equal(server(panel, s.id), undefined);
        panel.configure({ wingsStatus: null });
      },
    );

    await t.step("a 404 from Wings does not stop a delete", async () => {
      const s = await installedServer(panel, 3);
      panel.configure({ wingsStatus: 404 });
      const r = await callPanel(panel, "DELETE", `${SERVERS}/${s.id}`);
      assert.equal(r.status, 204);
      panel.configure({ wingsStatus: null });
    });

    await t.step("a create Wings refuses leaves no server", async () => {
      panel.configure({ wingsStatus: 502 });
      const r = await callPanel(panel, "POST", SERVERS, {
        body: serverPayload({
          external_id: "refused",
          allocation: { default: 4 },
        }),
      });
      assert.equal(r.status, 502);
      panel.configure({ wingsStatus: null });
      const found = await callPanel(
        panel,
        "GET",
        `${SERVERS}/external/refused`,
      );
      assert.equal(found.status, 404);
      assert.equal(
        panel.state().allocations.find((a) => a.id === 4)?.server_id,
        null,
      );
    });

    await t.step("a server deleted by hand is 404 on the API", async () => {
      const s = await installedServer(panel, 5);
      const r = await control(panel, "DELETE", `/_sandbox/servers/${s.id}`);
      assert.equal(r.status, 204);
      const gone = await callPanel(panel, "GET", `${SERVERS}/${s.id}`);
      assert.equal(gone.status, 404);
      assert.equal(
        (await resources(panel, s.identifier)).status,
        404,
      );
      const again = await control(panel, "DELETE", `/_sandbox/servers/${s.id}`);
      assert.equal(again.status, 404);
      assert.equal(at(again.body, "error.code"), "not_found");
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox lists a thousand seeded servers", async (t) => {
  const panel = await startTestPanel({ installDelayMs: 600_000 });
  try {
    const externalIds = Array.from({ length: 1000 }, (_, i) => `order-${i}`);

    await t.step("bulk seeding checks its input", async () => {
      const bad = await control(panel, "POST", "/_sandbox/servers/bulk", {
        count: 0,
      });
      assert.equal(bad.status, 400);
      assert.equal(at(bad.body, "error.code"), "invalid_body");
      const noUser = await control(panel, "POST", "/_sandbox/servers/bulk", {
        count: 1,
        owner: 99,
      });
      assert.equal(noUser.status, 404);
    });

    await t.step("bulk seeding makes a thousand servers at once", async () => {
      const r = await control(panel, "POST", "/_sandbox/servers/bulk", {
        external_ids: externalIds,
      });
      assert.equal(r.status, 201);
      assert.equal((r.body as { ids: number[] }).ids.length, 1000);
      assert.equal(panel.state().servers.length, 1000);
      const dup = await control(panel, "POST", "/_sandbox/servers/bulk", {
        external_ids: ["order-7"],
      });
      assert.equal(dup.status, 409);
    });

    await t.step(
      "pages of 100 take ten calls, counted by the sandbox",
      async () => {
        panel.resetCalls();
        const seen = new Set<unknown>();
        let page = 1;
        let pages = 0;
        do {
          const r = await callPanel(
            panel,
            "GET",
            `${SERVERS}?page=${page}&per_page=100`,
          );
          assert.equal(r.status, 200);
          for (const item of at(r.body, "data") as unknown[]) {
            seen.add(at(item, "attributes.external_id"));
          }
          pages = Number(at(r.body, "meta.pagination.total_pages"));
          assert.equal(at(r.body, "meta.pagination.total"), 1000);
          assert.equal(at(r.body, "meta.pagination.per_page"), 100);
          assert.equal(at(r.body, "meta.pagination.current_page"), page);
          page++;
        } while (page <= pages);
        assert.equal(seen.size, 1000);
        const counts = await control(panel, "GET", "/_sandbox/calls/counts");
        assert.deepEqual(counts.body, { [`GET ${SERVERS}`]: 10 });
      },
    );

    await t.step("per_page is not capped", async () => {
      const r = await callPanel(panel, "GET", `${SERVERS}?per_page=1000`);
      assert.equal((at(r.body, "data") as unknown[]).length, 1000);
      assert.equal(at(r.body, "meta.pagination.total_pages"), 1);
    });

    await t.step("each item carries what a sweep reads", async () => {
      const r = await callPanel(panel, "GET", `${SERVERS}?per_page=1`);
      const item = at(r.body, "data.0") as unknown;
      assert.equal(at(item, "object"), "server");
      for (
        const key of [
          "id",
          "external_id",
          "uuid",
          "identifier",
          "status",
          "suspended",
          "node",
          "limits",
          "container",
        ]
      ) {
        assert.ok(at(item, `attributes.${key}`) !== undefined, key);
      }
      assert.equal(at(item, "attributes.container.installed"), 1);
      assert.equal(at(item, "attributes.status"), null);
    });

    await t.step("filters are the panel's partial matches", async () => {
      const one = await callPanel(
        panel,
        "GET",
        `${SERVERS}?filter[external_id]=order-999`,
      );
      assert.equal(at(one.body, "meta.pagination.total"), 1);
      const many = await callPanel(
        panel,
        "GET",
        `${SERVERS}?filter[external_id]=order-99`,
      );
      assert.equal(at(many.body, "meta.pagination.total"), 11);
      const uuid = panel.state().servers[0].uuid;
      const byUuid = await callPanel(
        panel,
        "GET",
        `${SERVERS}?filter[uuid]=${uuid}`,
      );
      assert.equal(at(byUuid.body, "data.0.attributes.uuid"), uuid);
      const byName = await callPanel(
        panel,
        "GET",
        `${SERVERS}?filter[name]=Seeded server 1000`,
      );
      assert.equal(at(byName.body, "meta.pagination.total"), 1);
      const unknown = await callPanel(
        panel,
        "GET",
        `${SERVERS}?filter[status]=x`,
      );
      assert.equal(unknown.status, 400);
    });

    await t.step("seeded installs and suspensions", async () => {
      const r = await control(panel, "POST", "/_sandbox/servers/bulk", {
        count: 3,
        status: "installing",
      });
      const ids = (r.body as { ids: number[] }).ids;
      assert.ok(ids.every((id) => server(panel, id)?.status === "installing"));
      const done = await control(
        panel,
        "POST",
        "/_sandbox/installs/finish",
        {},
      );
      assert.deepEqual(done.body, { finished: ids });
      const suspended = await control(panel, "POST", "/_sandbox/servers/bulk", {
        count: 1,
        status: "suspended",
      });
      const id = (suspended.body as { ids: number[] }).ids[0];
      const view = await callPanel(panel, "GET", `${SERVERS}/${id}`);
      assert.equal(at(view.body, "attributes.suspended"), true);
    });
  } finally {
    await panel.close();
  }
});
