import assert from "node:assert/strict";
import { createPanelUser, errorCode, invoke } from "./_fixtures.ts";
import { startTestStack, type TestStack, type TestUser } from "./_stack.ts";

const FN = "create-pterodactyl-user";
const USERS_PATH = "/api/application/users";
const EXTERNAL_PATH = /^\/api\/application\/users\/external\//;
const USERNAME = /^[a-z0-9]([\w.-]+)[a-z0-9]$/;

interface LinkRow {
  ptero_user_id: number;
  ptero_username: string;
}

/** Our links for a user (external_accounts rows). */
async function links(stack: TestStack, userId: string): Promise<LinkRow[]> {
  const rows = await stack.sql<LinkRow[]>`
    select ptero_user_id, ptero_username from public.external_accounts
    where user_id = ${userId}`;
  // Plain objects in a plain array, for deepEqual.
  return rows.map((r) => ({
    ptero_user_id: r.ptero_user_id,
    ptero_username: r.ptero_username,
  }));
}

/** Panel users carrying this external id. */
function panelUsersFor(stack: TestStack, externalId: string) {
  return stack.panel.state().users.filter((u) => u.external_id === externalId);
}

/** Panel users with this email (case-insensitive). */
function panelUsersWithEmail(stack: TestStack, email: string) {
  return stack.panel.state().users.filter((u) =>
    u.email.toLowerCase() === email.toLowerCase()
  );
}

/** Recorded panel calls matching a method and a path (string or pattern). */
function callsTo(stack: TestStack, method: string, path: string | RegExp) {
  return stack.panel.calls().filter((c) =>
    c.method === method &&
    (typeof path === "string" ? c.path === path : path.test(c.path))
  );
}

/** A new user with a fixed, unique email (so the derived username is known). */
async function userWithEmail(
  stack: TestStack,
  local: string,
): Promise<TestUser> {
  return await stack.user(`${local}@example.com`);
}

