/**
 * Run by `webhook_memory_test.ts` in a process of its own (test files run in parallel
 * in one process, so only a process of its own has an RSS that is this probe's): starts
 * a stack, sends twenty unsigned 10 MB webhooks at once through the gateway (half with
 * a Content-Length, half chunked), and prints one line `RESULT {…}` with the statuses,
 * the error codes and the process's RSS before and after.
 *
 * @module
 */
import { countedBody, errorCode, rawPost } from "./_fixtures.ts";
import { startTestStack } from "./_stack.ts";

const SIZE = 10 * 1000 * 1000;
const REQUESTS = 20;

const stack = await startTestStack();
try {
  const send = async (i: number) => {
    const body = countedBody({ total: SIZE });
    const res = await rawPost(
      stack,
      "stripe-webhook",
      body.stream,
      i % 2 === 0 ? { "Content-Length": String(SIZE) } : {},
    );
    return { status: res.status, code: errorCode(res.body) };
  };
  // Once first, so what the first request sets up is not counted.
  await send(0);
  const before = Deno.memoryUsage().rss;
  const replies = await Promise.all(
    Array.from({ length: REQUESTS }, (_, i) => send(i)),
  );
  const after = Deno.memoryUsage().rss;
  console.log(`RESULT ${JSON.stringify({ before, after, replies })}`);
} finally {
  await stack.close();
}
