/**
 * What a route handler gets, and the query helpers the panel's controllers share
 * (Spatie query-builder filters and sorts, route-model binding).
 *
 * @module
 */
import { notFound, PanelHttpError } from "./_errors.ts";
import type { PanelServer, PanelState, PanelUser } from "./_state.ts";
import { type Includes, includesOf } from "./_transform.ts";

/** Install and reinstall timers and the Wings daemon, owned by the running sandbox. */
export interface Lifecycle {
  install(server: PanelServer, reinstall: boolean): void;
  forget(serverId: number): void;
  /**
   * Stands for a call to Wings: throws the panel's `DaemonConnectionException` while
   * the sandbox is configured with a failing Wings (`wingsStatus`).
   */
  daemon(): void;
  /** The status Wings answers with while failing, or undefined when it works. */
  wingsStatus(): number | undefined;
}

/** One request as a handler sees it. */
export interface Context {
  state: PanelState;
  request: Request;
  url: URL;
  params: string[];
  body: unknown;
  user: PanelUser;
  lifecycle: Lifecycle;
}

/** A route handler. */
export type Handler = (ctx: Context) => Response;

/** The `?include=` relations of the request. */
export function includes(ctx: Context): Includes {
  return includesOf(ctx.url);
}

/** Route-model binding by numeric id: anything else is a 404. */
export function findById<T extends { id: number }>(rows: T[], raw: string): T {
  const found = /^\d+$/.test(raw)
    ? rows.find((r) => r.id === Number(raw))
    : undefined;
  if (!found) throw notFound();
  return found;
}

/** A filter: keeps the rows matching the query value. */
export type Filter<T> = (row: T, value: string) => boolean;

/** Spatie's partial filter: case-insensitive LIKE `%value%`, commas meaning OR. */
export function partial<T>(read: (row: T) => string | null): Filter<T> {
  return (row, value) => {
    const field = (read(row) ?? "").toLowerCase();
    return value.split(",").some((v) => field.includes(v.toLowerCase()));
  };
}

/** Spatie's exact filter, commas meaning OR. */
export function exact<T>(read: (row: T) => string | number | null): Filter<T> {
  return (row, value) => value.split(",").includes(String(read(row)));
}

/** Applies `filter[...]` and `sort` like Spatie's QueryBuilder (400 on unknown names). */
export function query<T extends { id: number }>(
  url: URL,
  rows: T[],
  filters: Record<string, Filter<T>>,
  sorts: Record<string, (row: T) => string | number> = {},
): T[] {
  let out = [...rows];
  for (const [key, value] of url.searchParams) {
    const name = /^filter\[(.+)\]$/.exec(key)?.[1];
    if (name === undefined) continue;
    const filter = filters[name];
    if (!filter) {
      throw new PanelHttpError(
        400,
        "InvalidFilterQuery",
        `Requested filter(s) \`${name}\` are not allowed. Allowed filter(s) are \`${
          Object.keys(filters).join(", ")
        }\`.`,
      );
    }
    out = out.filter((row) => filter(row, value));
  }
  const sort = url.searchParams.get("sort");
  if (sort) {
    const name = sort.replace(/^-/, "");
    const read = sorts[name];
    if (!read) {
      throw new PanelHttpError(
        400,
        "InvalidSortQuery",
        `Requested sort(s) \`${name}\` is not allowed. Allowed sort(s) are \`${
          Object.keys(sorts).join(", ")
        }\`.`,
      );
    }
    const sign = sort.startsWith("-") ? -1 : 1;
    out.sort((a, b) =>
      (read(a) > read(b) ? 1 : read(a) < read(b) ? -1 : 0) * sign
    );
  }
  return out;
}

/** The request body as an object (the panel reads a missing body as `{}`). */
export function bodyObject(ctx: Context): Record<string, unknown> {
  const body = ctx.body;
  return typeof body === "object" && body !== null && !Array.isArray(body)
    ? body as Record<string, unknown>
    : {};
}
