/**
 * Browser tests: headless Chromium (Debian's `chromium`, or CHROMIUM_PATH) driven by
 * `playwright-core`, never a downloaded browser, with the background networking a
 * closed network cannot serve turned off and a fresh profile per browser. A machine
 * without Chromium skips these tests with a line saying so.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Where Chromium is expected. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ??
  "/usr/bin/chromium";

/** Where the test run saves its screenshots (git-ignored). */
export const SCREENSHOTS = new URL("../.local/screenshots/", import.meta.url)
  .pathname;

/** Why browser tests cannot run here, or null when Chromium is installed. */
export function noBrowser(): string | null {
  try {
    Deno.statSync(CHROMIUM_PATH);
    return null;
  } catch {
    return `skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  }
}

/** A phone-sized screen (iPhone 12-14 class). */
export const PHONE = { width: 390, height: 844 };

/** A fresh headless Chromium with its own profile; `close` removes the profile. */
export async function openBrowser(
  viewport = { width: 1280, height: 900 },
): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport,
    locale: "en-US",
    timezoneId: "UTC",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(20_000);
  return {
    context,
    page,
    async close() {
      await context.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

let announced = false;

/** Saves a full-page screenshot as `.local/screenshots/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  if (!announced) {
    console.log(`screenshots: ${SCREENSHOTS}`);
    announced = true;
  }
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/**
 * Accessibility basics the page must keep: every form control has a label, every
 * button a name, and nothing is wider than the screen (no sideways scrolling).
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  // Runs in the page (a string: the tests are not type-checked with the DOM's types).
  return await page.evaluate<string[]>(`(() => {
    const problems = [];
    for (const el of document.querySelectorAll("input, select, textarea")) {
      const id = el.getAttribute("id");
      const labelled = (id && document.querySelector('label[for="' + id + '"]')) ||
        el.getAttribute("aria-label") || el.closest("label");
      if (!labelled) problems.push("unlabelled " + el.outerHTML.slice(0, 80));
    }
    for (const el of document.querySelectorAll("button, a")) {
      if (!(el.textContent || "").trim() && !el.getAttribute("aria-label")) {
        problems.push("nameless " + el.outerHTML.slice(0, 80));
      }
    }
    if (document.documentElement.scrollWidth > window.innerWidth) {
      problems.push("page is " + document.documentElement.scrollWidth +
        "px wide on a " + window.innerWidth + "px screen");
    }
    return problems;
  })()`);
}
