import assert from "node:assert/strict";
import { FUNCTIONS, type Sdk } from "../supabase/functions/_shared/manifest.ts";
import { testDenoFlags } from "./_fixtures.ts";

/** The module graph `deno info --json` reports for a file. */
interface ModuleGraph {
  modules: { dependencies?: { code?: { specifier?: string } }[] }[];
}

/** The SDKs of the manifest's list that a function's module graph loads. */
async function sdksLoaded(fn: string): Promise<string[]> {
  const path = new URL(`../supabase/functions/${fn}/index.ts`, import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    // The runtime's own lock flags (Deno 2.1 reads its own lock file, not deno.lock).
    args: ["info", ...testDenoFlags(), "--json", path.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as ModuleGraph;
  const sdks: Sdk[] = ["stripe", "@supabase/supabase-js", "postgres"];
  const loaded = new Set<string>();
  for (const module of graph.modules) {
    for (const dependency of module.dependencies ?? []) {
      // `npm:stripe@23.1.0` or `npm:/stripe@23.1.0`: the package's own entry (a
      // subpath such as `@supabase/supabase-js/cors` holds constants only).
      const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@[^/]+$/.exec(
        dependency.code?.specifier ?? "",
      );
      if (match && (sdks as string[]).includes(match[1])) loaded.add(match[1]);
    }
  }
  return [...loaded].sort();
}

Deno.test("no function loads an SDK it does not use (deno info against the manifest)", async (t) => {
  for (const [fn, spec] of Object.entries(FUNCTIONS)) {
    await t.step(fn, async () => {
      assert.deepEqual(await sdksLoaded(fn), [...spec.sdks].sort());
    });
  }
});
