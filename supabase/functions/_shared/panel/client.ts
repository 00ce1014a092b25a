/**
 * A small typed client for the Pterodactyl panel's Application API: one function per
 * endpoint we use, responses parsed with zod, failures turned into `PanelError`s that say
 * which call failed and what the panel said. Reads are retried on 429 / 5xx / network
 * errors; writes are retried only on 429 (the panel throttles before doing anything),
 * and an uncertain write is left to the caller to reconcile.
 *
 * @see https://dashflo.net/docs/api/pterodactyl/v1/
 * @module
 */
import { z } from "zod";
import { DomainError } from "../platform/errors.ts";

/** A failed panel call. */
export class PanelError extends Error {
  override name = "PanelError";
  /** HTTP status, or 0 when no answer came (network error, timeout). */
  readonly status: number;
  /** The panel's error code (e.g. `ValidationException`), if it sent one. */
  readonly panelCode?: string;
  /** Offending field and rule of a validation error. */
  readonly field?: string;
  readonly rule?: string;
  /** Seconds the panel asked us to wait (429). */
  readonly retryAfter?: number;

  constructor(
    message: string,
    options: {
      status: number;
      panelCode?: string;
      field?: string;
      rule?: string;
      retryAfter?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.panelCode = options.panelCode;
    this.field = options.field;
    this.rule = options.rule;
    this.retryAfter = options.retryAfter;
  }

  /** True when the panel may have acted although we saw no success (timeout, 5xx). */
  get uncertain(): boolean {
    return this.status === 0 || this.status >= 500;
  }

  /** True when trying again later can succeed without anyone changing anything. */
  get transient(): boolean {
    return this.uncertain || this.status === 429;
  }
}

const ErrorBody = z.object({
  errors: z.array(z.object({
    code: z.string().optional(),
    status: z.string().optional(),
    detail: z.string().optional(),
    meta: z.object({
      source_field: z.string().optional(),
      rule: z.string().optional(),
    })
      .optional(),
  })).min(1),
});

const PanelUser = z.object({
  id: z.number().int(),
  external_id: z.string().nullable(),
  username: z.string(),
  email: z.string(),
  first_name: z.string(),
  last_name: z.string(),
});
/** A panel user. */
export type PanelUser = z.infer<typeof PanelUser>;

const PanelServer = z.object({
  id: z.number().int(),
  external_id: z.string().nullable(),
  uuid: z.string(),
  identifier: z.string(),
  name: z.string(),
  status: z.string().nullable(),
  suspended: z.boolean(),
  user: z.number().int(),
  node: z.number().int(),
  allocation: z.number().int(),
  egg: z.number().int(),
  limits: z.object({
    memory: z.number(),
    swap: z.number(),
    disk: z.number(),
    io: z.number(),
    cpu: z.number(),
  }).loose(),
  feature_limits: z.object({
    databases: z.number().nullable(),
    allocations: z.number().nullable(),
    backups: z.number().nullable(),
  }).loose(),
  container: z.object({
    environment: z.record(z.string(), z.unknown()),
    // 1/0 on panel v1.x; a boolean on some builds.
    installed: z.union([z.number(), z.boolean()]).optional(),
  })
    .loose(),
});
/** A panel server. */
export type PanelServer = z.infer<typeof PanelServer>;

const EggVariable = z.object({
  env_variable: z.string(),
  default_value: z.string().nullable(),
  rules: z.string(),
});

const Egg = z.object({
  id: z.number().int(),
  name: z.string(),
  docker_image: z.string(),
  startup: z.string(),
  relationships: z.object({
    variables: z.object({
      data: z.array(z.object({ attributes: EggVariable })),
    }),
  }),
});
/** An egg with its variables. */
export interface PanelEgg {
  id: number;
  name: string;
  dockerImage: string;
  startup: string;
  variables: z.infer<typeof EggVariable>[];
}

const Allocation = z.object({
  id: z.number().int(),
  ip: z.string(),
  port: z.number().int(),
  assigned: z.boolean(),
});
/** A node allocation (ip:port). */
export type PanelAllocation = z.infer<typeof Allocation>;

function item<T extends z.ZodType>(attributes: T) {
  return z.object({ object: z.string(), attributes });
}

function list<T extends z.ZodType>(attributes: T) {
  return z.object({
    object: z.literal("list"),
    data: z.array(item(attributes)),
    meta: z.object({
      pagination: z.object({
        total: z.number().optional(),
        current_page: z.number(),
        total_pages: z.number(),
      }).loose(),
    }).optional(),
  });
}

/** What a new server is made of. */
export interface NewServer {
  name: string;
  user: number;
  egg: number;
  docker_image: string;
  startup: string;
  environment: Record<string, string>;
  limits: {
    memory: number;
    swap: number;
    disk: number;
    io: number;
    cpu: number;
  };
  feature_limits: { databases: number; backups: number; allocations: number };
  allocation: { default: number };
  external_id: string;
  description?: string;
  start_on_completion?: boolean;
}

/**
 * A server's whole build, as `PATCH /servers/{id}/build` takes it: the panel has no
 * partial updates (an omitted feature limit becomes unlimited), so every field is sent.
 */
export interface ServerBuild {
  /** The server's default allocation (required, unchanged). */
  allocation: number;
  limits: NewServer["limits"];
  feature_limits: NewServer["feature_limits"];
}

/** What a new panel user is made of (no password: the panel mails a set-password link). */
export interface NewUser {
  email: string;
  username: string;
  first_name: string;
  last_name: string;
  external_id: string;
}

/** Options of the client. */
export interface PanelClientOptions {
  url: string;
  apiKey: string;
  /** Per-request timeout; the panel's own is 15 s, so wait a little longer. */
  timeoutMs?: number;
  /** Attempts for calls safe to repeat. */
  attempts?: number;
  /** Longest wait honoured for a 429's Retry-After before giving up, in ms. */
  maxRetryWaitMs?: number;
  /** Called for every request made (for counting and logs). */
  onCall?: (
    call: { method: string; path: string; status: number; ms: number },
  ) => void;
}

/** The panel calls provisioning needs. */
export interface PanelClient {
  url: string;
  getUserByExternalId(externalId: string): Promise<PanelUser | null>;
  findUsersByEmail(email: string): Promise<PanelUser[]>;
  createUser(user: NewUser): Promise<PanelUser>;
  updateUser(
    id: number,
    user: Omit<NewUser, "external_id"> & { external_id: string },
  ): Promise<
    PanelUser
  >;
  getServerByExternalId(externalId: string): Promise<PanelServer | null>;
  createServer(server: NewServer): Promise<PanelServer>;
  getEgg(nestId: number, eggId: number): Promise<PanelEgg | null>;
  freeAllocations(nodeId: number): Promise<PanelAllocation[]>;
  /** One page of all servers (`per_page` is not capped by the panel). */
  listServers(
    options: { page: number; perPage: number },
  ): Promise<PanelServerPage>;
  /** Suspends (204; a no-op when already suspended). */
  suspendServer(id: number): Promise<void>;
  /** Unsuspends (204; does not start the server). */
  unsuspendServer(id: number): Promise<void>;
  /** Deletes; `force` goes on despite a Wings error (files may stay on the node). */
  deleteServer(id: number, options: { force: boolean }): Promise<void>;
  /** Reinstalls (back to `installing`; lifts a suspension). */
  reinstallServer(id: number): Promise<void>;
  /** Replaces a server's build (safe to repeat: the same build twice is one change). */
  updateBuild(id: number, build: ServerBuild): Promise<PanelServer>;
}

/** One page of servers. */
export interface PanelServerPage {
  servers: PanelServer[];
  page: number;
  totalPages: number;
  total: number;
}

/** Live state of a server, from the client API (cached about 20 s by the panel). */
export interface PanelResources {
  current_state: string;
  is_suspended: boolean;
  resources: {
    memory_bytes: number;
    cpu_absolute: number;
    disk_bytes: number;
    uptime: number;
  };
}

/** A power signal of the client API. */
export type PowerSignal = "start" | "stop" | "restart" | "kill";

/** The client API calls the shop makes with a root admin's `ptlc_` key. */
export interface PanelClientApi {
  /** Live state of the server with this identifier. */
  resources(identifier: string): Promise<PanelResources>;
  /** Sends a power signal (204 once Wings took it). */
  power(identifier: string, signal: PowerSignal): Promise<void>;
}

const Resources = z.object({
  object: z.literal("stats"),
  attributes: z.object({
    current_state: z.string(),
    is_suspended: z.boolean(),
    resources: z.object({
      memory_bytes: z.number(),
      cpu_absolute: z.number(),
      disk_bytes: z.number(),
      uptime: z.number(),
    }).loose(),
  }),
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Requests to one of the panel's APIs (`/api/application` or `/api/client`). */
function createTransport(options: PanelClientOptions, api: string) {
  const base = options.url.replace(/\/$/, "");
  const timeoutMs = options.timeoutMs ?? 20_000;
  const attempts = options.attempts ?? 3;
  const maxRetryWaitMs = options.maxRetryWaitMs ?? 5_000;

  async function once(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<unknown> {
    const started = performance.now();
    let res: Response;
    try {
      res = await fetch(`${base}${api}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${options.apiKey}`,
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      options.onCall?.({
        method,
        path,
        status: 0,
        ms: performance.now() - started,
      });
      const what =
        cause instanceof DOMException && cause.name === "TimeoutError"
          ? `no answer within ${timeoutMs} ms`
          : "the panel could not be reached";
      throw new PanelError(`${method} ${path}: ${what}`, { status: 0, cause });
    }
    options.onCall?.({
      method,
      path,
      status: res.status,
      ms: performance.now() - started,
    });
    const text = await res.text();
    if (res.ok) return text ? JSON.parse(text) : null;
    let detail = text.slice(0, 200) || res.statusText;
    let panelCode: string | undefined;
    let field: string | undefined;
    let rule: string | undefined;
    try {
      const parsed = ErrorBody.parse(JSON.parse(text));
      detail = parsed.errors.map((e) => e.detail ?? e.code).join("; ");
      panelCode = parsed.errors[0].code;
      field = parsed.errors[0].meta?.source_field;
      rule = parsed.errors[0].meta?.rule;
    } catch {
      // Not the panel's error shape (a proxy's page, say): keep the raw text.
    }
    const retryAfterHeader = res.headers.get("Retry-After");
    const retryAfter = retryAfterHeader !== null &&
        /^\d+$/.test(retryAfterHeader.trim())
      ? Number(retryAfterHeader)
      : undefined;
    throw new PanelError(
      `${method} ${path}: panel answered ${res.status}: ${detail}`,
      {
        status: res.status,
        panelCode,
        field,
        rule,
        retryAfter,
      },
    );
  }

  async function call(
    method: string,
    path: string,
    body?: unknown,
    repeatable = method === "GET",
  ): Promise<unknown> {
    for (let attempt = 1;; attempt++) {
      try {
        return await once(method, path, body);
      } catch (error) {
        if (!(error instanceof PanelError) || attempt >= attempts) throw error;
        const throttled = error.status === 429;
        if (!throttled && !(repeatable && error.transient)) throw error;
        const wait = throttled && error.retryAfter !== undefined
          ? error.retryAfter * 1000
          : 200 * 2 ** (attempt - 1);
        if (wait > maxRetryWaitMs) throw error;
        await sleep(wait);
      }
    }
  }

  async function getOrNull<T>(
    path: string,
    schema: z.ZodType<T>,
  ): Promise<T | null> {
    try {
      return schema.parse(await call("GET", path));
    } catch (error) {
      if (error instanceof PanelError && error.status === 404) return null;
      throw error;
    }
  }

  return { base, call, getOrNull };
}

/** Creates a client for the panel at `url`. */
export function createPanelClient(options: PanelClientOptions): PanelClient {
  const { base, call, getOrNull } = createTransport(
    options,
    "/api/application",
  );
  const userItem = item(PanelUser);
  const serverItem = item(PanelServer);
  return {
    url: base,
    async getUserByExternalId(externalId) {
      const found = await getOrNull(
        `/users/external/${encodeURIComponent(externalId)}`,
        userItem,
      );
      return found?.attributes ?? null;
    },
    async findUsersByEmail(email) {
      // filter[email] is a partial match on the panel: keep exact (case-insensitive) ones.
      const page = list(PanelUser).parse(
        await call(
          "GET",
          `/users?filter[email]=${encodeURIComponent(email)}&per_page=100`,
        ),
      );
      return page.data.map((entry) => entry.attributes)
        .filter((user) => user.email.toLowerCase() === email.toLowerCase());
    },
    async createUser(user) {
      return userItem.parse(await call("POST", "/users", user)).attributes;
    },
    async updateUser(id, user) {
      return userItem.parse(await call("PATCH", `/users/${id}`, user))
        .attributes;
    },
    async getServerByExternalId(externalId) {
      const path = `/servers/external/${encodeURIComponent(externalId)}`;
      return (await getOrNull(path, serverItem))?.attributes ?? null;
    },
    async createServer(server) {
      return serverItem.parse(await call("POST", "/servers", server))
        .attributes;
    },
    async getEgg(nestId, eggId) {
      const found = await getOrNull(
        `/nests/${nestId}/eggs/${eggId}?include=variables`,
        item(Egg),
      );
      if (!found) return null;
      const egg = found.attributes;
      return {
        id: egg.id,
        name: egg.name,
        dockerImage: egg.docker_image,
        startup: egg.startup,
        variables: egg.relationships.variables.data.map((entry) =>
          entry.attributes
        ),
      };
    },
    async freeAllocations(nodeId) {
      const free: PanelAllocation[] = [];
      for (let page = 1;; page++) {
        const result = list(Allocation).parse(
          await call(
            "GET",
            `/nodes/${nodeId}/allocations?filter[server_id]=&per_page=100&page=${page}`,
          ),
        );
        free.push(
          ...result.data.map((entry) => entry.attributes).filter((a) =>
            !a.assigned
          ),
        );
        const pagination = result.meta?.pagination;
        if (!pagination || pagination.current_page >= pagination.total_pages) {
          return free;
        }
      }
    },
    async listServers({ page, perPage }) {
      const result = list(PanelServer).parse(
        await call("GET", `/servers?page=${page}&per_page=${perPage}`),
      );
      const pagination = result.meta?.pagination;
      return {
        servers: result.data.map((entry) => entry.attributes),
        page: pagination?.current_page ?? page,
        totalPages: pagination?.total_pages ?? 1,
        total: pagination?.total ?? result.data.length,
      };
    },
    async suspendServer(id) {
      // A no-op when already suspended, so safe to repeat.
      await call("POST", `/servers/${id}/suspend`, undefined, true);
    },
    async unsuspendServer(id) {
      await call("POST", `/servers/${id}/unsuspend`, undefined, true);
    },
    async deleteServer(id, { force }) {
      await call("DELETE", `/servers/${id}${force ? "/force" : ""}`);
    },
    async reinstallServer(id) {
      await call("POST", `/servers/${id}/reinstall`);
    },
    async updateBuild(id, build) {
      return serverItem.parse(
        await call("PATCH", `/servers/${id}/build`, build, true),
      ).attributes;
    },
  };
}

/** Creates a client-API client (a root admin's `ptlc_` key sees every server). */
export function createPanelClientApi(
  options: PanelClientOptions,
): PanelClientApi {
  const { call } = createTransport(options, "/api/client");
  return {
    async resources(identifier) {
      const path = `/servers/${encodeURIComponent(identifier)}/resources`;
      return Resources.parse(await call("GET", path)).attributes;
    },
    async power(identifier, signal) {
      const path = `/servers/${encodeURIComponent(identifier)}/power`;
      await call("POST", path, { signal });
    },
  };
}

/**
 * The panel client from configuration. Without credentials it is a client whose every
 * call fails with `panel_not_configured`, saying what to set; the failure then shows
 * where the call was made (on the order, or as a 503).
 */
export function panelFromConfig(
  config: { PTERODACTYL_URL?: string; PTERODACTYL_API_KEY?: string },
  options: Omit<PanelClientOptions, "url" | "apiKey"> = {},
): PanelClient {
  if (config.PTERODACTYL_URL && config.PTERODACTYL_API_KEY) {
    return createPanelClient({
      url: config.PTERODACTYL_URL,
      apiKey: config.PTERODACTYL_API_KEY,
      ...options,
    });
  }
  const missing = [
    ...(config.PTERODACTYL_URL ? [] : ["PTERODACTYL_URL"]),
    ...(config.PTERODACTYL_API_KEY ? [] : ["PTERODACTYL_API_KEY"]),
  ];
  const fail = (): Promise<never> =>
    Promise.reject(
      new DomainError(
        "unavailable",
        "panel_not_configured",
        `panel credentials are not configured: set ${
          missing.join(" and ")
        } as function secrets (an application key of a root admin)`,
      ),
    );
  return {
    url: config.PTERODACTYL_URL ?? "",
    getUserByExternalId: fail,
    findUsersByEmail: fail,
    createUser: fail,
    updateUser: fail,
    getServerByExternalId: fail,
    createServer: fail,
    getEgg: fail,
    freeAllocations: fail,
    listServers: fail,
    suspendServer: fail,
    unsuspendServer: fail,
    deleteServer: fail,
    reinstallServer: fail,
    updateBuild: fail,
  };
}

/**
 * The client-API client from configuration, or null when no client key is set (the
 * shop then works without live state and does not restart servers after unsuspending).
 */
export function panelClientApiFromConfig(
  config: { PTERODACTYL_URL?: string; PTERODACTYL_CLIENT_API_KEY?: string },
  options: Omit<PanelClientOptions, "url" | "apiKey"> = {},
): PanelClientApi | null {
  if (!config.PTERODACTYL_CLIENT_API_KEY) return null;
  if (config.PTERODACTYL_URL) {
    return createPanelClientApi({
      url: config.PTERODACTYL_URL,
      apiKey: config.PTERODACTYL_CLIENT_API_KEY,
      ...options,
    });
  }
  const fail = (): Promise<never> =>
    Promise.reject(
      new DomainError(
        "unavailable",
        "panel_not_configured",
        "PTERODACTYL_CLIENT_API_KEY is set but PTERODACTYL_URL is not: set it as a function secret",
      ),
    );
  return { resources: fail, power: fail };
}
