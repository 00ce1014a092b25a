/**
 * Serves the reference storefront (`storefront/`): its page, its TypeScript bundled for
 * the browser (`deno bundle`, once at start), and `/config.json` naming the project.
 * Against the local stack it also answers `POST /local/sign-in` (`{email}` → a token
 * the stack signs itself, as `npm run token` does): local only, never on a hosted
 * project, where the page signs in with Supabase Auth.
 *
 * `npm start` serves it beside the stack. Against a hosted project:
 * `SUPABASE_URL=https://<ref>.supabase.co SUPABASE_PUBLISHABLE_KEY=sb_publishable_…
 * npm run storefront` (port 3000, or STOREFRONT_PORT).
 *
 * @module
 */
import { z } from "zod";
import { type LocalKeys, userAccessToken } from "./keys.ts";
import { serveLoopback } from "./sandbox-kit/mod.ts";
import { ensureUser } from "./token.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const FILES: Record<string, string> = {
  "/style.css": "text/css; charset=utf-8",
};
/** Paths the page answers (Stripe Checkout returns to the last two). */
const PAGES = ["/", "/checkout/success", "/checkout/canceled"];

/** How the storefront reaches the project. */
export interface StorefrontProject {
  supabaseUrl: string;
  /** A publishable key (or, on a project with only legacy keys, the anon key). */
  publishableKey: string;
}

/** A running storefront. */
export interface Storefront {
  url: string;
  port: number;
  /** Names the project once it is known (the local gateway starts after this). */
  connect(project: StorefrontProject): void;
  close(): Promise<void>;
}

/**
 * Bundles `storefront/app.ts` for the browser with the npm-installed Deno (`deno
 * bundle` needs 2.4 or later; the edge test run's Deno 2.1 has none).
 */
export async function bundleStorefront(): Promise<string> {
  const out = await Deno.makeTempDir({ prefix: "storefront-" });
  try {
    const result = await new Deno.Command(`${ROOT}node_modules/.bin/deno`, {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "--minify",
        "--config",
        `${ROOT}deno.json`,
        "-o",
        `${out}/app.js`,
        `${ROOT}storefront/app.ts`,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(
        `Bundling the storefront failed: ${
          new TextDecoder().decode(result.stderr).trim()
        }`,
      );
    }
    return await Deno.readTextFile(`${out}/app.js`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

const SignIn = z.strictObject({ email: z.email().max(254) });

function jsonReply(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/** Starts the storefront on `port` (0 picks a free one). */
export async function startStorefront(options: {
  port: number;
  project?: StorefrontProject;
  /** The local stack's database and keys: enables `/local/sign-in`. */
  local?: { databaseUrl: string; keys: LocalKeys };
}): Promise<Storefront> {
  const bundle = await bundleStorefront();
  const page = await Deno.readTextFile(`${ROOT}storefront/index.html`);
  let project = options.project;

  async function signIn(req: Request): Promise<Response> {
    const local = options.local;
    if (!local || !project) {
      return jsonReply({
        error: { code: "not_found", message: "Local sign-in is off" },
      }, 404);
    }
    const parsed = SignIn.safeParse(await req.json().catch(() => null));
    if (!parsed.success) {
      return jsonReply({
        error: { code: "invalid_request", message: "A valid email is needed" },
      }, 400);
    }
    const email = parsed.data.email.toLowerCase();
    const userId = await ensureUser(local.databaseUrl, email);
    const token = await userAccessToken(local.keys, {
      supabaseUrl: project.supabaseUrl,
      userId,
      email,
    });
    return jsonReply({ access_token: token, token_type: "bearer" });
  }

  const server = serveLoopback(async (req) => {
    const { pathname } = new URL(req.url);
    if (req.method === "POST" && pathname === "/local/sign-in") {
      return await signIn(req);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method not allowed", { status: 405 });
    }
    if (PAGES.includes(pathname)) {
      return new Response(page, {
        headers: { "Content-Type": "text/html; charset=utf-8" },
      });
    }
    if (pathname === "/app.js") {
      return new Response(bundle, {
        headers: { "Content-Type": "text/javascript; charset=utf-8" },
      });
    }
    if (pathname === "/config.json" && project) {
      return jsonReply({
        supabase_url: project.supabaseUrl,
        publishable_key: project.publishableKey,
        local_sign_in: options.local !== undefined,
      });
    }
    if (pathname in FILES) {
      return new Response(
        await Deno.readTextFile(`${ROOT}storefront${pathname}`),
        { headers: { "Content-Type": FILES[pathname] } },
      );
    }
    return new Response("Not found", { status: 404 });
  }, { port: options.port });
  return {
    url: server.url,
    port: server.port,
    connect(next) {
      project = next;
    },
    close: () => server.close(),
  };
}

if (import.meta.main) {
  const env = z.object({
    SUPABASE_URL: z.url(),
    SUPABASE_PUBLISHABLE_KEY: z.string().min(1),
    STOREFRONT_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  }).safeParse(Deno.env.toObject());
  if (!env.success) {
    console.error(
      "Set SUPABASE_URL (https://<ref>.supabase.co) and SUPABASE_PUBLISHABLE_KEY (sb_publishable_… or the anon key)",
    );
    Deno.exit(2);
  }
  const storefront = await startStorefront({
    port: env.data.STOREFRONT_PORT,
    project: {
      supabaseUrl: env.data.SUPABASE_URL.replace(/\/+$/, ""),
      publishableKey: env.data.SUPABASE_PUBLISHABLE_KEY,
    },
  });
  console.log(
    `Storefront  ${storefront.url}  (against ${env.data.SUPABASE_URL}; sign-in by Supabase Auth email)`,
  );
}
