import assert from "node:assert/strict";
import { usernameFromEmail } from "./accounts.ts";

Deno.test("the panel username is the email's local part, lower-cased", () => {
  const cases: [string, string][] = [
    ["Jane.Doe@Example.com", "jane.doe"],
    ["JANE.DOE+Shop@example.com", "jane.doe-shop"],
    ["MixedCase_42@example.com", "mixedcase_42"],
    ["Ab@example.com", "player-ab"],
  ];
  for (const [email, username] of cases) {
    assert.equal(usernameFromEmail(email), username, email);
  }
});
