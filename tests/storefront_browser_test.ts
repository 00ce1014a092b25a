import assert from "node:assert/strict";
import type { Locator, Page } from "playwright-core";
import { FUNCTIONS } from "../local/functions.ts";
import {
  accessibilityProblems,
  noBrowser,
  openBrowser,
  PHONE,
  screenshot,
} from "./_browser.ts";
import { clearStripeFaults } from "./_purchase.ts";
import { startTestStack, type TestStack } from "./_stack.ts";

// The reference storefront in headless Chromium against a whole local stack: what a
// customer does and reads, checked in the page and in the database.

const skipped = noBrowser();
if (skipped) console.log(`storefront browser tests ${skipped}`);

/** Functions of issue 15; their tests run once the stack has them. */
const PLAN_CHANGES = "change-server-plan" in FUNCTIONS;
const PORTAL = "create-billing-portal-session" in FUNCTIONS;
for (
  const [present, name] of [[PLAN_CHANGES, "change-server-plan"], [
    PORTAL,
    "create-billing-portal-session",
  ]] as const
) {
  if (!present && !skipped) {
    console.log(
      `storefront browser test of ${name} skipped: the stack has no ${name} function yet`,
    );
  }
}

async function signIn(page: Page, stack: TestStack, email: string) {
  await page.goto(stack.storefront!.url);
  await page.getByLabel("Email").fill(email);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${email}`).waitFor();
}

function planCard(page: Page, planId: string) {
  return page.locator(`article[data-plan="${planId}"]`);
}

/** Fills the plan's form and presses Buy. */
async function buy(
  page: Page,
  planId: string,
  region: string,
  name: string,
): Promise<void> {
  const card = planCard(page, planId);
  await card.getByLabel("Region").selectOption(region);
  await card.getByLabel("Server name").fill(name);
  await card.getByRole("button", { name: "Buy" }).click();
}

/** Buys a server through the page and the sandbox's checkout page, up to "Running". */
async function buyRunningServer(
  page: Page,
  stack: TestStack,
  options: { email: string; name: string; shots?: [string, string] },
): Promise<{ orderId: string; card: Locator }> {
  await signIn(page, stack, options.email);
  await buy(page, "mc-java-4gb", "eu-west", options.name);
  await page.waitForURL(`${stack.stripe.url}/_sandbox/pay/**`);
  if (options.shots) await screenshot(page, options.shots[0]);
  await page.getByRole("button", { name: "Pay (card succeeds)" }).click();
  await page.waitForURL(`${stack.storefront!.url}/checkout/success**`);
  await page.getByText("Thank you: payment received").waitFor();
  if (options.shots) await screenshot(page, options.shots[1]);
  const [row] = await stack.sql<{ id: string }[]>`
    select o.id from public.orders o join auth.users u on u.id = o.user_id
    where u.email = ${options.email} and o.server_name = ${options.name}`;
  const card = page.locator(`article[data-order="${row.id}"]`);
  await card.locator('.badge:text("Running")').waitFor({ timeout: 30_000 });
  return { orderId: row.id, card };
}

/** Runs `fn` with a page of a fresh browser, closed afterwards. */
async function withPage(
  fn: (page: Page) => Promise<void>,
  viewport?: { width: number; height: number },
): Promise<void> {
  const browser = await openBrowser(viewport);
  try {
    await fn(browser.page);
  } finally {
    await browser.close();
  }
}

async function setRegionNodes(
  stack: TestStack,
  region: string,
  enabled: boolean,
) {
  await stack.sql`update public.ptero_nodes set enabled = ${enabled}
    where region = ${region}`;
}

/** The order's columns the test reads back. */
async function orderRow(stack: TestStack, orderId: string) {
  const [row] = await stack.sql<
    { plan_id: string; cancel_at: Date | null }[]
  >`select plan_id, cancel_at from public.orders where id = ${orderId}`;
  return row;
}

Deno.test({
  name: `storefront in a browser${skipped ? ` (${skipped})` : ""}`,
  ignore: skipped !== null,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const stack = await startTestStack({ storefront: true });
  try {
    await t.step(
      "a customer signs in, buys, pays on the checkout page and sees the server running (on a phone)",
      () =>
        withPage(async (page) => {
          await page.goto(stack.storefront!.url);
          await planCard(page, "mc-java-4gb").waitFor();
          await page.getByText("Local stack only").waitFor();
          await screenshot(page, "01-catalogue");
          const { card } = await buyRunningServer(page, stack, {
            email: "buyer@example.com",
            name: "Survival",
            shots: ["02-stripe-checkout", "03-success"],
          });
          await card.getByRole("link", { name: "Open the game panel" })
            .waitFor();
          await page.getByText("emails you a link to set your password")
            .waitFor();
          await screenshot(page, "04-my-servers-running");
          assert.deepEqual(await accessibilityProblems(page), []);

          const rows = await stack.sql<
            { status: string; plan_id: string; region: string }[]
          >`select o.status, o.plan_id, o.region from public.orders o
            join auth.users u on u.id = o.user_id
            where u.email = 'buyer@example.com'`;
          assert.deepEqual(rows.map((r) => ({ ...r })), [{
            status: "active",
            plan_id: "mc-java-4gb",
            region: "eu-west",
          }]);
          assert.equal(stack.panel.state().servers.length, 1);
        }, PHONE),
    );

    await t.step(
      "a sold-out region shows as sold out, and a sale it can no longer take is refused in customer words",
      () =>
        withPage(async (page) => {
          try {
            await setRegionNodes(stack, "us-east", false);
            await signIn(page, stack, "soldout@example.com");
            const card = planCard(page, "mc-java-2gb");
            await card.getByText("US East: sold out").waitFor();
            assert.equal(
              await card.locator('option[value="us-east"]').isDisabled(),
              true,
            );
            await screenshot(page, "05-sold-out-region");

            // The page was loaded while EU West had room; it sells out before the click.
            await setRegionNodes(stack, "eu-west", false);
            await buy(page, "mc-java-2gb", "eu-west", "Late buyer");
            await card.getByRole("alert").getByText(
              "Sorry, this region just sold out for this plan.",
            ).waitFor();
            await screenshot(page, "06-sold-out-refused");
            const [{ n }] = await stack.sql<{ n: number }[]>`
              select count(*)::int as n from public.orders o
              join auth.users u on u.id = o.user_id
              where u.email = 'soldout@example.com'`;
            assert.equal(n, 0);
            assert.equal(page.url().startsWith(stack.storefront!.url), true);
          } finally {
            await setRegionNodes(stack, "eu-west", true);
            await setRegionNodes(stack, "us-east", true);
          }
        }),
    );

    await t.step(
      "a function error is shown in customer words, never the function's message",
      () =>
        withPage(async (page) => {
          try {
            await signIn(page, stack, "unlucky@example.com");
            stack.stripe.addFault({
              method: "POST",
              path: "/v1/checkout/sessions",
              status: 500,
            });
            await buy(page, "mc-java-2gb", "eu-west", "Unlucky");
            const alert = planCard(page, "mc-java-2gb").getByRole("alert");
            await alert.getByText("The payment service is not answering")
              .waitFor();
            const text = await alert.textContent() ?? "";
            assert.doesNotMatch(
              text,
              /stripe_error|provider is unavailable|Error:|at \w+ \(/,
            );
            await screenshot(page, "07-function-error");
          } finally {
            await clearStripeFaults(stack);
          }
        }),
    );

    await t.step({
      name: "a plan upgrade: preview with the amount, then confirm",
      ignore: !PLAN_CHANGES,
      fn: () =>
        withPage(async (page) => {
          const { orderId, card } = await buyRunningServer(page, stack, {
            email: "upgrader@example.com",
            name: "Grow",
          });
          await card.getByLabel("Change plan to").selectOption("mc-java-8gb");
          await card.getByRole("button", { name: "Preview change" }).click();
          const preview = card.getByRole("region", {
            name: "Plan change preview",
          });
          await preview.getByText("Upgrade to").waitFor();
          const amount = await preview.locator(".amount").textContent() ?? "";
          assert.match(amount, /Due now: \d+\.\d\d [A-Z]{3}/);
          await screenshot(page, "08-upgrade-preview");
          assert.equal(
            (await orderRow(stack, orderId)).plan_id,
            "mc-java-4gb",
            "a preview changes nothing",
          );
          await preview.getByRole("button", { name: /and upgrade/ }).click();
          await card.locator("dd", { hasText: "8 GB memory" }).waitFor({
            timeout: 30_000,
          }).catch(async (error) => {
            const changes = await stack.sql`
              select status, customer_message from public.plan_changes
              where order_id = ${orderId}`;
            throw new Error(
              `${error}\npage: ${await card.textContent()}\nchanges: ${
                JSON.stringify(changes)
              }`,
            );
          });
          await screenshot(page, "09-upgraded");
          assert.equal((await orderRow(stack, orderId)).plan_id, "mc-java-8gb");
        }),
    });

    await t.step({
      name: "the portal's cancel shows on My servers with its date",
      ignore: !PORTAL,
      fn: () =>
        withPage(async (page) => {
          const { orderId, card } = await buyRunningServer(page, stack, {
            email: "leaver@example.com",
            name: "Farewell",
          });
          await card.getByRole("button", { name: "Manage billing" }).click();
          await page.waitForURL(`${stack.stripe.url}/_sandbox/portal/**`);
          await screenshot(page, "10-billing-portal");
          await page.getByRole("button", { name: "Cancel plan" }).click();
          await page.getByText("cancels on").waitFor();
          await stack.idle();
          await page.getByRole("link", { name: "Return" }).click();
          await page.waitForURL(`${stack.storefront!.url}/**`);
          const { cancel_at } = await orderRow(stack, orderId);
          assert.ok(cancel_at, "the portal's cancel reached the order");
          const date = cancel_at.toLocaleDateString("en-US", {
            year: "numeric",
            month: "long",
            day: "numeric",
            timeZone: "UTC",
          });
          await card.locator(".cancel-notice", {
            hasText: `Cancels on ${date}`,
          }).waitFor();
          await screenshot(page, "11-cancel-shown");
        }),
    });
  } finally {
    await stack.close();
  }
});
