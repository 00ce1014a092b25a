import assert from "node:assert/strict";
import { denoRunArgs } from "./_fixtures.ts";

const MB = 1024 * 1024;

Deno.test("twenty unsigned 10 MB webhooks at once leave the memory where it was", async () => {
  const probe = new URL("./_webhook_memory_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: denoRunArgs(probe, "--no-check"),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, `the probe exited with ${out.code}`);
  const line = new TextDecoder().decode(out.stdout).split("\n")
    .find((text) => text.startsWith("RESULT "));
  assert.ok(line, "the probe printed no result");
  const result = JSON.parse(line.slice("RESULT ".length)) as {
    before: number;
    after: number;
    replies: { status: number; code: unknown }[];
  };
  assert.equal(result.replies.length, 20);
  for (const reply of result.replies) {
    assert.deepEqual(reply, { status: 400, code: "invalid_signature" });
  }
  const growth = result.after - result.before;
  console.log(
    `RSS ${Math.round(result.before / MB)} MB → ${
      Math.round(result.after / MB)
    } MB`,
  );
  // Refused unread, the twenty add a few MB; read whole, they added 130 to 420 MB.
  assert.ok(
    growth < 50 * MB,
    `RSS grew by ${Math.round(growth / MB)} MB (${
      Math.round(result.before / MB)
    } → ${Math.round(result.after / MB)} MB)`,
  );
});
