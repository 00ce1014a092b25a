/**
 * A small Laravel validator: the subset of rules the panel's requests and egg
 * variables use, with Laravel's messages, implicit-rule and `nullable` semantics. Setup
 * checks a plan's environment against an egg's rules with it (as the real panel will),
 * and the local panel sandbox validates its requests with it.
 *
 * @module
 */

/** A rule the string syntax cannot express (unique, exists, the panel's username rule). */
export interface CustomRule {
  name: string;
  message: string;
  passes(value: unknown): boolean;
}

/** One rule: a Laravel rule string such as `max:20`, or a custom rule. */
export type Rule = string | CustomRule;

/** One failed rule, as the panel reports it in `meta.source_field` / `meta.rule`. */
export interface ValidationFailure {
  field: string;
  rule: string;
  detail: string;
}

const IMPLICIT = new Set([
  "required",
  "present",
  "required_with",
  "required_without",
  "filled",
  "accepted",
]);
const NUMERIC_RULES = new Set(["numeric", "integer"]);
const NO_OP = new Set(["nullable", "sometimes", "bail"]);

const MESSAGES: Record<string, string> = {
  required: "The :attribute field is required.",
  filled: "The :attribute field is required.",
  accepted: "The :attribute must be accepted.",
  present: "The :attribute field must be present.",
  required_with: "The :attribute field is required when :values is present.",
  required_without:
    "The :attribute field is required when :values is not present.",
  string: "The :attribute must be a string.",
  integer: "The :attribute must be an integer.",
  numeric: "The :attribute must be a number.",
  boolean: "The :attribute field must be true or false.",
  array: "The :attribute must be an array.",
  email: "The :attribute must be a valid email address.",
  in: "The selected :attribute is invalid.",
  not_in: "The selected :attribute is invalid.",
  regex: "The :attribute format is invalid.",
  alpha_num: "The :attribute may only contain letters and numbers.",
  alpha_dash: "The :attribute may only contain letters, numbers, and dashes.",
};

const SIZE_MESSAGES: Record<string, Record<string, string>> = {
  max: {
    numeric: "The :attribute may not be greater than :max.",
    string: "The :attribute may not be greater than :max characters.",
    array: "The :attribute may not have more than :max items.",
  },
  min: {
    numeric: "The :attribute must be at least :min.",
    string: "The :attribute must be at least :min characters.",
    array: "The :attribute must have at least :min items.",
  },
  between: {
    numeric: "The :attribute must be between :min and :max.",
    string: "The :attribute must be between :min and :max characters.",
    array: "The :attribute must have between :min and :max items.",
  },
  size: {
    numeric: "The :attribute must be :size.",
    string: "The :attribute must be :size characters.",
    array: "The :attribute must contain :size items.",
  },
};

/** Whether a value is a PHP array (a JSON array or object). */
export function isPhpArray(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** Reads a dotted path; `present` tells a missing key from a null one. */
export function readPath(
  data: unknown,
  path: string,
): { present: boolean; value: unknown } {
  let current: unknown = data;
  for (const key of path.split(".")) {
    if (!isPhpArray(current) || !Object.hasOwn(current, key)) {
      return { present: false, value: undefined };
    }
    current = (current as Record<string, unknown>)[key];
  }
  return { present: true, value: current };
}

/** Laravel's `integer` rule (PHP `FILTER_VALIDATE_INT`). */
export function isIntegerish(value: unknown): boolean {
  if (typeof value === "number") return Number.isInteger(value);
  if (typeof value === "boolean") return value;
  return typeof value === "string" && /^\s*[+-]?(0|[1-9]\d*)\s*$/.test(value);
}

/** PHP's `is_numeric`. */
export function isNumeric(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  return typeof value === "string" &&
    /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(value);
}

/** Turns a PHP regex literal such as `/^([\w\d._-]+)(\.jar)$/i` into a RegExp. */
export function phpRegex(literal: string): RegExp {
  const delimiter = literal[0];
  const end = literal.lastIndexOf(delimiter);
  if (end <= 0) throw new SyntaxError(`Invalid regex rule: "${literal}"`);
  const flags = [...literal.slice(end + 1)].filter((f) => "imsu".includes(f));
  return new RegExp(literal.slice(1, end), flags.join(""));
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value === "string") return value.trim() === "";
  if (isPhpArray(value)) return Object.keys(value).length === 0;
  return false;
}

function sizeKind(value: unknown, numericRule: boolean): string {
  if (numericRule && isNumeric(value)) return "numeric";
  if (isPhpArray(value)) return "array";
  return "string";
}

function sizeOf(value: unknown, kind: string): number {
  if (kind === "numeric") return Number(value);
  if (kind === "array" && isPhpArray(value)) return Object.keys(value).length;
  return [...String(value ?? "")].length;
}

function splitRule(rule: string): { name: string; params: string[] } {
  const colon = rule.indexOf(":");
  if (colon < 0) return { name: rule, params: [] };
  const name = rule.slice(0, colon);
  const raw = rule.slice(colon + 1);
  return { name, params: name === "regex" ? [raw] : raw.split(",") };
}

/** Splits a pipe-separated rule string, keeping `regex:` patterns whole. */
export function parseRules(rules: string | Rule[]): Rule[] {
  if (Array.isArray(rules)) return rules;
  const out: string[] = [];
  for (const part of rules.split("|")) {
    const last = out.at(-1);
    if (last?.startsWith("regex:") && !/^[a-z_]+(:|$)/.test(part)) {
      out[out.length - 1] = `${last}|${part}`;
    } else if (part !== "") out.push(part);
  }
  return out;
}

