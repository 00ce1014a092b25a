/**
 * Typed reads of parsed request parameters, failing with Stripe's own errors.
 *
 * @module
 */
import { invalidRequest } from "./_errors.ts";
import type { FormObject, FormValue } from "./_form.ts";
import { arrayToObject } from "./_form.ts";

/** A string parameter, or undefined when absent. */
export function optString(p: FormObject, key: string, param = key) {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") {
    throw invalidRequest(`Invalid string: ${param}`, { param });
  }
  return v;
}

/** A non-negative integer parameter, or undefined when absent. */
export function optInteger(
  p: FormObject,
  key: string,
  param = key,
): number | undefined {
  const v = optString(p, key, param);
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) {
    throw invalidRequest(`Invalid integer: ${v}`, { param });
  }
  return Number(v);
}

/** A boolean parameter (`true`/`false`), or undefined when absent. */
export function optBoolean(
  p: FormObject,
  key: string,
  param = key,
): boolean | undefined {
  const v = optString(p, key, param);
  if (v === undefined) return undefined;
  if (v !== "true" && v !== "false") {
    throw invalidRequest(`Invalid boolean: ${v}`, { param });
  }
  return v === "true";
}

/** A hash parameter, or undefined when absent. */
export function optObject(
  p: FormObject,
  key: string,
  param = key,
): FormObject | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return arrayToObject(v);
  if (typeof v === "string") {
    throw invalidRequest(`Invalid object`, { param });
  }
  return v;
}

/** An array parameter (`a[0]=`, `a[]=`), or undefined when absent. */
export function optArray(
  p: FormObject,
  key: string,
  param = key,
): FormValue[] | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    throw invalidRequest(`Invalid array`, { param });
  }
  return v;
}

/** Rejects parameters the endpoint does not know, as Stripe does. */
export function onlyKnown(p: FormObject, known: readonly string[]): void {
  for (const key of Object.keys(p)) {
    if (!known.includes(key)) {
      throw invalidRequest(`Received unknown parameter: ${key}`, {
        code: "parameter_unknown",
        param: key,
      });
    }
  }
}

/** The `expand[]` parameter. */
export function expandList(p: FormObject): string[] {
  const v = p.expand;
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === "string");
}

/**
 * A metadata hash checked against Stripe's limits: at most 50 keys, keys up to 40
 * characters, values up to 500. An empty string (`metadata=`) means no metadata.
 */
export function optMetadata(
  p: FormObject,
  key: string,
  param = key,
): Record<string, string> | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (v === "") return {};
  const obj = optObject(p, key, param)!;
  const entries = Object.entries(obj);
  if (entries.length > 50) {
    throw invalidRequest(
      `Invalid metadata: metadata can have at most 50 keys, but ${entries.length} were given`,
      { param },
    );
  }
  const out: Record<string, string> = {};
  for (const [k, value] of entries) {
    if (k.length > 40) {
      throw invalidRequest(
        `Invalid key: '${k}' must be a string of at most 40 characters`,
        { param },
      );
    }
    if (typeof value !== "string") {
      throw invalidRequest(`Invalid value for metadata key '${k}'`, {
        param: `${param}[${k}]`,
      });
    }
    if (value.length > 500) {
      throw invalidRequest(
        `Invalid value: metadata values must be strings of at most 500 characters, '${k}' has ${value.length}`,
        { param: `${param}[${k}]` },
      );
    }
    out[k] = value;
  }
  return out;
}

/** Applies a metadata update: keys set to "" are removed, as in Stripe. */
export function mergeMetadata(
  current: Record<string, string>,
  update: Record<string, string> | undefined,
  unsetAll: boolean,
): Record<string, string> {
  if (update === undefined) return current;
  const next: Record<string, string> = unsetAll ? {} : { ...current };
  for (const [k, v] of Object.entries(update)) {
    if (v === "") delete next[k];
    else next[k] = v;
  }
  return next;
}
