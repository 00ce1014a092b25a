import assert from "node:assert/strict";
import { z } from "zod";
import {
  CallRecorder,
  ControlError,
  controlRouter,
  createStateFile,
  FaultList,
  jsonResponse,
  maskKey,
  parseFault,
  serveLoopback,
} from "../local/sandbox-kit/mod.ts";

Deno.test("sandbox kit faults", async (t) => {
  await t.step(
    "one format: ^regex paths, method default *, Stripe fields",
    () => {
      const fault = parseFault({
        path: "^/v1/prices/",
        status: 402,
        code: "card_declined",
        type: "card_error",
      });
      assert.equal(fault.method, "*");
      assert.ok(fault.path instanceof RegExp);
      assert.throws(() => parseFault({ path: "^(", status: 500 }));
      assert.throws(() => parseFault({ path: "/x", status: 500, nope: 1 }));
    },
  );

  await t.step("times counts matches; without times a fault stays", () => {
    const faults = new FaultList();
    faults.add({ method: "get", path: "/a", status: 500, times: 1 });
    faults.add({ method: "GET", path: /^\/b/, status: 502 });
    assert.equal(faults.take("POST", "/a").status, undefined);
    assert.equal(faults.take("GET", "/a").status, 500);
    assert.equal(faults.take("GET", "/a").status, undefined);
    assert.equal(faults.take("GET", "/b/1").status, 502);
    assert.equal(faults.take("GET", "/b/2").status, 502);
    assert.deepEqual(faults.list(), [{
      method: "GET",
      path: "^\\/b",
      status: 502,
    }]);
  });

  await t.step("every applies to each n-th match; times counts those", () => {
    const faults = new FaultList();
    faults.add({ path: "/a", status: 500, every: 3, times: 2 });
    const statuses = Array.from(
      { length: 9 },
      () => faults.take("GET", "/a").status,
    );
    assert.deepEqual(statuses, [
      undefined,
      undefined,
      500,
      undefined,
      undefined,
      500,
      undefined,
      undefined,
      undefined,
    ]);
    assert.equal(faults.take("GET", "/b").status, undefined);
  });

  await t.step("latencies add up until a fault decides the answer", () => {
    const faults = new FaultList();
    faults.add({ path: "/a", latencyMs: 10 });
    faults.add({ path: "/a", loseResponse: true, times: 1 });
    faults.add({ path: "/a", status: 500 });
    const plan = faults.take("GET", "/a");
    assert.deepEqual(
      [plan.latencyMs, plan.loseResponse, plan.status],
      [10, true, undefined],
    );
    assert.equal(faults.take("GET", "/a").status, 500);
  });
});

Deno.test("sandbox kit call recorder masks keys and counts calls", () => {
  const calls = new CallRecorder();
  const key = "ptla_secretsecretsecret1234";
  calls.start(new Request("http://x/api/a?page=2"), key).finish(200);
  calls.start(new Request("http://x/api/a"), undefined);
  const list = calls.list();
  assert.deepEqual(
    list.map((c) => [c.method, c.path, c.query, c.status, c.key]),
    [["GET", "/api/a", "page=2", 200, "ptla_…1234"], [
      "GET",
      "/api/a",
      "",
      0,
      "",
    ]],
  );
  assert.equal(maskKey("sk_test_abcdefgh9876"), "sk_test_…9876");
  assert.deepEqual(calls.counts(), { "GET /api/a": 2 });
  calls.reset();
  assert.deepEqual(calls.list(), []);
});

Deno.test("sandbox kit control router", async (t) => {
  class Own extends Error {}
  const route = controlRouter({
    "POST /_sandbox/things/:id/poke": async (c) =>
      jsonResponse({
        id: c.params.id,
        ...(await c.body(z.object({ n: z.number() }))),
      }),
    "GET /_sandbox/gone": () => {
      throw new ControlError(410, "gone", "It went");
    },
    "GET /_sandbox/own": () => {
      throw new Own("mine");
    },
  }, {
    mapError: (e) =>
      e instanceof Own ? jsonResponse({ own: true }, 418) : undefined,
  });
  const call = async (method: string, path: string, body?: string) => {
    const r = await route(
      new Request(`http://x${path}`, { method, body }),
    );
    return { status: r.status, body: await r.json() };
  };

  await t.step("path params and a zod-parsed body", async () => {
    const r = await call("POST", "/_sandbox/things/a%20b/poke", '{"n":1}');
    assert.deepEqual(r, { status: 200, body: { id: "a b", n: 1 } });
  });

  await t.step("JSON errors with stable codes", async () => {
    const bad = await call("POST", "/_sandbox/things/1/poke", '{"n":"x"}');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_body");
    assert.match(bad.body.error.message, /"n"/);
    const notJson = await call("POST", "/_sandbox/things/1/poke", "{");
    assert.equal(notJson.body.error.code, "invalid_json");
    assert.deepEqual(await call("GET", "/_sandbox/gone"), {
      status: 410,
      body: { error: { code: "gone", message: "It went" } },
    });
    const none = await call("GET", "/_sandbox/things/1/poke");
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, "not_found");
    assert.deepEqual(await call("GET", "/_sandbox/own"), {
      status: 418,
      body: { own: true },
    });
  });
});

