/**
 * `npm run token -- <email>`: ensures a confirmed `auth.users` row for `email` in the
 * running local stack and prints an access token for it, signed with the local key and
 * carrying the claims Supabase Auth issues.
 *
 * @module
 */
import postgres from "postgres";
import { userAccessToken } from "./keys.ts";
import type { LocalKeys } from "./keys.ts";

/**
 * POSTs `body` as JSON to a function URL as the storefront does for a signed-in user:
 * the user's access token as a bearer token and the project's publishable key.
 */
export async function postAsUser(
  url: string,
  credentials: { token: string; publishableKey: string },
  body: Record<string, unknown>,
): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${credentials.token}`,
      apikey: credentials.publishableKey,
      "Content-Type": "application/json",
    },
    body: JSON.stringify(body),
  });
}

/** Ensures a confirmed user with this email and answers its id. */
export async function ensureUser(
  databaseUrl: string,
  email: string,
  metadata: Record<string, string> = {},
): Promise<string> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ id: string }[]>`
      insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data,
        raw_user_meta_data)
      values (gen_random_uuid(), 'authenticated', 'authenticated', ${email.toLowerCase()}, now(),
        ${sql.json({ provider: "email", providers: ["email"] })}, ${
      sql.json(metadata)
    })
      on conflict (email) do update set updated_at = now()
      returning id`;
    return row.id;
  } finally {
    await sql.end();
  }
}

/** Parses `.env.local` (KEY=value lines, values optionally single-quoted). */
export function readDotenv(text: string): Record<string, string> {
  const entries = text.split("\n")
    .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => [match[1], match[2].replace(/^'(.*)'$/, "$1")]);
  return Object.fromEntries(entries);
}

if (import.meta.main) {
  const email = Deno.args[0];
  if (!email || !/^[^@\s]+@[^@\s]+$/.test(email)) {
    console.error("Usage: npm run token -- <email>");
    Deno.exit(2);
  }
  const root = new URL("../", import.meta.url).pathname;
  let env: Record<string, string>;
  let keys: LocalKeys;
  try {
    env = readDotenv(await Deno.readTextFile(`${root}.env.local`));
    keys = JSON.parse(await Deno.readTextFile(`${root}.local/keys.json`));
  } catch {
    console.error("No local stack found: run `npm start` first");
    Deno.exit(1);
  }
  const userId = await ensureUser(env.SUPABASE_DB_URL, email);
  console.log(
    await userAccessToken(keys, {
      supabaseUrl: env.SUPABASE_URL,
      userId,
      email,
    }),
  );
}
