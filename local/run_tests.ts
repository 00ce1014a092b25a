/**
 * `npm test`: starts one Postgres for the run (embedded, or the server in
 * DATABASE_URL), prepares a template database (bootstrap, migrations, seed) that each
 * test file copies, runs `deno test`, and ends with the plain line CI reads:
 * `tests: N passed, N failed`, taken from deno's own summary.
 *
 * `--edge` (`npm run test:edge`) runs `deno test` with Deno 2.1.4 instead, the version
 * Supabase's edge runtime is built on, so an API or dependency the platform lacks fails
 * here first.
 *
 * @module
 */
import { createDatabase, dropDatabase, prepareDatabase } from "./database.ts";
import { freePort, startPostgres } from "./postgres.ts";

const TEMPLATE = "gameshop_test_template";

/** The Deno the hosted edge runtime is built on (npm `@deno/linux-x64-glibc`, aliased). */
const EDGE_DENO_VERSION = "2.1.4";

/** The Deno binary and flags the tests run with. */
async function testRuntime(
  root: string,
  edge: boolean,
): Promise<{ deno: string; flags: string[]; env: Record<string, string> }> {
  if (!edge) return { deno: Deno.execPath(), flags: [], env: {} };
  const deno = `${root}node_modules/deno-edge/deno`;
  let version = "";
  try {
    const out = await new Deno.Command(deno, { args: ["--version"] }).output();
    version = new TextDecoder().decode(out.stdout);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!version.startsWith(`deno ${EDGE_DENO_VERSION} `)) {
    throw new Error(
      `Deno ${EDGE_DENO_VERSION} not found at ${deno}: it installs with \`npm ci\` ` +
        "on Linux x64 only (the one platform the registry has it for); run " +
        "`npm run test:edge` there, for example in CI",
    );
  }
  return {
    deno,
    // Deno 2.1 cannot read deno.lock (version 5): it keeps its own lock (version 4).
    flags: [`--lock=${root}deno.edge.lock`],
    // Deno 2.1 fetches npm packages with its own CA list unless told to use the system's.
    env: { DENO_TLS_CA_STORE: "system" },
  };
}

async function main(): Promise<number> {
  const root = new URL("../", import.meta.url).pathname;
  const edge = Deno.args.includes("--edge");
  const testArgs = Deno.args.filter((arg) => arg !== "--edge");
  const runtime = await testRuntime(root, edge);
  let serverUrl = Deno.env.get("DATABASE_URL");
  let stop = async () => {};
  let tmp: string | undefined;
  let child: Deno.ChildProcess | undefined;
  // Ctrl-C or a CI timeout stops the tests; the run then ends through `finally`,
  // leaving no Postgres or temp dir behind.
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      interrupted = true;
      try {
        child?.kill(signal);
      } catch {
        // It has already exited.
      }
    });
  }
  if (!serverUrl) {
    tmp = await Deno.makeTempDir({ prefix: "gameshop-test-pg-" });
    await Deno.chmod(tmp, 0o755);
    const pg = await startPostgres({
      dataDir: `${tmp}/data`,
      port: freePort(),
    });
    serverUrl = pg.url;
    stop = () => pg.stop();
  }
  try {
    const templateUrl = await createDatabase(serverUrl, TEMPLATE);
    await prepareDatabase(templateUrl);
    if (interrupted) return 130;
    child = new Deno.Command(runtime.deno, {
      args: [
        "test",
        "-A",
        "--no-check=remote",
        "--parallel",
        ...runtime.flags,
        ...testArgs,
      ],
      cwd: root,
      env: {
        TEST_DATABASE_URL: serverUrl,
        TEST_TEMPLATE_DATABASE: TEMPLATE,
        // For tests that run a script in a process of their own, with the same Deno.
        TEST_DENO_FLAGS: runtime.flags.join(" "),
        NO_COLOR: "1",
        ...runtime.env,
      },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let summary: { passed: number; failed: number } | undefined;
    const decoder = new TextDecoderStream();
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(decoder)) {
      await Deno.stdout.write(new TextEncoder().encode(chunk));
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const match = /^(?:ok|FAILED) \| (\d+) passed.*\| (\d+) failed/.exec(
          line.trim(),
        );
        if (match) {
          summary = { passed: Number(match[1]), failed: Number(match[2]) };
        }
      }
    }
    const status = await child.status;
    if (interrupted) {
      console.log("tests: 0 passed, 1 failed");
      console.error("interrupted before the tests finished");
      return 130;
    }
    await dropDatabase(serverUrl, TEMPLATE);
    if (!summary) {
      console.log("tests: 0 passed, 1 failed");
      console.error("deno test printed no summary (it did not finish)");
      return 1;
    }
    console.log(`tests: ${summary.passed} passed, ${summary.failed} failed`);
    return status.success && summary.failed === 0 ? 0 : 1;
  } finally {
    await stop();
    if (tmp) await Deno.remove(tmp, { recursive: true });
  }
}

Deno.exit(await main());