Deno.test("sandbox kit state file", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/nested/state.json`;
  try {
    await t.step("no file loads as undefined", async () => {
      assert.equal(await createStateFile(path).load(), undefined);
    });

    await t.step("saves coalesce, land in order, mode 0600", async () => {
      const file = createStateFile<{ n: number }>(path, { debounceMs: 5 });
      const saves = [1, 2, 3].map((n) => file.save({ n }));
      await Promise.all(saves);
      assert.deepEqual(await file.load(), { n: 3 });
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const state = { n: 4 };
      const saving = file.save(state);
      state.n = 5; // a change after save() is not in that save
      await file.flush();
      await saving;
      assert.deepEqual(await file.load(), { n: 4 });
      const names = [...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name);
      assert.deepEqual(names, ["state.json"]);
    });

    await t.step(
      "a snapshot function is called once per write, with the latest state",
      async () => {
        const file = createStateFile<{ n: number }>(path, { debounceMs: 5 });
        const state = { n: 0 };
        let calls = 0;
        const snapshot = () => {
          calls++;
          return { ...state };
        };
        const saves = [1, 2, 3].map((n) => {
          state.n = n;
          return file.save(snapshot);
        });
        state.n = 7; // changed before the write: the write has it
        await Promise.all(saves);
        assert.equal(calls, 1);
        assert.deepEqual(await file.load(), { n: 7 });
      },
    );

    await t.step("load checks the content", async () => {
      await Deno.writeTextFile(path, '{"n":"x"}');
      const file = createStateFile(path, {
        parse: (v) => z.object({ n: z.number() }).parse(v),
      });
      await assert.rejects(file.load());
      await Deno.writeTextFile(path, "{");
      await assert.rejects(createStateFile(path).load(), /not JSON/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sandbox kit loopback server closes promptly", async (t) => {
  await t.step(
    "a connection that never sent a request does not hold close up",
    async () => {
      const server = serveLoopback(() => new Response("ok"));
      // What a fetch client's spare connection looks like to the server.
      const idle = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      try {
        let timer: ReturnType<typeof setTimeout> | undefined;
        // Generous: it closes in milliseconds; Deno 2.1's shutdown() took minutes.
        const stuck = new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve("still open after 10 s"), 10_000);
        });
        const outcome = await Promise.race([
          server.close().then(() => "closed"),
          stuck,
        ]);
        clearTimeout(timer);
        assert.equal(outcome, "closed");
        assert.equal(await idle.read(new Uint8Array(1)), null);
      } finally {
        idle.close();
      }
    },
  );

  await t.step(
    "a request in flight is answered before the connections close",
    async () => {
      const arrived = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const server = serveLoopback(async () => {
        arrived.resolve();
        await release.promise;
        return new Response("late answer");
      });
      const reply = fetch(server.url);
      await arrived.promise;
      const closed = server.close();
      // The answer comes well after close began (a close that does not wait cuts it).
      const timer = setTimeout(release.resolve, 200);
      const res = await reply;
      clearTimeout(timer);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "late answer");
      await closed;
      assert.equal(server.close(), closed);
    },
  );

  await t.step(
    "a request still unanswered after graceMs is cut off",
    async () => {
      const arrived = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const server = serveLoopback(async () => {
        arrived.resolve();
        await release.promise;
        return new Response("too late");
      }, { graceMs: 50 });
      const reply = fetch(server.url);
      await arrived.promise;
      await server.close();
      await assert.rejects(reply, TypeError);
      release.resolve();
    },
  );
});
