import assert from "node:assert/strict";
import { cutText, wellFormedJson, wellFormedText } from "./text.ts";

Deno.test("lone surrogates become U+FFFD in strings and keys", () => {
  assert.equal(wellFormedText("a\ud83d"), "a\ufffd");
  assert.equal(wellFormedText("\udc00b"), "\ufffdb");
  assert.equal(wellFormedText("ok \ud83d\ude00"), "ok \ud83d\ude00");
  assert.deepEqual(
    wellFormedJson({ "k\ud800": ["x\udfff", 1, null, { a: "\ud83d" }] }),
    { "k\ufffd": ["x\ufffd", 1, null, { a: "\ufffd" }] },
  );
  // What Postgres is sent is valid JSON without surrogate escapes.
  assert.doesNotMatch(
    JSON.stringify(wellFormedJson({ id: "a\ud83d" })),
    /\\ud/,
  );
});

Deno.test("a cut never splits an emoji", () => {
  const text = "x".repeat(63_999) + "\ud83d\ude00tail";
  const cut = cutText(text, 64_000);
  assert.equal(cut.length, 63_999);
  assert.equal(cut, cut.toWellFormed());
  assert.equal(cutText("ab\ud83d\ude00", 4), "ab\ud83d\ude00");
  assert.equal(cutText("short", 64_000), "short");
});
