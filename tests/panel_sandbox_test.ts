import assert from "node:assert/strict";
import {
  at,
  callPanel,
  startTestPanel,
  TEST_KEYS,
  userPayload,
} from "../local/panel-sandbox/testing.ts";

Deno.test("panel sandbox authenticates like the panel", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step("no key is 401 AuthenticationException", async () => {
      const r = await callPanel(panel, "GET", "/api/application/users", {
        key: null,
      });
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, {
        errors: [{
          code: "AuthenticationException",
          status: "401",
          detail: "Unauthenticated.",
        }],
      });
    });

    await t.step("an unknown key is 401", async () => {
      const r = await callPanel(panel, "GET", "/api/application/users", {
        key: "ptla_unknown",
      });
      assert.equal(r.status, 401);
    });

    await t.step(
      "a non-admin key is 403 AccessDeniedHttpException",
      async () => {
        const r = await callPanel(panel, "GET", "/api/application/users", {
          key: TEST_KEYS.nonAdmin,
        });
        assert.equal(r.status, 403);
        assert.equal(at(r.body, "errors.0.code"), "AccessDeniedHttpException");
      },
    );

    await t.step(
      "without Accept: JSON a 401 redirects to the login",
      async () => {
        const response = await fetch(`${panel.url}/api/application/users`, {
          redirect: "manual",
        });
        await response.body?.cancel();
        assert.equal(response.status, 302);
        assert.equal(
          response.headers.get("location"),
          `${panel.url}/auth/login`,
        );
      },
    );

    await t.step("an application key on the client API is 403", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/client/servers/abcd1234/resources",
      );
      assert.equal(r.status, 403);
    });

    await t.step("malformed JSON is 400", async () => {
      const response = await fetch(`${panel.url}/api/application/users`, {
        method: "POST",
        headers: {
          accept: "application/json",
          authorization: `Bearer ${TEST_KEYS.application}`,
          "content-type": "application/json",
        },
        body: "{nope",
      });
      const body = await response.json();
      assert.equal(response.status, 400);
      assert.equal(at(body, "errors.0.code"), "BadRequestHttpException");
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox answers the panel's envelopes", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step("a list has object, data and pagination meta", async () => {
      const r = await callPanel(panel, "GET", "/api/application/nodes");
      assert.equal(r.status, 200);
      assert.equal(at(r.body, "object"), "list");
      assert.equal(at(r.body, "data.0.object"), "node");
      assert.deepEqual(at(r.body, "meta.pagination"), {
        total: 4,
        count: 4,
        per_page: 50,
        current_page: 1,
        total_pages: 1,
        links: {},
      });
    });

    await t.step("per_page and page slice the list with links", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nodes?per_page=3&page=2",
      );
      assert.equal(at(r.body, "data.0.attributes.id"), 4);
      assert.equal(at(r.body, "meta.pagination.count"), 1);
      assert.equal(at(r.body, "meta.pagination.total_pages"), 2);
      assert.equal(
        at(r.body, "meta.pagination.links.previous"),
        `${panel.url}/api/application/nodes?page=1`,
      );
      assert.equal(at(r.body, "meta.pagination.links.next"), undefined);
    });

    await t.step(
      "a node carries capacity and allocated resources",
      async () => {
        const r = await callPanel(panel, "GET", "/api/application/nodes/2");
        assert.equal(at(r.body, "object"), "node");
        assert.equal(at(r.body, "attributes.memory"), 16384);
        assert.equal(at(r.body, "attributes.location_id"), 1);
        assert.equal(at(r.body, "attributes.public"), true);
        assert.deepEqual(at(r.body, "attributes.allocated_resources"), {
          memory: 0,
          disk: 0,
        });
      },
    );

    await t.step("include puts relations under relationships", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nodes/1?include=location,allocations",
      );
      assert.equal(
        at(r.body, "attributes.relationships.location.object"),
        "location",
      );
      assert.equal(
        at(r.body, "attributes.relationships.location.attributes.short"),
        "us-east",
      );
      const allocations = at(
        r.body,
        "attributes.relationships.allocations.data",
      );
      assert.ok(Array.isArray(allocations));
      assert.equal(allocations.length, 40);
      const plain = await callPanel(panel, "GET", "/api/application/nodes/1");
      assert.equal(at(plain.body, "attributes.relationships"), undefined);
    });

    await t.step(
      "a missing resource is 404 NotFoundHttpException",
      async () => {
        const r = await callPanel(panel, "GET", "/api/application/users/999");
        assert.equal(r.status, 404);
        assert.deepEqual(r.body, {
          errors: [{
            code: "NotFoundHttpException",
            status: "404",
            detail: "The requested resource could not be found on the server.",
          }],
        });
      },
    );

    await t.step("locations and nests list", async () => {
      const locations = await callPanel(
        panel,
        "GET",
        "/api/application/locations",
      );
      assert.equal(at(locations.body, "meta.pagination.total"), 2);
      const nest = await callPanel(panel, "GET", "/api/application/nests/1");
      assert.equal(at(nest.body, "attributes.name"), "Minecraft");
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox manages users", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step(
      "creates a user, 201, and records the account email",
      async () => {
        const r = await callPanel(panel, "POST", "/api/application/users", {
          body: userPayload({ external_id: "shop-user-1" }),
        });
        assert.equal(r.status, 201);
        assert.equal(at(r.body, "object"), "user");
        assert.equal(at(r.body, "attributes.username"), "alice");
        assert.equal(at(r.body, "attributes.external_id"), "shop-user-1");
        assert.equal(at(r.body, "attributes.root_admin"), false);
        assert.equal(
          at(r.body, "meta.resource"),
          `${panel.url}/api/application/users/${at(r.body, "attributes.id")}`,
        );
        const emails = panel.state().emails_sent;
        assert.equal(emails.length, 1);
        assert.equal(emails[0].to, "alice@example.com");
        assert.equal(emails[0].password_link, true);
      },
    );

    await t.step("a bad username is 422 p_username", async () => {
      const r = await callPanel(panel, "POST", "/api/application/users", {
        body: userPayload({ email: "bob@example.com", username: "-bob" }),
      });
      assert.equal(r.status, 422);
      assert.equal(at(r.body, "errors.0.meta.source_field"), "username");
      assert.equal(at(r.body, "errors.0.meta.rule"), "p_username");
    });

    await t.step("a duplicate email is 422 unique", async () => {
      const r = await callPanel(panel, "POST", "/api/application/users", {
        body: userPayload({ username: "alice2" }),
      });
      assert.equal(r.status, 422);
      assert.deepEqual(r.body, {
        errors: [{
          code: "ValidationException",
          status: "422",
          detail: "The email has already been taken.",
          meta: { source_field: "email", rule: "unique" },
        }],
      });
    });

    await t.step("a duplicate external_id is 422 unique", async () => {
      const r = await callPanel(panel, "POST", "/api/application/users", {
        body: userPayload({
          email: "carol@example.com",
          username: "carol",
          external_id: "shop-user-1",
        }),
      });
      assert.equal(r.status, 422);
      assert.equal(at(r.body, "errors.0.meta.source_field"), "external_id");
      assert.equal(at(r.body, "errors.0.meta.rule"), "unique");
      assert.equal(panel.state().users.length, 3);
    });

    await t.step("missing fields are one entry per failed field", async () => {
      const r = await callPanel(panel, "POST", "/api/application/users", {
        body: { email: "not-an-email" },
      });
      const fields = (at(r.body, "errors") as unknown[]).map((e) =>
        at(e, "meta.source_field")
      );
      assert.deepEqual(fields, [
        "email",
        "username",
        "first_name",
        "last_name",
      ]);
      assert.equal(at(r.body, "errors.0.meta.rule"), "email");
    });

    await t.step(
      "filter[email] is a partial match, external is exact",
      async () => {
        await callPanel(panel, "POST", "/api/application/users", {
          body: userPayload({
            email: "malice@example.com",
            username: "malice",
            password: "hunter22",
            external_id: "shop-user-10",
          }),
        });
        const partial = await callPanel(
          panel,
          "GET",
          "/api/application/users?filter[email]=alice@example.com",
        );
        assert.equal(at(partial.body, "meta.pagination.total"), 2);
        const exact = await callPanel(
          panel,
          "GET",
          "/api/application/users/external/shop-user-1",
        );
        assert.equal(at(exact.body, "attributes.email"), "alice@example.com");
        const none = await callPanel(
          panel,
          "GET",
          "/api/application/users/external/shop-user",
        );
        assert.equal(none.status, 404);
        const unknownFilter = await callPanel(
          panel,
          "GET",
          "/api/application/users?filter[name]=x",
        );
        assert.equal(unknownFilter.status, 400);
      },
    );

    await t.step("PATCH updates and DELETE removes a user", async () => {
      const created = panel.state().users.find((u) => u.username === "malice");
      assert.ok(created);
      const patched = await callPanel(
        panel,
        "PATCH",
        `/api/application/users/${created.id}`,
        {
          body: userPayload({
            email: "malice@example.com",
            username: "malice",
            first_name: "Mal",
          }),
        },
      );
      assert.equal(patched.status, 200);
      assert.equal(at(patched.body, "attributes.first_name"), "Mal");
      const deleted = await callPanel(
        panel,
        "DELETE",
        `/api/application/users/${created.id}`,
      );
      assert.equal(deleted.status, 204);
      assert.equal(
        panel.state().users.some((u) => u.id === created.id),
        false,
      );
    });
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox serves nests, eggs and deployable nodes", async (t) => {
  const panel = await startTestPanel();
  try {
    await t.step(
      "an egg with include=variables lists its variables",
      async () => {
        const r = await callPanel(
          panel,
          "GET",
          "/api/application/nests/1/eggs/1?include=variables",
        );
        assert.equal(at(r.body, "object"), "egg");
        assert.equal(
          at(r.body, "attributes.docker_image"),
          "ghcr.io/pterodactyl/yolks:java_21",
        );
        const vars = at(r.body, "attributes.relationships.variables");
        assert.equal(at(vars, "object"), "list");
        assert.equal(at(vars, "data.0.object"), "egg_variable");
        assert.equal(
          at(vars, "data.1.attributes.env_variable"),
          "SERVER_JARFILE",
        );
        assert.equal(at(vars, "data.1.attributes.default_value"), "server.jar");
        assert.equal(
          at(vars, "data.2.attributes.rules"),
          "required|string|max:20",
        );
        assert.equal(at(vars, "data.0.attributes.user_editable"), true);
      },
    );

    await t.step("an egg of another nest is 404", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nests/2/eggs/1",
      );
      assert.equal(r.status, 404);
    });

    await t.step("the nest's eggs are listed", async () => {
      const r = await callPanel(panel, "GET", "/api/application/nests/1/eggs");
      assert.equal((at(r.body, "data") as unknown[]).length, 2);
    });

    await t.step("deployable filters by location and capacity", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nodes/deployable?memory=10000&disk=1000&location_ids[]=2",
      );
      assert.equal(r.status, 200);
      const ids = (at(r.body, "data") as unknown[]).map((n) =>
        at(n, "attributes.id")
      );
      assert.deepEqual(ids, [3]);
    });

    await t.step("deployable with no capacity is 400", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nodes/deployable?memory=999999&disk=1",
      );
      assert.equal(r.status, 400);
      assert.equal(at(r.body, "errors.0.code"), "NoViableNodeException");
    });

    await t.step("deployable without memory is 422", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/application/nodes/deployable?disk=1",
      );
      assert.equal(r.status, 422);
      assert.equal(at(r.body, "errors.0.meta.source_field"), "memory");
    });

    await t.step(
      "free allocations via an empty filter[server_id]",
      async () => {
        const r = await callPanel(
          panel,
          "GET",
          "/api/application/nodes/4/allocations?filter[server_id]=&per_page=100",
        );
        assert.equal(at(r.body, "meta.pagination.total"), 20);
        assert.equal(at(r.body, "data.0.object"), "allocation");
        assert.equal(at(r.body, "data.0.attributes.assigned"), false);
        assert.equal(at(r.body, "data.0.attributes.port"), 25565);
      },
    );
  } finally {
    await panel.close();
  }
});

