import { createLogger } from "../supabase/functions/_shared/platform/log.ts";
import { connect } from "../supabase/functions/_shared/platform/db.ts";
import { createStripe } from "../supabase/functions/_shared/stripe/client.ts";
import { webhookFromEnv } from "../supabase/functions/stripe-webhook/handler.ts";
import { createFloorTable, durableFloorHandler, load, serve, signedDeliveries, signatureOnlyHandler } from "./bench_load.ts";
import { createDatabase, dropDatabase } from "./database.ts";
import { startPostgres } from "./postgres.ts";
import { startStack } from "./stack.ts";

const tmp = await Deno.makeTempDir({ prefix: "gameshop-exp-" });
await Deno.chmod(tmp, 0o755);
const pg = await startPostgres({ dataDir: `${tmp}/data`, port: 54800 + (Deno.pid % 90) });
const dbUrl = await createDatabase(pg.url, "exp");
const quiet = { write: () => {} };
const stack = await startStack({ databaseUrl: dbUrl, stateDir: tmp, ephemeralKeys: true, ports: { gateway: 0, stripe: 0, panel: 0 }, log: createLogger({}, quiet), functionLog: () => {} });
const floorSql = connect(dbUrl);
try {
  const secret = stack.keys.stripeWebhookSecret;
  const stripe = createStripe(stack.keys.stripeSecretKey, stack.stripe.url);
  await createFloorTable(floorSql);
  const webhook = webhookFromEnv(stack.env, quiet);
  const urls: Record<string, string> = {
    floor: serve(durableFloorHandler(stripe, secret, floorSql)).url,
    webhook: serve(webhook.handler).url,
  };
  const mk = (r: number) => signedDeliveries(Array.from({ length: 600 }, (_, i) => ({ id: `evt_${r}_${i}`, object: "event", type: "customer.created", api_version: "2026-10-28.endive", created: 1700000000, data: { object: { id: `cus_${i}`, object: "customer", metadata: {} } } })), secret, 0.2);
  for (let r = 0; r < 8; r++) {
    const d = await mk(r);
    const names = r % 2 ? ["webhook", "floor"] : ["floor", "webhook"];
    for (const n of names) {
      const res = await load(urls[n], d, 32);
      console.log(r, n, res.perSecond.toFixed(0), res.p99.toFixed(0), JSON.stringify(res.statuses));
    }
  }
  const [{ s }] = await floorSql`select current_setting('synchronous_commit') || ' fsync=' || current_setting('fsync') as s`;
  console.log(s);
} finally {
  await floorSql.end();
  await stack.close();
  await dropDatabase(pg.url, "exp");
  await pg.stop();
  await Deno.remove(tmp, { recursive: true });
}
Deno.exit(0);
