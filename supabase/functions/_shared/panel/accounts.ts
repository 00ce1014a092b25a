/**
 * The customer's panel account: found through our link, then the panel's exact
 * external-id lookup, and only then created (external_id = Supabase user id, no
 * password). Never identified by a partial email filter. Used by
 * `create-pterodactyl-user` and by provisioning alike.
 *
 * @module
 */
import type { Sql } from "../platform/db.ts";
import { DomainError } from "../platform/errors.ts";
import { type PanelClient, PanelError, type PanelUser } from "./client.ts";

/** The account linked in external_accounts. */
export interface PanelAccount {
  pteroUserId: number;
  username: string;
  /** True when this call created the panel user or the link. */
  created: boolean;
}

interface AuthUserRow {
  id: string;
  email: string | null;
  email_confirmed_at: Date | null;
  raw_user_meta_data: Record<string, unknown> | null;
}

const USERNAME = /^[a-z0-9]([\w.-]+)[a-z0-9]$/;

/** A valid panel username from an email's local part, e.g. `Jane.Doe+x@…` → `jane.doe-x`. */
export function usernameFromEmail(email: string): string {
  const local = email.split("@")[0].toLowerCase().replace(
    /[^a-z0-9_.-]+/g,
    "-",
  );
  const trimmed = local.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "").slice(0, 24)
    .replace(/[^a-z0-9]+$/, "");
  const name = trimmed.length >= 3
    ? trimmed
    : `player-${trimmed || "x"}`.replace(/-$/, "");
  return USERNAME.test(name) ? name : "player";
}

function metaString(
  meta: Record<string, unknown> | null,
  key: string,
): string | undefined {
  const value = meta?.[key];
  return typeof value === "string" && value.trim()
    ? value.trim().slice(0, 191)
    : undefined;
}

function names(user: AuthUserRow): { first_name: string; last_name: string } {
  const meta = user.raw_user_meta_data;
  const full = metaString(meta, "full_name") ?? metaString(meta, "name");
  const [fullFirst, ...fullRest] = full?.split(/\s+/) ?? [];
  return {
    first_name: metaString(meta, "first_name") ?? fullFirst ?? "Player",
    last_name: metaString(meta, "last_name") ??
      (fullRest.join(" ") || "Customer"),
  };
}

/** Whether a database error is a unique-key violation. */
function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "23505";
}

/**
 * Links `panelUser` to the user. Safe under concurrency: with no conflict target every
 * unique key (the user, the panel user) arbitrates, so racing links of one account wait
 * for each other instead of failing on the key the statement did not name.
 */
async function link(
  sql: Sql,
  userId: string,
  panelUser: PanelUser,
): Promise<void> {
  const inserted = await sql`
    insert into public.external_accounts (user_id, ptero_user_id, ptero_username)
    values (${userId}, ${panelUser.id}, ${panelUser.username})
    on conflict do nothing
    returning user_id`;
  if (inserted.length > 0) return;
  const [current] = await sql<{ ptero_user_id: number }[]>`
    select ptero_user_id from public.external_accounts where user_id = ${userId}`;
  if (current?.ptero_user_id === panelUser.id) return;
  if (current) {
    // The linked panel user is gone (deleted by hand): the new one replaces it.
    try {
      await sql`
        update public.external_accounts
        set ptero_user_id = ${panelUser.id}, ptero_username = ${panelUser.username}
        where user_id = ${userId}`;
      return;
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
    }
  }
  throw new DomainError(
    "conflict",
    "panel_account_linked_elsewhere",
    `Panel user ${panelUser.id} is already linked to another customer`,
  );
}

/** Links the panel user whose external_id is this user, if the panel has one. */
async function linkByExternalId(
  sql: Sql,
  panel: PanelClient,
  userId: string,
): Promise<PanelAccount | null> {
  const found = await panel.getUserByExternalId(userId);
  if (!found) return null;
  await link(sql, userId, found);
  return { pteroUserId: found.id, username: found.username, created: true };
}

/**
 * Ensures the user has a panel account linked in external_accounts. `gone` names a
 * linked panel user the panel no longer has: it is found again or re-created, and
 * relinked.
 */
export async function ensurePanelAccount(
  sql: Sql,
  panel: PanelClient,
  userId: string,
  options: { gone?: number } = {},
): Promise<PanelAccount> {
  const [linked] = await sql<
    { ptero_user_id: number; ptero_username: string }[]
  >`
    select ptero_user_id, ptero_username from public.external_accounts where user_id = ${userId}`;
  if (linked && linked.ptero_user_id !== options.gone) {
    return {
      pteroUserId: linked.ptero_user_id,
      username: linked.ptero_username,
      created: false,
    };
  }
  const [user] = await sql<AuthUserRow[]>`
    select id, email, email_confirmed_at, raw_user_meta_data from auth.users where id = ${userId}`;
  if (!user) {
    throw new DomainError(
      "not_found",
      "user_not_found",
      `User "${userId}" does not exist`,
    );
  }
  if (!user.email) {
    throw new DomainError(
      "invalid",
      "email_required",
      "A panel account needs the user's email address",
    );
  }

  const existing = await linkByExternalId(sql, panel, userId);
  if (existing) return existing;

  const base = usernameFromEmail(user.email);
  const candidates = [base, `${base.slice(0, 17)}-${userId.slice(0, 6)}`];
  for (const username of candidates) {
    try {
      const created = await panel.createUser({
        email: user.email,
        username,
        external_id: userId,
        ...names(user),
      });
      await link(sql, userId, created);
      return {
        pteroUserId: created.id,
        username: created.username,
        created: true,
      };
    } catch (error) {
      if (
        !(error instanceof PanelError) || error.status !== 422 ||
        error.rule !== "unique"
      ) {
        throw error;
      }
      // Whatever clashed, a concurrent request for this user may have just made it.
      const raced = await linkByExternalId(sql, panel, userId);
      if (raced) return raced;
      if (error.field === "username") continue;
      if (error.field === "email") {
        return await adoptByEmail(sql, panel, user, user.email);
      }
      throw error;
    }
  }
  throw new DomainError(
    "conflict",
    "panel_username_taken",
    `No free panel username for "${base}"`,
  );
}

/**
 * The panel already has an account with this email. It becomes the customer's only if
 * it belongs to nobody else and the customer proved they own the address.
 */
async function adoptByEmail(
  sql: Sql,
  panel: PanelClient,
  user: AuthUserRow,
  email: string,
): Promise<PanelAccount> {
  const [match] = await panel.findUsersByEmail(email);
  if (!match || (match.external_id !== null && match.external_id !== user.id)) {
    throw new DomainError(
      "conflict",
      "panel_email_taken",
      "The panel already has an account with this email that belongs to someone else",
    );
  }
  if (!user.email_confirmed_at) {
    throw new DomainError(
      "conflict",
      "panel_email_unconfirmed",
      "The panel already has an account with this email; confirm your email to link it",
    );
  }
  const updated = await panel.updateUser(match.id, {
    email: match.email,
    username: match.username,
    first_name: match.first_name,
    last_name: match.last_name,
    external_id: user.id,
  });
  await link(sql, user.id, updated);
  return { pteroUserId: updated.id, username: updated.username, created: true };
}
