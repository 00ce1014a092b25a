/**
 * `npm run doctor -- --config` through the real sandboxes and a test stack: a clean
 * stack passes, each configuration fault is named with its fix and exits 1, the JSON
 * shape, and the read-only promise (only GETs on both sandboxes).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type CliRun, runDoctor } from "./_doctor.ts";
import { HANDLED_EVENT_TYPES } from "../supabase/functions/_shared/manifest.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import { startTestPanel, TEST_KEYS } from "../local/panel-sandbox/testing.ts";
import { startTestStack, type TestStack } from "./_stack.ts";
import { sweeper } from "./_sweep.ts";

interface Report {
  ok: boolean;
  checks: {
    id: string;
    ok: boolean | null;
    detail: string;
    fix: string | null;
  }[];
}

function runConfig(
  stack: TestStack,
  env: Record<string, string> = {},
  json = true,
): Promise<CliRun> {
  return runDoctor(stack, ["--config", ...(json ? ["--json"] : [])], env);
}

/** Runs `--config --json` and answers the report and the exit code. */
async function config(
  stack: TestStack,
  env: Record<string, string> = {},
): Promise<{ code: number; report: Report }> {
  const { code, stdout, stderr } = await runConfig(stack, env);
  assert.ok(stdout.trim().startsWith("{"), `${stdout}\n${stderr}`);
  return { code, report: JSON.parse(stdout) };
}

/** The failed checks: id → detail. */
function failures(report: Report): Record<string, string> {
  return Object.fromEntries(
    report.checks.filter((c) => c.ok === false).map((c) => [c.id, c.detail]),
  );
}

/** Asserts exactly `id` fails, with a detail matching `detail` and a fix. */
function failsOnly(
  result: { code: number; report: Report },
  id: string,
  detail: RegExp,
) {
  assert.equal(result.code, 1, JSON.stringify(result.report, null, 2));
  assert.equal(result.report.ok, false);
  assert.deepEqual(Object.keys(failures(result.report)), [id]);
  const check = result.report.checks.find((c) => c.id === id)!;
  assert.match(check.detail, detail);
  assert.ok(check.fix && check.fix.length > 0, "a failure has its fix");
}

