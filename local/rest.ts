/**
 * The smallest honest stand-in for Supabase's Data API (PostgREST) that a storefront
 * needs: `GET /rest/v1/<table or view>` with `select` (plain columns or `*`), filters
 * (`eq`, `neq`, `gt`, `gte`, `lt`, `lte`, `in`, `is`), `order`, `limit` and `offset`,
 * and `.single()`. Each request runs in one transaction as the caller's role with its
 * JWT claims, as PostgREST runs it, so grants and RLS decide what is seen. The API key
 * is checked like the platform's gateway: a publishable or anon key is `anon`, a
 * secret or service-role key `service_role`, and a user's token in `Authorization`
 * makes the request `authenticated` as that user.
 *
 * @module
 */
import { importJWK, type JWK, jwtVerify } from "jose";
import postgres from "postgres";
import { corsHeaders } from "../supabase/functions/_shared/platform/http.ts";

/** The project's keys a request may carry (those the project has). */
export interface RestKeys {
  publishableKeys: string[];
  secretKeys: string[];
  anonKey?: string;
  serviceRoleKey?: string;
}

/** A running Data API. */
export interface RestApi {
  /** Answers a request whose path starts with `/rest/v1/`. */
  handle(req: Request): Promise<Response>;
  close(): Promise<void>;
}

type Role = "anon" | "authenticated" | "service_role";

/** An error in PostgREST's shape: `{code, details, hint, message}`. */
class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: string | null = null,
  ) {
    super(message);
  }
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const OPERATORS = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
} as const;
type Operator = keyof typeof OPERATORS;
const RESERVED = new Set(["select", "order", "limit", "offset"]);

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new RestError(
      400,
      "PGRST100",
      `"${name}" is not a plain ${what} name (the local Data API reads plain columns only)`,
    );
  }
  return name;
}

function count(value: string, name: string): number {
  if (!/^\d{1,9}$/.test(value)) {
    throw new RestError(400, "PGRST100", `${name} must be a whole number`);
  }
  return Number(value);
}

interface Filter {
  column: string;
  op: Operator | "in" | "is";
  value: string | string[] | null | boolean;
}

function parseFilter(column: string, raw: string): Filter {
  identifier(column, "column");
  const dot = raw.indexOf(".");
  const op = dot < 0 ? raw : raw.slice(0, dot);
  const value = dot < 0 ? "" : raw.slice(dot + 1);
  if (op in OPERATORS) return { column, op: op as Operator, value };
  if (op === "in" && /^\(.*\)$/.test(value)) {
    const items = value.slice(1, -1).split(",").map((item) =>
      item.replace(/^"(.*)"$/, "$1")
    );
    return { column, op, value: items };
  }
  if (op === "is" && ["null", "true", "false"].includes(value)) {
    return {
      column,
      op,
      value: value === "null" ? null : value === "true",
    };
  }
  throw new RestError(
    400,
    "PGRST100",
    `"${column}=${raw}" is not a filter the local Data API reads (eq, neq, gt, gte, lt, lte, in, is)`,
  );
}

