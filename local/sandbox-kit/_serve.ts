/**
 * Loopback HTTP servers that close promptly on every Deno we run on.
 *
 * `server.shutdown()` is graceful: it waits for every open connection to end. Until
 * denoland/deno#31959 (2026) that included a connection that never sent a request,
 * such as the spare one a fetch client opens when several first calls race, so Deno
 * 2.1 (the edge runtime's, under `npm run test:edge`) waited until the client dropped
 * it, about three minutes. Closing here instead waits for the requests being answered
 * and then closes every connection at once (the server's abort signal): immediate on
 * every version, and with nothing in flight nothing is lost. (The two cannot be
 * combined: on Deno 2.1, aborting after `shutdown()` began throws `BadResource`.)
 *
 * @module
 */

/** A running loopback server. */
export interface LoopbackServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /**
   * Waits for the requests being answered (at most `graceMs`), then stops listening
   * and closes every connection. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Options of `serveLoopback`. */
export interface LoopbackServerOptions {
  /** default 0: a free port */
  port?: number;
  /** longest wait for requests in flight when closing; default 5000 ms */
  graceMs?: number;
}

/** Waits `ms`, or less once `done` settles; leaves no timer behind. */
async function within(done: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([done, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Serves `handler` on 127.0.0.1 with a close that never waits on idle connections. */
export function serveLoopback(
  handler: (request: Request) => Response | Promise<Response>,
  options: LoopbackServerOptions = {},
): LoopbackServer {
  const graceMs = options.graceMs ?? 5000;
  const abort = new AbortController();
  // Each request until its answer is handed to the connection (or the client left).
  const inFlight = new Set<Promise<unknown>>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    signal: abort.signal,
    onListen() {},
  }, (request, info) => {
    const answer = (async () => await handler(request))();
    const tracked: Promise<unknown> = answer.then(() => info.completed)
      .catch(() => {})
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    return answer;
  });
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    close() {
      closed ??= (async () => {
        const settled = (async () => {
          while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        })();
        await within(settled, graceMs);
        // One turn of the event loop lets the last answers reach their sockets.
        await new Promise((resolve) => setTimeout(resolve, 0));
        abort.abort();
        await server.finished;
      })();
      return closed;
    },
  };
}