Deno.test("doctor --config passes a clean stack and names each configuration fault", async (t) => {
  const stack = await startTestStack();
  const sweep = sweeper(stack);
  const stripe = createStripe(
    stack.env.STRIPE_SECRET_KEY!,
    stack.env.STRIPE_API_BASE,
  );
  const endpointId = stack.keys.stripeWebhookEndpointId!;
  try {
    await sweep.sweep();

    await t.step(
      "a clean stack passes every check (exit 0), read-only",
      async () => {
        const stripeBefore = stack.stripe.calls().length;
        const panelBefore = stack.panel.calls().length;
        const { code, report } = await config(stack);
        assert.equal(code, 0, JSON.stringify(report, null, 2));
        assert.equal(report.ok, true);
        assert.ok(report.checks.every((c) => c.ok !== false));
        const ids = report.checks.map((c) => c.id);
        for (
          const id of [
            "env.secrets",
            "env.stripe_key",
            "env.stripe_mode",
            "env.panel_key",
            "env.own_secrets",
            "stripe.key",
            "stripe.prices",
            "stripe.webhook_endpoint",
            "stripe.failed_deliveries",
            "panel.reachable",
            "panel.key",
            "panel.eggs",
            "db.migrations",
            "db.rls",
            "db.grants",
            "db.sweep",
            "db.vault",
          ]
        ) assert.ok(ids.includes(id), id);
        assert.ok(ids.some((id) => id.startsWith("panel.region.")));
        // Read-only: GETs only on both sandboxes.
        const methods = new Set([
          ...stack.stripe.calls().slice(stripeBefore).map((c) => c.method),
          ...stack.panel.calls().slice(panelBefore).map((c) => c.method),
        ]);
        assert.deepEqual([...methods], ["GET"]);
        assert.ok(
          !stack.panel.calls().some((c) => c.path.endsWith("/configuration")),
        );
      },
    );

    await t.step("the --json shape, exactly, and the text report", async () => {
      const { report } = await config(stack);
      assert.deepEqual(Object.keys(report), ["ok", "checks"]);
      for (const check of report.checks) {
        assert.deepEqual(Object.keys(check), ["id", "ok", "detail", "fix"]);
      }
      const text = await runConfig(stack, {}, false);
      assert.equal(text.code, 0);
      assert.match(text.stdout, /^✓ env\.secrets /m);
      assert.match(text.stdout, /^✓ panel\.region\.[\w-]+ +room for \d+× /m);
      assert.match(text.stdout, /all \d+ checks pass/);
    });

    await t.step("a wrong panel key: 401", async () => {
      failsOnly(
        await config(stack, {
          PTERODACTYL_API_KEY: "ptla_wrongkey00000000000000000000000000000",
        }),
        "panel.key",
        /rejected the key \(401: Unauthenticated\.\)/,
      );
    });

    await t.step("a non-admin panel key: 403", async () => {
      const panel = await startTestPanel();
      try {
        failsOnly(
          await config(stack, {
            PTERODACTYL_URL: panel.url,
            PTERODACTYL_API_KEY: TEST_KEYS.nonAdmin,
          }),
          "panel.key",
          /not a root admin \(403: This account does not have permission/,
        );
      } finally {
        await panel.close();
      }
    });

    await t.step("an archived price", async () => {
      const [row] = await stack.sql<{ stripe_price_id: string }[]>`
        select pp.stripe_price_id from public.plan_prices pp
        join public.plans p on p.id = pp.plan_id
        where pp.active and p.active order by 1 limit 1`;
      await stripe.prices.update(row.stripe_price_id, { active: false });
      try {
        failsOnly(
          await config(stack),
          "stripe.prices",
          new RegExp(`${row.stripe_price_id}\\): archived`),
        );
      } finally {
        await stripe.prices.update(row.stripe_price_id, { active: true });
      }
    });

    await t.step("an endpoint missing an event type", async () => {
      await stripe.webhookEndpoints.update(endpointId, {
        enabled_events: HANDLED_EVENT_TYPES.filter((t) =>
          t !== "charge.refunded"
        ),
      });
      try {
        failsOnly(
          await config(stack),
          "stripe.webhook_endpoint",
          /does not subscribe to charge\.refunded$/,
        );
      } finally {
        await stripe.webhookEndpoints.update(endpointId, {
          enabled_events: [...HANDLED_EVENT_TYPES],
        });
      }
    });

    await t.step("an endpoint disabled", async () => {
      await stripe.webhookEndpoints.update(endpointId, { disabled: true });
      try {
        const result = await config(stack);
        failsOnly(result, "stripe.webhook_endpoint", /is disabled/);
      } finally {
        await stripe.webhookEndpoints.update(endpointId, { disabled: false });
      }
    });

    await t.step("a plan with a missing egg", async () => {
      const [plan] = await stack.sql<{ id: string; ptero_egg_id: number }[]>`
        select id, ptero_egg_id from public.plans where active order by id limit 1`;
      await stack
        .sql`update public.plans set ptero_egg_id = 9999 where id = ${plan.id}`;
      try {
        failsOnly(
          await config(stack),
          "panel.eggs",
          new RegExp(`plan "${plan.id}": egg 9999 .* does not exist`),
        );
      } finally {
        await stack
          .sql`update public.plans set ptero_egg_id = ${plan.ptero_egg_id} where id = ${plan.id}`;
      }
    });

    await t.step("a region with no enabled node", async () => {
      const [region] = await stack.sql<{ region: string }[]>`
        select region from public.ptero_nodes where enabled order by region limit 1`;
      const disabled = await stack.sql<{ panel_node_id: number }[]>`
        update public.ptero_nodes set enabled = false
        where region = ${region.region} and enabled returning panel_node_id`;
      try {
        failsOnly(
          await config(stack),
          `panel.region.${region.region}`,
          /has no enabled node/,
        );
      } finally {
        await stack.sql`update public.ptero_nodes set enabled = true
          where panel_node_id in ${
          stack.sql(disabled.map((n) => n.panel_node_id))
        }`;
      }
    });

    await t.step("a database it cannot read: exit 2", async () => {
      const out = await runConfig(stack, {
        SUPABASE_DB_URL: "postgres://nobody@127.0.0.1:1/none",
      });
      assert.equal(out.code, 2, out.stdout);
      assert.match(out.stderr, /The database could not be read/);
    });
  } finally {
    await sweep.close();
    await stack.close();
  }
});