/** Starts the Data API over the database at `databaseUrl`. */
export async function startRestApi(options: {
  databaseUrl: string;
  publicJwk: JWK;
  keys: RestKeys;
}): Promise<RestApi> {
  const sql = postgres(options.databaseUrl, { max: 4, onnotice: () => {} });
  const key = await importJWK(options.publicJwk, "ES256");
  const { keys } = options;
  const anonKeys = [...keys.publishableKeys, keys.anonKey].filter(Boolean);
  const serviceKeys = [...keys.secretKeys, keys.serviceRoleKey].filter(Boolean);

  async function caller(
    req: Request,
  ): Promise<{ role: Role; claims: Record<string, unknown> }> {
    const apikey = req.headers.get("apikey");
    if (!apikey) {
      throw new RestError(401, "PGRST301", "No API key found in request");
    }
    const service = serviceKeys.includes(apikey);
    if (!service && !anonKeys.includes(apikey)) {
      throw new RestError(401, "PGRST301", "Invalid API key");
    }
    if (
      service && apikey.startsWith("sb_secret_") && req.headers.has("Origin")
    ) {
      throw new RestError(
        401,
        "PGRST301",
        "Secret API keys cannot be used from a browser",
      );
    }
    const token = /^Bearer\s+(\S+)$/i.exec(
      req.headers.get("Authorization") ?? "",
    )?.[1];
    // supabase-js sends the API key itself as the bearer token until a user signs in.
    if (!token || token === apikey) {
      const role: Role = service ? "service_role" : "anon";
      return { role, claims: { role } };
    }
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(token, key, {
        algorithms: ["ES256"],
      }));
    } catch {
      throw new RestError(401, "PGRST301", "JWT could not be verified");
    }
    const role = claims.role;
    if (
      role !== "anon" && role !== "authenticated" && role !== "service_role"
    ) {
      throw new RestError(401, "PGRST301", "JWT role is not an API role");
    }
    return { role, claims };
  }

  async function read(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const relation = identifier(
      decodeURIComponent(url.pathname.slice("/rest/v1/".length)),
      "table",
    );
    const { role, claims } = await caller(req);
    const params = url.searchParams;
    const selectParam = (params.get("select") ?? "*").replace(/\s+/g, "");
    const columns = selectParam === "*"
      ? null
      : selectParam.split(",").map((c) => identifier(c, "column"));
    const order = (params.get("order") ?? "").split(",").filter(Boolean).map(
      (term) => {
        const [column, ...mods] = term.split(".");
        identifier(column, "column");
        const bad = mods.find((m) =>
          !["asc", "desc", "nullsfirst", "nullslast"].includes(m)
        );
        if (bad) {
          throw new RestError(400, "PGRST100", `"${term}" is not an order`);
        }
        return { column, desc: mods.includes("desc") };
      },
    );
    const limit = params.has("limit")
      ? count(params.get("limit")!, "limit")
      : null;
    const offset = params.has("offset")
      ? count(params.get("offset")!, "offset")
      : 0;
    const filters = [...params.entries()]
      .filter(([name]) => !RESERVED.has(name))
      .map(([name, raw]) => parseFilter(name, raw));
    const single = (req.headers.get("Accept") ?? "").includes(
      "application/vnd.pgrst.object+json",
    );

    const rows = await sql.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true),
        set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      let where = tx`true`;
      for (const f of filters) {
        const column = tx(f.column);
        const condition = f.op === "in"
          ? tx`${column} in ${tx(f.value as string[])}`
          : f.op === "is"
          ? f.value === null
            ? tx`${column} is null`
            : f.value
            ? tx`${column} is true`
            : tx`${column} is false`
          : tx`${column} ${tx.unsafe(OPERATORS[f.op])} ${f.value as string}`;
        where = tx`${where} and ${condition}`;
      }
      let orderBy = tx``;
      order.forEach((o, i) => {
        const term = tx`${tx(o.column)} ${tx.unsafe(o.desc ? "desc" : "asc")}`;
        orderBy = i === 0 ? tx`order by ${term}` : tx`${orderBy}, ${term}`;
      });
      return await tx`
        select ${columns ? tx(columns) : tx`*`} from ${tx("public." + relation)}
        where ${where} ${orderBy}
        ${limit === null ? tx`` : tx`limit ${limit}`} offset ${offset}`;
    }).catch((error) => {
      throw asRestError(error, role);
    });
    const headers = {
      ...corsHeaders,
      "Content-Type": "application/json; charset=utf-8",
      "Content-Range": rows.length === 0
        ? "*/*"
        : `${offset}-${offset + rows.length - 1}/*`,
    };
    if (single) {
      if (rows.length !== 1) {
        throw new RestError(
          406,
          "PGRST116",
          "JSON object requested, multiple (or no) rows returned",
          `The result contains ${rows.length} rows`,
        );
      }
      return new Response(JSON.stringify(rows[0]), { headers });
    }
    return new Response(JSON.stringify([...rows]), { headers });
  }

  return {
    async handle(req) {
      if (req.method === "OPTIONS") {
        return new Response(null, {
          status: 200,
          headers: {
            ...corsHeaders,
            "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers":
              req.headers.get("Access-Control-Request-Headers") ??
                corsHeaders["Access-Control-Allow-Headers"],
          },
        });
      }
      try {
        if (req.method !== "GET") {
          throw new RestError(
            405,
            "PGRST117",
            `The local Data API only reads (GET): got ${req.method}`,
          );
        }
        return await read(req);
      } catch (error) {
        if (!(error instanceof RestError)) throw error;
        return new Response(
          JSON.stringify({
            code: error.code,
            details: error.details,
            hint: null,
            message: error.message,
          }),
          {
            status: error.status,
            headers: { ...corsHeaders, "Content-Type": "application/json" },
          },
        );
      }
    },
    async close() {
      await sql.end();
    },
  };
}

/** PostgREST's status for a database error a request caused. */
function asRestError(error: unknown, role: Role): unknown {
  if (!(error instanceof postgres.PostgresError)) return error;
  const status: Record<string, number> = {
    // PostgREST: permission denied is 401 for anon, 403 for a signed-in role.
    "42501": role === "anon" ? 401 : 403,
    "42P01": 404,
    "42703": 400,
    "22P02": 400,
    "22007": 400,
    "22008": 400,
  };
  const answer = status[error.code];
  return answer === undefined
    ? error
    : new RestError(answer, error.code, error.message, error.detail ?? null);
}
