import assert from "node:assert/strict";
import {
  at,
  callPanel,
  serverPayload,
  startTestPanel,
  userPayload,
  waitForInstall,
} from "../local/panel-sandbox/testing.ts";

async function withStateFile(
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(`${dir}/panel-state.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Polls the file until `done` holds for its text (or fails after 2 s). */
async function waitForFile(
  path: string,
  done: (text: string) => boolean,
): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = await Deno.readTextFile(path).catch(() => "");
    if (done(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`File never reached the expected content: ${path}`);
}

Deno.test("panel sandbox state survives a restart", async (t) => {
  await withStateFile(async (stateFile) => {
    const first = await startTestPanel({ stateFile });
    let before;
    let serverId: number;
    try {
      const user = await callPanel(first, "POST", "/api/application/users", {
        body: userPayload({ external_id: "user-1" }),
      });
      assert.equal(user.status, 201);
      await t.step("each change is saved while running", async () => {
        // As after a crash: what is on disk, without close() saving it.
        await waitForFile(
          stateFile,
          (text) => text.includes('"external_id": "user-1"'),
        );
      });
      const server = await callPanel(
        first,
        "POST",
        "/api/application/servers",
        {
          body: serverPayload({
            user: at(user.body, "attributes.id"),
            external_id: "order-1",
            allocation: { default: 3 },
          }),
        },
      );
      assert.equal(server.status, 201);
      serverId = Number(at(server.body, "attributes.id"));
      assert.equal(await waitForInstall(first, serverId), null);
      before = first.state();
    } finally {
      await first.close();
    }

    await t.step("the file is private to its owner", async () => {
      assert.equal((await Deno.stat(stateFile)).mode! & 0o777, 0o600);
    });

    const second = await startTestPanel({ stateFile });
    try {
      await t.step("users, servers, allocations and ids come back", () => {
        const after = second.state();
        assert.deepEqual(after.users, before.users);
        assert.deepEqual(after.servers, before.servers);
        assert.deepEqual(after.allocations, before.allocations);
        assert.deepEqual(after.next_ids, before.next_ids);
        assert.equal(
          after.allocations.find((a) => a.id === 3)?.server_id,
          serverId,
        );
      });

      await t.step("the API serves them as before", async () => {
        const r = await callPanel(
          second,
          "GET",
          "/api/application/servers/external/order-1",
        );
        assert.equal(r.status, 200);
        assert.equal(at(r.body, "attributes.id"), serverId);
        const u = await callPanel(
          second,
          "GET",
          "/api/application/users/external/user-1",
        );
        assert.equal(u.status, 200);
      });

      await t.step("a new server gets the next id", async () => {
        const r = await callPanel(second, "POST", "/api/application/servers", {
          body: serverPayload({ allocation: { default: 4 } }),
        });
        assert.equal(r.status, 201);
        assert.equal(at(r.body, "attributes.id"), serverId + 1);
      });
    } finally {
      await second.close();
    }
  });
});

Deno.test("panel sandbox finishes an install that a restart interrupted", async () => {
  await withStateFile(async (stateFile) => {
    const first = await startTestPanel({ stateFile, installDelayMs: 300 });
    let serverId: number;
    try {
      const r = await callPanel(first, "POST", "/api/application/servers", {
        body: serverPayload(),
      });
      serverId = Number(at(r.body, "attributes.id"));
    } finally {
      await first.close();
    }
    // The restarted panel would take ten minutes for a new install: the old one
    // keeps its own finishing time.
    const second = await startTestPanel({
      stateFile,
      installDelayMs: 600_000,
    });
    try {
      const server = second.state().servers.find((s) => s.id === serverId);
      assert.equal(server?.status, "installing");
      assert.equal(await waitForInstall(second, serverId), null);
      assert.equal(
        second.state().servers.find((s) => s.id === serverId)?.power_state,
        "running",
      );
    } finally {
      await second.close();
    }
  });
});

Deno.test("panel sandbox refuses a state file it cannot read", async () => {
  await withStateFile(async (stateFile) => {
    await Deno.writeTextFile(stateFile, '{"version":1,"state":{}}');
    await assert.rejects(startTestPanel({ stateFile }));
  });
});