Deno.test("panel sandbox rate limits and records calls", async (t) => {
  const panel = await startTestPanel({ rateLimitPerMinute: 3 });
  try {
    await t.step("the fourth call in a minute is 429", async () => {
      const statuses: number[] = [];
      let last = await callPanel(panel, "GET", "/api/application/locations");
      assert.equal(last.headers.get("x-ratelimit-remaining"), "2");
      statuses.push(last.status);
      for (let i = 0; i < 3; i++) {
        last = await callPanel(panel, "GET", "/api/application/locations");
        statuses.push(last.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      assert.equal(at(last.body, "errors.0.code"), "ThrottleRequestsException");
      assert.equal(at(last.body, "errors.0.detail"), "Too Many Attempts.");
      assert.ok(Number(last.headers.get("retry-after")) > 0);
    });

    await t.step("the limit is per key", async () => {
      const r = await callPanel(
        panel,
        "GET",
        "/api/client/servers/none/resources",
        { key: TEST_KEYS.client },
      );
      assert.equal(r.status, 404);
    });

    await t.step("calls() records every call with a masked key", () => {
      const calls = panel.calls();
      assert.equal(calls.length, 5);
      assert.deepEqual(calls.map((c) => c.status), [200, 200, 200, 429, 404]);
      assert.equal(calls[0].key, "ptla_…0001");
      assert.equal(calls[0].path, "/api/application/locations");
      panel.resetCalls();
      assert.equal(panel.calls().length, 0);
    });

    await t.step("configure raises the limit", async () => {
      panel.configure({ rateLimitPerMinute: 100 });
      const r = await callPanel(panel, "GET", "/api/application/locations");
      assert.equal(r.status, 200);
    });

    await t.step("the HTTP controls are not recorded", async () => {
      panel.resetCalls();
      const response = await fetch(`${panel.url}/_sandbox/calls`);
      assert.deepEqual(await response.json(), []);
      const state = await fetch(`${panel.url}/_sandbox/state`);
      assert.equal(at(await state.json(), "users.0.username"), "admin");
      const config = await fetch(`${panel.url}/_sandbox/config`, {
        method: "POST",
        body: JSON.stringify({ installOutcome: "failure" }),
      });
      assert.equal(at(await config.json(), "installOutcome"), "failure");
      const bad = await fetch(`${panel.url}/_sandbox/config`, {
        method: "POST",
        body: JSON.stringify({ installOutcome: "maybe" }),
      });
      await bad.body?.cancel();
      assert.equal(bad.status, 400);
      assert.equal(panel.calls().length, 0);
    });
  } finally {
    await panel.close();
  }
});
