/**
 * `npm run doctor` as an operator runs it: a child process with the stack's env only
 * (as `.env.local` would give it), plain text (NO_COLOR), and the test run's Deno flags.
 *
 * @module
 */
import { denoRunArgs } from "./_fixtures.ts";
import type { TestStack } from "./_stack.ts";

/** What the command printed and its exit status. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `local/doctor.ts` with `args` against the stack, `env` over its env. */
export async function runDoctor(
  stack: TestStack,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...denoRunArgs(new URL("../local/doctor.ts", import.meta.url)),
      ...args,
    ],
    env: { ...stack.env, ...env, NO_COLOR: "1" } as Record<string, string>,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: out.code,
    stdout: text.decode(out.stdout),
    stderr: text.decode(out.stderr),
  };
}