interface Check {
  name: string;
  params: string[];
  passed: boolean;
  kind?: string;
}

function check(
  rule: string,
  value: unknown,
  present: boolean,
  data: unknown,
  numericRule: boolean,
): Check {
  const { name, params } = splitRule(rule);
  const result = (passed: boolean, kind?: string) => ({
    name,
    params,
    passed,
    kind,
  });
  switch (name) {
    case "required":
    case "filled":
      return result(!isEmpty(value));
    case "present":
      return result(present);
    case "accepted":
      return result(["yes", "on", "1", 1, true, "true"].includes(
        value as string,
      ));
    case "required_with":
    case "required_without": {
      const others = params.map((p) => readPath(data, p));
      const anyPresent = others.some((o) => !isEmpty(o.value));
      const needed = name === "required_with"
        ? anyPresent
        : others.some((o) => isEmpty(o.value));
      return result(!needed || !isEmpty(value));
    }
    case "string":
      return result(typeof value === "string");
    case "integer":
      return result(isIntegerish(value));
    case "numeric":
      return result(typeof value !== "boolean" && isNumeric(value));
    case "boolean":
      return result([true, false, 0, 1, "0", "1"].includes(
        value as string,
      ));
    case "array":
      return result(isPhpArray(value));
    case "email":
      return result(
        typeof value === "string" &&
          /^[^\s@"(),:;<>[\]\\]+@[^\s@"(),:;<>[\]\\]+$/.test(value),
      );
    case "in":
    case "not_in": {
      const inList = !isPhpArray(value) && params.includes(String(value));
      return result(name === "in" ? inList : !inList);
    }
    case "regex":
      return result(
        (typeof value === "string" || typeof value === "number") &&
          phpRegex(params[0]).test(String(value)),
      );
    case "alpha_num":
      return result(
        typeof value === "string" && /^[\p{L}\p{N}]+$/u.test(value),
      );
    case "alpha_dash":
      return result(
        typeof value === "string" && /^[\p{L}\p{N}_-]+$/u.test(value),
      );
    case "max":
    case "min":
    case "between":
    case "size": {
      const kind = sizeKind(value, numericRule);
      const size = sizeOf(value, kind);
      const [a, b] = params.map(Number);
      const passed = name === "max"
        ? size <= a
        : name === "min"
        ? size >= a
        : name === "size"
        ? size === a
        : size >= a && size <= b;
      return result(passed, kind);
    }
    default:
      // Rules the sandbox does not know pass, as a lenient panel plugin would.
      return result(true);
  }
}

function message(c: Check, attribute: string, display: (f: string) => string) {
  const template = c.kind
    ? SIZE_MESSAGES[c.name][c.kind]
    : MESSAGES[c.name] ?? "The :attribute is invalid.";
  const [first, second] = c.params;
  const values = c.params.map(display).join(" / ");
  return template
    .replace(":attribute", attribute)
    .replace(":values", values)
    .replace(":max", c.name === "between" ? second : first)
    .replace(":min", first)
    .replace(":size", first);
}

/** Field paths a rule key covers: `a.*.b` expands over the array at `a`. */
function expand(data: unknown, key: string): string[] {
  const star = key.indexOf("*");
  if (star < 0) return [key];
  const base = key.slice(0, star - 1);
  const { value } = readPath(data, base);
  if (!isPhpArray(value)) return [];
  return Object.keys(value).flatMap((k) =>
    expand(data, `${base}.${k}${key.slice(star + 1)}`)
  );
}

/**
 * Validates `data` against Laravel rules keyed by dotted field names, in order, and
 * answers every failed rule (Laravel stops a field after a failed implicit rule).
 */
export function validate(
  data: unknown,
  rules: Record<string, string | Rule[]>,
  attributes: Record<string, string> = {},
): ValidationFailure[] {
  const display = (field: string) =>
    attributes[field] ?? field.replaceAll("_", " ");
  const failures: ValidationFailure[] = [];
  for (const [key, spec] of Object.entries(rules)) {
    const list = parseRules(spec);
    const names = list.map((r) =>
      typeof r === "string" ? splitRule(r).name : r.name
    );
    const numericRule = names.some((n) => NUMERIC_RULES.has(n));
    for (const field of expand(data, key)) {
      const { present, value } = readPath(data, field);
      if (names.includes("sometimes") && !present) continue;
      const blank = typeof value === "string" && value.trim() === "";
      for (const rule of list) {
        const name = typeof rule === "string"
          ? splitRule(rule).name
          : rule.name;
        if (NO_OP.has(name)) continue;
        const implicit = IMPLICIT.has(name);
        if (!implicit && (!present || blank)) continue;
        if (!implicit && value === null && names.includes("nullable")) continue;
        let failure: ValidationFailure | undefined;
        if (typeof rule === "string") {
          const c = check(rule, value, present, data, numericRule);
          if (!c.passed) {
            failure = {
              field,
              rule: c.name,
              detail: message(c, display(field), display),
            };
          }
        } else if (!rule.passes(value)) {
          failure = {
            field,
            rule: rule.name,
            detail: rule.message.replace(":attribute", display(field)),
          };
        }
        if (!failure) continue;
        failures.push(failure);
        if (implicit || names.includes("bail")) break;
      }
    }
  }
  return failures;
}
