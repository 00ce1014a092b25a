import assert from "node:assert/strict";
import { isTransientDbError } from "./db.ts";

function failure(code: string): Error {
  return Object.assign(new Error(`failed: ${code}`), { code });
}

Deno.test("a connection refused, reset, closed or timed out is transient", () => {
  for (
    const code of [
      "ECONNREFUSED",
      "ECONNRESET",
      "ETIMEDOUT",
      "CONNECT_TIMEOUT",
      "CONNECTION_CLOSED",
      "08006",
      "57P01",
      "53300",
      "40001",
      "40P01",
    ]
  ) {
    assert.equal(isTransientDbError(failure(code)), true, code);
  }
});

Deno.test("a query's own error is not transient", () => {
  for (const code of ["23505", "42P01", "P0001", "22P02"]) {
    assert.equal(isTransientDbError(failure(code)), false, code);
  }
  assert.equal(isTransientDbError("ECONNRESET"), false);
  assert.equal(isTransientDbError(new Error("ECONNRESET")), false);
});
