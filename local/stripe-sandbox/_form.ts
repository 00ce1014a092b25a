/**
 * Parses Stripe's form encoding (`a[b][c]=`, `items[0][price]=`, `expand[]=`) into
 * nested objects and arrays, the way Stripe's API reads the SDK's request bodies.
 *
 * @module
 */

/** A parsed form value: strings at the leaves, objects and arrays above them. */
export type FormValue = string | FormValue[] | FormObject;
/** A parsed form body or query string. */
export type FormObject = { [key: string]: FormValue };

type Tree = Map<string, Tree | string>;

/** Parses `application/x-www-form-urlencoded` text into nested objects and arrays. */
export function parseForm(text: string): FormObject {
  const root: Tree = new Map();
  for (const [key, value] of new URLSearchParams(text)) {
    insert(root, splitKey(key), value);
  }
  const out = finish(root);
  return Array.isArray(out) ? arrayToObject(out) : out;
}

/** An array as the object Stripe would read for a hash (`{"0": …, "1": …}`). */
export function arrayToObject(values: FormValue[]): FormObject {
  return Object.fromEntries(values.map((v, i) => [String(i), v]));
}

function splitKey(key: string): string[] {
  const head = key.indexOf("[");
  if (head <= 0 || !key.endsWith("]")) return [key];
  return [key.slice(0, head), ...key.slice(head + 1, -1).split("][")];
}

function insert(tree: Tree, path: string[], value: string): void {
  const [first, ...rest] = path;
  // `expand[]=a&expand[]=b` appends, like qs does
  const key = first === "" ? String(tree.size) : first;
  if (rest.length === 0) {
    tree.set(key, value);
    return;
  }
  let child = tree.get(key);
  if (child === undefined || typeof child === "string") {
    child = new Map();
    tree.set(key, child);
  }
  insert(child, rest, value);
}

function finish(tree: Tree): FormObject | FormValue[] {
  const keys = [...tree.keys()];
  const entries = keys.map((k) => {
    const v = tree.get(k)!;
    return [k, typeof v === "string" ? v : finish(v)] as const;
  });
  if (keys.length > 0 && keys.every((k) => /^(0|[1-9]\d{0,3})$/.test(k))) {
    return entries.sort((a, b) => Number(a[0]) - Number(b[0])).map((e) => e[1]);
  }
  const out: FormObject = {};
  for (const [k, v] of entries) {
    Object.defineProperty(out, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Serialises a value with sorted keys, to compare two requests' parameters. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1);
    return `{${
      entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")
    }}`;
  }
  return JSON.stringify(value);
}
