/**
 * Text Postgres stores: valid UTF-8 only. A lone UTF-16 surrogate (which JSON's
 * `\ud83d` escape can carry) becomes U+FFFD, in strings and object keys alike, and a
 * cut never splits a surrogate pair.
 *
 * @module
 */

/** The text with every lone surrogate replaced by U+FFFD. */
export function wellFormedText(text: string): string {
  return text.toWellFormed();
}

/** A JSON value with every string and key well formed (a copy; the input is kept). */
export function wellFormedJson(value: unknown): unknown {
  if (typeof value === "string") return value.toWellFormed();
  if (Array.isArray(value)) return value.map(wellFormedJson);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map((
        [key, item],
      ) => [key.toWellFormed(), wellFormedJson(item)]),
    );
  }
  return value;
}

/** At most `max` UTF-16 units of well-formed text, cut at a code-point boundary. */
export function cutText(text: string, max: number): string {
  const whole = text.toWellFormed();
  if (whole.length <= max) return whole;
  const cut = whole.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  // A high surrogate last means the cut fell inside a pair: drop its first half.
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}
