/**
 * `/api/application/users`: `UserController`, `ExternalUserController` and the
 * rules of `StoreUserRequest` / `UpdateUserRequest`.
 *
 * @module
 */
import {
  bodyObject,
  type Context,
  findById,
  includes,
  partial,
  query,
} from "./_context.ts";
import { assertValid, displayError, json, notFound } from "./_errors.ts";
import { makeUser, now, type PanelUser } from "./_state.ts";
import { item, paginate, userAttributes } from "./_transform.ts";
import {
  type CustomRule,
  type Rule,
  validate,
} from "../../setup/laravel_validation.ts";

const LANGUAGES = ["en", "de", "es", "fr", "it", "nl", "pl", "pt", "ru", "sv"];

const USERNAME: CustomRule = {
  name: "p_username",
  message:
    "The :attribute must start and end with alpha-numeric characters and\n                contain only letters, numbers, dashes, underscores, and periods.",
  passes: (value) =>
    /^[a-z0-9]([\w\.-]+)[a-z0-9]$/.test(String(value).toLowerCase()),
};

const ATTRIBUTES = {
  external_id: "Third Party Identifier",
  root_admin: "Root Administrator Status",
};

function unique(
  users: PanelUser[],
  selfId: number | undefined,
  read: (u: PanelUser) => string | null,
): CustomRule {
  return {
    name: "unique",
    message: "The :attribute has already been taken.",
    passes: (value) =>
      !users.some((u) =>
        u.id !== selfId &&
        read(u)?.toLowerCase() === String(value).toLowerCase()
      ),
  };
}

function userRules(
  users: PanelUser[],
  selfId?: number,
): Record<string, Rule[]> {
  return {
    email: [
      "required",
      "email",
      "between:1,191",
      unique(users, selfId, (u) => u.email),
    ],
    external_id: [
      "sometimes",
      "nullable",
      "string",
      "max:191",
      unique(users, selfId, (u) => u.external_id),
    ],
    username: [
      "required",
      "between:1,191",
      unique(users, selfId, (u) => u.username),
      USERNAME,
    ],
    password: ["sometimes", "nullable", "string"],
    root_admin: ["boolean"],
    language: ["string", `in:${LANGUAGES.join(",")}`],
    first_name: ["required", "string", "between:1,191"],
    last_name: ["required", "string", "between:1,191"],
  };
}

function fields(body: Record<string, unknown>) {
  const s = (v: unknown) => String(v);
  return {
    email: s(body.email),
    username: s(body.username).toLowerCase(),
    first_name: s(body.first_name),
    last_name: s(body.last_name),
    ...(body.external_id !== undefined
      ? { external_id: body.external_id === null ? null : s(body.external_id) }
      : {}),
    ...(body.language != null ? { language: s(body.language) } : {}),
    ...(body.root_admin != null
      ? { root_admin: [true, 1, "1"].includes(body.root_admin as string) }
      : {}),
  };
}

/** `GET /users`. */
export function listUsers(ctx: Context): Response {
  const rows = query(ctx.url, ctx.state.users, {
    email: partial((u) => u.email),
    uuid: partial((u) => u.uuid),
    username: partial((u) => u.username),
    external_id: partial((u) => u.external_id),
  }, { id: (u) => u.id, uuid: (u) => u.uuid });
  const inc = includes(ctx);
  return json(
    paginate(ctx.url, "user", rows, (u) => userAttributes(ctx.state, u, inc)),
  );
}

/** `GET /users/{id}`. */
export function viewUser(ctx: Context): Response {
  const user = findById(ctx.state.users, ctx.params[0]);
  return json(item("user", userAttributes(ctx.state, user, includes(ctx))));
}

/** `GET /users/external/{external_id}`: exact match. */
export function viewExternalUser(ctx: Context): Response {
  const id = decodeURIComponent(ctx.params[0]);
  const user = ctx.state.users.find((u) => u.external_id === id);
  if (!user) throw notFound();
  return json(item("user", userAttributes(ctx.state, user, includes(ctx))));
}

/** `POST /users`: 201 with `meta.resource`; an account email is always "sent". */
export function createUser(ctx: Context): Response {
  const body = bodyObject(ctx);
  assertValid(validate(body, userRules(ctx.state.users), ATTRIBUTES));
  const id = ctx.state.next_ids.user++;
  const hasPassword = typeof body.password === "string" &&
    body.password !== "";
  const user = makeUser(id, { ...fields(body), has_password: hasPassword });
  ctx.state.users.push(user);
  ctx.state.emails_sent.push({
    to: user.email,
    user_id: user.id,
    kind: "account_created",
    password_link: !hasPassword,
    at: now(),
  });
  return json({
    ...item("user", userAttributes(ctx.state, user, includes(ctx))),
    meta: { resource: `${ctx.url.origin}/api/application/users/${user.id}` },
  }, 201);
}

/** `PATCH /users/{id}`: the same rules as create (all required), unique except self. */
export function updateUser(ctx: Context): Response {
  const user = findById(ctx.state.users, ctx.params[0]);
  const body = bodyObject(ctx);
  assertValid(validate(body, userRules(ctx.state.users, user.id), ATTRIBUTES));
  Object.assign(user, fields(body), { updated_at: now() });
  if (typeof body.password === "string" && body.password !== "") {
    user.has_password = true;
  }
  return json(item("user", userAttributes(ctx.state, user, includes(ctx))));
}

/** `DELETE /users/{id}`: refused while the user owns servers. */
export function deleteUser(ctx: Context): Response {
  const user = findById(ctx.state.users, ctx.params[0]);
  if (ctx.state.servers.some((s) => s.owner_id === user.id)) {
    throw displayError(
      "Cannot delete a user with active servers attached to their account. Please delete their servers before continuing.",
    );
  }
  ctx.state.users.splice(ctx.state.users.indexOf(user), 1);
  return new Response(null, { status: 204 });
}
