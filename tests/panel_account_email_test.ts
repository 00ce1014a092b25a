import assert from "node:assert/strict";
import { createPanelUser, invoke } from "./_fixtures.ts";
import { startTestStack } from "./_stack.ts";

Deno.test("create-pterodactyl-user adopts a panel account only on an exact email match", async () => {
  const stack = await startTestStack();
  try {
    // The panel's filter[email] is a partial match: it lists both, the wrong one first.
    const lookalike = await createPanelUser(stack, {
      email: "old.bob@example.com",
      username: "old-bob",
    });
    const exact = await createPanelUser(stack, {
      email: "bob@example.com",
      username: "bob-legacy",
    });
    assert.ok(lookalike < exact);
    const user = await stack.user("bob@example.com");

    const res = await invoke(user.client, "create-pterodactyl-user");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ptero_user_id, exact);
    assert.equal(res.body.username, "bob-legacy");
    const users = stack.panel.state().users;
    assert.equal(users.find((u) => u.id === exact)?.external_id, user.id);
    assert.equal(users.find((u) => u.id === lookalike)?.external_id, null);
    const [link] = await stack
      .sql`select ptero_user_id from public.external_accounts
      where user_id = ${user.id}`;
    assert.equal(link.ptero_user_id, exact);
  } finally {
    await stack.close();
  }
});
