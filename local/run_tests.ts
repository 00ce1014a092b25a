/**
 * `npm test`: starts one Postgres for the run (embedded, or the server in
 * DATABASE_URL), prepares a template database (bootstrap, migrations, seed) that each
 * test file copies, runs `deno test`, and ends with the plain line CI reads:
 * `tests: N passed, N failed`, taken from deno's own summary.
 *
 * @module
 */
import { createDatabase, dropDatabase, prepareDatabase } from "./database.ts";
import { startPostgres } from "./postgres.ts";

const TEMPLATE = "gameshop_test_template";

async function main(): Promise<number> {
  const root = new URL("../", import.meta.url).pathname;
  let serverUrl = Deno.env.get("DATABASE_URL");
  let stop = async () => {};
  let tmp: string | undefined;
  if (!serverUrl) {
    tmp = await Deno.makeTempDir({ prefix: "gameshop-test-pg-" });
    await Deno.chmod(tmp, 0o755);
    const pg = await startPostgres({
      dataDir: `${tmp}/data`,
      port: 54399 + (Deno.pid % 500),
    });
    serverUrl = pg.url;
    stop = () => pg.stop();
  }
  try {
    const templateUrl = await createDatabase(serverUrl, TEMPLATE);
    await prepareDatabase(templateUrl);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check=remote", "--parallel", ...Deno.args],
      cwd: root,
      env: {
        TEST_DATABASE_URL: serverUrl,
        TEST_TEMPLATE_DATABASE: TEMPLATE,
        NO_COLOR: "1",
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
