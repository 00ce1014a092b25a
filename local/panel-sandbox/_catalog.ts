/**
 * The read-only parts of the Application API: nodes (and their allocations and
 * deployable search), locations, nests and eggs.
 *
 * @module
 */
import {
  type Context,
  exact,
  findById,
  includes,
  partial,
  query,
} from "./_context.ts";
import { assertValid, displayError, json, notFound } from "./_errors.ts";
import { viableNodes } from "./_state.ts";
import {
  allocationAttributes,
  eggAttributes,
  item,
  list,
  locationAttributes,
  nestAttributes,
  nodeAttributes,
  paginate,
} from "./_transform.ts";
import { validate } from "../../setup/laravel_validation.ts";

/** PHP's reading of a query string: `a[]=1&a[]=2` and `a[k]=v` become arrays. */
export function phpQuery(url: URL): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of url.searchParams) {
    const m = /^([^[\]]+)\[([^[\]]*)\]$/.exec(key);
    if (!m) {
      out[key] = value;
      continue;
    }
    const bag = (out[m[1]] ??= {}) as Record<string, unknown>;
    bag[m[2] === "" ? String(Object.keys(bag).length) : m[2]] = value;
  }
  return out;
}

/** `GET /nodes`. */
export function listNodes(ctx: Context): Response {
  const inc = includes(ctx);
  return json(
    paginate(
      ctx.url,
      "node",
      ctx.state.nodes,
      (n) => nodeAttributes(ctx.state, n, inc),
    ),
  );
}

/** `GET /nodes/{id}`. */
export function viewNode(ctx: Context): Response {
  const node = findById(ctx.state.nodes, ctx.params[0]);
  return json(item("node", nodeAttributes(ctx.state, node, includes(ctx))));
}

/** `GET /nodes/deployable?memory=&disk=&location_ids[]=`: 400 when none fits. */
export function deployableNodes(ctx: Context): Response {
  const data = phpQuery(ctx.url);
  assertValid(validate(data, {
    page: "integer",
    memory: "required|integer|min:0",
    disk: "required|integer|min:0",
    location_ids: "array",
    "location_ids.*": "integer",
  }));
  const locations = typeof data.location_ids === "object" &&
      data.location_ids !== null
    ? Object.values(data.location_ids).map(Number)
    : [];
  const nodes = viableNodes(
    ctx.state,
    locations,
    Number(data.memory),
    Number(data.disk),
  );
  if (nodes.length === 0) {
    throw displayError(
      "No nodes satisfying the requirements specified for automatic deployment could be found.",
      "NoViableNodeException",
    );
  }
  const inc = includes(ctx);
  const transform = (n: typeof nodes[number]) =>
    nodeAttributes(ctx.state, n, inc);
  // Without `page` the panel answers a plain collection, without pagination meta.
  return json(
    data.page === undefined
      ? list("node", nodes.map(transform))
      : paginate(ctx.url, "node", nodes, transform),
  );
}

/** `GET /nodes/{id}/allocations`; `filter[server_id]=` (empty) means unassigned. */
export function listAllocations(ctx: Context): Response {
  const node = findById(ctx.state.nodes, ctx.params[0]);
  const rows = query(
    ctx.url,
    ctx.state.allocations.filter((a) => a.node_id === node.id),
    {
      ip: exact((a) => a.ip),
      port: exact((a) => a.port),
      ip_alias: partial((a) => a.alias),
      server_id: (a, value) =>
        /^\d+$/.test(value)
          ? a.server_id === Number(value)
          : a.server_id === null,
    },
  );
  return json(paginate(ctx.url, "allocation", rows, allocationAttributes));
}

/** `GET /locations`. */
export function listLocations(ctx: Context): Response {
  const inc = includes(ctx);
  return json(
    paginate(
      ctx.url,
      "location",
      ctx.state.locations,
      (l) => locationAttributes(ctx.state, l, inc),
    ),
  );
}

/** `GET /locations/{id}`. */
export function viewLocation(ctx: Context): Response {
  const location = findById(ctx.state.locations, ctx.params[0]);
  return json(
    item("location", locationAttributes(ctx.state, location, includes(ctx))),
  );
}

/** `GET /nests`. */
export function listNests(ctx: Context): Response {
  const inc = includes(ctx);
  return json(
    paginate(
      ctx.url,
      "nest",
      ctx.state.nests,
      (n) => nestAttributes(ctx.state, n, inc),
    ),
  );
}

/** `GET /nests/{id}`. */
export function viewNest(ctx: Context): Response {
  const nest = findById(ctx.state.nests, ctx.params[0]);
  return json(item("nest", nestAttributes(ctx.state, nest, includes(ctx))));
}

/** `GET /nests/{nest}/eggs`: a plain collection, as the panel answers it. */
export function listEggs(ctx: Context): Response {
  const nest = findById(ctx.state.nests, ctx.params[0]);
  const inc = includes(ctx);
  return json(list(
    "egg",
    ctx.state.eggs.filter((e) => e.nest_id === nest.id).map((e) =>
      eggAttributes(ctx.state, e, inc)
    ),
  ));
}

/** `GET /nests/{nest}/eggs/{egg}`: an egg of another nest is a 404. */
export function viewEgg(ctx: Context): Response {
  const nest = findById(ctx.state.nests, ctx.params[0]);
  const egg = findById(ctx.state.eggs, ctx.params[1]);
  if (egg.nest_id !== nest.id) throw notFound();
  return json(item("egg", eggAttributes(ctx.state, egg, includes(ctx))));
}