Deno.test("create-pterodactyl-user", async (t) => {
  const stack = await startTestStack();
  try {
    let first: TestUser | undefined;
    let firstId = 0;

    await t.step(
      "creates a linked panel account without a password, named after the email's lower-cased local part",
      async () => {
        const user = await userWithEmail(stack, "Jane.Doe+Shop");
        first = user;
        stack.panel.resetCalls();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(Object.keys(res.body).sort(), [
          "created",
          "panel_url",
          "ptero_user_id",
          "username",
        ]);
        assert.equal(res.body.created, true);
        assert.equal(res.body.username, "jane.doe-shop");
        assert.equal(res.body.panel_url, stack.panel.url);
        assert.equal(typeof res.body.ptero_user_id, "number");
        firstId = res.body.ptero_user_id as number;

        const panelUsers = panelUsersFor(stack, user.id);
        assert.equal(panelUsers.length, 1);
        const panelUser = panelUsers[0];
        assert.equal(panelUser.id, firstId);
        // The account's email as Auth keeps it: lower case.
        assert.equal(panelUser.email, user.email.toLowerCase());
        assert.equal(panelUser.username, "jane.doe-shop");
        assert.match(panelUser.username, USERNAME);
        assert.equal(panelUser.first_name, "Player");
        assert.equal(panelUser.last_name, "Customer");
        assert.equal(panelUser.has_password, false);
        assert.equal(panelUser.root_admin, false);

        const mails = stack.panel.state().emails_sent.filter((m) =>
          m.user_id === firstId
        );
        assert.equal(mails.length, 1);
        assert.equal(mails[0].to, user.email.toLowerCase());
        assert.equal(mails[0].password_link, true);

        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: firstId,
          ptero_username: "jane.doe-shop",
        }]);

        assert.equal(callsTo(stack, "GET", EXTERNAL_PATH).length, 1);
        assert.equal(callsTo(stack, "POST", USERS_PATH).length, 1);
        assert.equal(
          callsTo(stack, "PATCH", /^\/api\/application\/users\//)
            .length,
          0,
        );
      },
    );

    await t.step(
      "a second call answers the same account without calling the panel",
      async () => {
        assert.ok(first, "the first step ran");
        const usersBefore = stack.panel.state().users.length;
        stack.panel.resetCalls();
        const res = await invoke(first.client, FN);
        assert.equal(res.status, 200);
        assert.equal(res.body.ptero_user_id, firstId);
        assert.equal(res.body.username, "jane.doe-shop");
        assert.equal(res.body.created, false);
        assert.equal(res.body.panel_url, stack.panel.url);
        assert.equal(callsTo(stack, "POST", USERS_PATH).length, 0);
        assert.deepEqual(stack.panel.calls(), []);
        assert.equal(stack.panel.state().users.length, usersBefore);
        assert.equal((await links(stack, first.id)).length, 1);
      },
    );

    await t.step(
      "a panel user already carrying our user id is linked, not duplicated",
      async () => {
        const user = await userWithEmail(stack, "returning");
        const existingId = await createPanelUser(stack, {
          email: user.email,
          username: "returning-player",
          external_id: user.id,
        });
        const usersBefore = stack.panel.state().users.length;
        stack.panel.resetCalls();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.ptero_user_id, existingId);
        assert.equal(res.body.username, "returning-player");
        assert.equal(res.body.created, true);
        assert.equal(callsTo(stack, "POST", USERS_PATH).length, 0);
        assert.equal(stack.panel.state().users.length, usersBefore);
        assert.equal(panelUsersFor(stack, user.id).length, 1);
        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: existingId,
          ptero_username: "returning-player",
        }]);
      },
    );

    await t.step("names come from the user's metadata", async () => {
      const split = await userWithEmail(stack, "ada.split");
      await stack.sql`update auth.users
        set raw_user_meta_data = ${
        stack.sql.json({ first_name: "Ada", last_name: "Lovelace" })
      } where id = ${split.id}`;
      const full = await userWithEmail(stack, "grace.full");
      await stack.sql`update auth.users
        set raw_user_meta_data = ${
        stack.sql.json({ full_name: "Grace Brewster Hopper" })
      } where id = ${full.id}`;

      for (const user of [split, full]) {
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
      const [ada] = panelUsersFor(stack, split.id);
      assert.ok(ada);
      assert.equal(ada.first_name, "Ada");
      assert.equal(ada.last_name, "Lovelace");
      const [grace] = panelUsersFor(stack, full.id);
      assert.ok(grace);
      assert.equal(grace.first_name, "Grace");
      assert.equal(grace.last_name, "Brewster Hopper");
    });

    await t.step(
      "a taken username falls back to <base>-<user id prefix>",
      async () => {
        const otherId = await createPanelUser(stack, {
          email: "someone.else@example.org",
          username: "collide",
        });
        const user = await userWithEmail(stack, "collide");
        const expected = `collide-${user.id.slice(0, 6)}`;
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.username, expected);
        assert.notEqual(res.body.ptero_user_id, otherId);
        const [mine] = panelUsersFor(stack, user.id);
        assert.ok(mine);
        assert.equal(mine.username, expected);
        assert.equal(mine.email, user.email);
        assert.match(mine.username, USERNAME);
        // The other account is untouched.
        const other = stack.panel.state().users.find((u) => u.id === otherId);
        assert.ok(other);
        assert.equal(other.username, "collide");
        assert.equal(other.email, "someone.else@example.org");
        assert.equal(other.external_id, null);
        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: mine.id,
          ptero_username: expected,
        }]);
      },
    );

    await t.step(
      "a panel account with the same email and no external id is adopted by a confirmed user",
      async () => {
        const legacyId = await createPanelUser(stack, {
          email: "legacy@example.com",
          username: "legacy-player",
        });
        const user = await userWithEmail(stack, "legacy");
        const [row] = await stack.sql`
          select email_confirmed_at from auth.users where id = ${user.id}`;
        assert.ok(row.email_confirmed_at, "the test user is confirmed");
        stack.panel.resetCalls();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.ptero_user_id, legacyId);
        assert.equal(res.body.username, "legacy-player");
        assert.equal(res.body.created, true);
        const same = panelUsersWithEmail(stack, "legacy@example.com");
        assert.equal(same.length, 1);
        assert.equal(same[0].id, legacyId);
        assert.equal(same[0].external_id, user.id);
        assert.equal(same[0].username, "legacy-player");
        assert.equal(same[0].first_name, "Legacy");
        assert.equal(
          callsTo(stack, "PATCH", `${USERS_PATH}/${legacyId}`).length,
          1,
        );
        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: legacyId,
          ptero_username: "legacy-player",
        }]);
      },
    );

    await t.step(
      "an unconfirmed user cannot take over a panel account with their email: 409",
      async () => {
        const legacyId = await createPanelUser(stack, {
          email: "unconfirmed@example.com",
          username: "unconfirmed-legacy",
        });
        const user = await userWithEmail(stack, "unconfirmed");
        await stack.sql`update auth.users set email_confirmed_at = null
          where id = ${user.id}`;
        stack.panel.resetCalls();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 409, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "panel_email_unconfirmed");
        assert.equal(res.body.ptero_user_id, undefined);
        const same = panelUsersWithEmail(stack, "unconfirmed@example.com");
        assert.equal(same.length, 1);
        assert.equal(same[0].id, legacyId);
        assert.equal(same[0].external_id, null);
        assert.equal(panelUsersFor(stack, user.id).length, 0);
        assert.equal(
          callsTo(stack, "PATCH", /^\/api\/application\//).length,
          0,
        );
        assert.deepEqual(await links(stack, user.id), []);
      },
    );

    await t.step(
      "an email owned by another external id on the panel: 409 panel_email_taken",
      async () => {
        const ownerId = "not-this-shop-user-42";
        const takenId = await createPanelUser(stack, {
          email: "taken@example.com",
          username: "taken-owner",
          external_id: ownerId,
        });
        const user = await userWithEmail(stack, "taken");
        stack.panel.resetCalls();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 409, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "panel_email_taken");
        const same = panelUsersWithEmail(stack, "taken@example.com");
        assert.equal(same.length, 1);
        assert.equal(same[0].id, takenId);
        assert.equal(same[0].external_id, ownerId);
        assert.equal(same[0].username, "taken-owner");
        assert.equal(panelUsersFor(stack, user.id).length, 0);
        assert.equal(
          callsTo(stack, "PATCH", /^\/api\/application\//).length,
          0,
        );
        assert.deepEqual(await links(stack, user.id), []);
      },
    );

    await t.step(
      "the panel failing the lookup: 502 panel_unavailable, nothing created",
      async () => {
        const user = await stack.user();
        const usersBefore = stack.panel.state().users.length;
        stack.panel.resetCalls();
        stack.panel.addFault({
          method: "GET",
          path: EXTERNAL_PATH,
          status: 500,
          times: 10,
        });
        try {
          const res = await invoke(user.client, FN);
          assert.equal(res.status, 502, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "panel_unavailable");
          // A read is retried (3 attempts), a create never attempted.
          assert.equal(callsTo(stack, "GET", EXTERNAL_PATH).length, 3);
          assert.equal(callsTo(stack, "POST", USERS_PATH).length, 0);
          assert.equal(stack.panel.state().users.length, usersBefore);
          assert.deepEqual(await links(stack, user.id), []);
        } finally {
          stack.panel.clearFaults();
        }
        // Once the panel is back, the same call succeeds.
        const retry = await invoke(user.client, FN);
        assert.equal(retry.status, 200, JSON.stringify(retry.body));
        assert.equal((await links(stack, user.id)).length, 1);
      },
    );

    await t.step(
      "a create whose answer is lost is reconciled on the next call",
      async () => {
        const user = await stack.user();
        stack.panel.resetCalls();
        stack.panel.addFault({
          method: "POST",
          path: USERS_PATH,
          loseResponse: true,
          times: 1,
        });
        try {
          const res = await invoke(user.client, FN);
          assert.equal(res.status, 502, JSON.stringify(res.body));
          assert.equal(errorCode(res.body), "panel_unavailable");
          // A write is not repeated blindly on a 5xx.
          assert.equal(callsTo(stack, "POST", USERS_PATH).length, 1);
          assert.equal(panelUsersFor(stack, user.id).length, 1);
          assert.deepEqual(await links(stack, user.id), []);
        } finally {
          stack.panel.clearFaults();
        }
        stack.panel.resetCalls();
        const retry = await invoke(user.client, FN);
        assert.equal(retry.status, 200, JSON.stringify(retry.body));
        const made = panelUsersFor(stack, user.id);
        assert.equal(made.length, 1);
        assert.equal(retry.body.ptero_user_id, made[0].id);
        assert.equal(callsTo(stack, "POST", USERS_PATH).length, 0);
        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: made[0].id,
          ptero_username: made[0].username,
        }]);
      },
    );

    await t.step(
      "without a signed-in user: 401 and the panel is not called",
      async () => {
        const linksBefore = await stack.sql`
          select count(*)::int as n from public.external_accounts`;
        stack.panel.resetCalls();
        const none = await fetch(`${stack.gateway.url}/functions/v1/${FN}`, {
          method: "POST",
        });
        assert.equal(none.status, 401);
        await none.body?.cancel();
        const forged = await invoke(stack.anon, FN, undefined, {
          Authorization: "Bearer not.a.jwt",
        });
        assert.equal(forged.status, 401);
        // The anon key is a valid JWT, but not a signed-in user.
        const anon = await invoke(stack.anon, FN);
        assert.equal(anon.status, 401);
        assert.equal(errorCode(anon.body), "unauthorized");
        assert.deepEqual(stack.panel.calls(), []);
        const linksAfter = await stack.sql`
          select count(*)::int as n from public.external_accounts`;
        assert.equal(linksAfter[0].n, linksBefore[0].n);
      },
    );

    await t.step(
      "five concurrent first calls make one panel user and one link",
      async () => {
        const user = await userWithEmail(stack, "double.clicker");
        const results = await Promise.all(
          Array.from({ length: 5 }, () => invoke(user.client, FN)),
        );
        assert.deepEqual(
          results.map((r) => r.status),
          [200, 200, 200, 200, 200],
          JSON.stringify(results.map((r) => r.body)),
        );
        const ids = new Set(results.map((r) => r.body.ptero_user_id));
        assert.equal(ids.size, 1);
        const made = panelUsersFor(stack, user.id);
        assert.equal(made.length, 1);
        assert.equal([...ids][0], made[0].id);
        assert.equal(panelUsersWithEmail(stack, user.email).length, 1);
        assert.deepEqual(await links(stack, user.id), [{
          ptero_user_id: made[0].id,
          ptero_username: "double.clicker",
        }]);
      },
    );

    await t.step(
      "five concurrent first calls by an unconfirmed user: one account, all 200",
      async () => {
        const user = await userWithEmail(stack, "unconfirmed.racer");
        await stack
          .sql`update auth.users set email_confirmed_at = null where id = ${user.id}`;
        const results = await Promise.all(
          Array.from({ length: 5 }, () => invoke(user.client, FN)),
        );
        assert.deepEqual(
          results.map((r) => r.status),
          [200, 200, 200, 200, 200],
          JSON.stringify(results.map((r) => r.body)),
        );
        assert.equal(new Set(results.map((r) => r.body.ptero_user_id)).size, 1);
        assert.equal(panelUsersFor(stack, user.id).length, 1);
      },
    );

    await t.step("the panel key never reaches the logs", () => {
      const text = stack.logs.join("\n");
      assert.ok(text.includes(FN));
      assert.ok(!text.includes(stack.keys.panelApiKey));
      assert.ok(!text.includes(stack.keys.serviceRoleKey));
    });
  } finally {
    await stack.close();
  }

  await t.step(
    "without panel credentials: 503 panel_not_configured",
    async () => {
      const bare = await startTestStack({ env: { PTERODACTYL_API_KEY: "" } });
      try {
        const user = await bare.user();
        const res = await invoke(user.client, FN);
        assert.equal(res.status, 503, JSON.stringify(res.body));
        assert.equal(errorCode(res.body), "panel_not_configured");
        assert.deepEqual(bare.panel.calls(), []);
        assert.deepEqual(await links(bare, user.id), []);
      } finally {
        await bare.close();
      }
    },
  );
});
