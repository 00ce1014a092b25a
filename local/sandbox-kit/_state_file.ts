/**
 * A sandbox's state kept in one JSON file, so `npm start` can stop and start without
 * forgetting what the database still refers to.
 *
 * @module
 */

/** A JSON file holding one sandbox's state. */
export interface StateFile<T> {
  /** The saved state, or undefined when there is no file yet. */
  load(): Promise<T | undefined>;
  /**
   * Saves `state` soon: saves close together are coalesced into one write of the
   * latest, and writes never overlap. A value is serialised now (later changes to it
   * are not in this save); a function is called when the write happens, so a burst of
   * changes is serialised once. The promise settles once that write is done.
   */
  save(state: T | (() => T)): Promise<void>;
  /** Waits until every save requested so far is on disk. */
  flush(): Promise<void>;
}

/** Options of `createStateFile`. */
export interface StateFileOptions<T> {
  /** Checks what `load` read (e.g. a zod schema's `parse`); throws when it is not a state. */
  parse?(value: unknown): T;
  /** How long a save waits for more changes before writing; default 50 ms. */
  debounceMs?: number;
}

/**
 * A state file at `path`: written as a temporary file beside it and renamed over it,
 * mode 0600, so a crash leaves either the old state or the new one.
 */
export function createStateFile<T>(
  path: string,
  options: StateFileOptions<T> = {},
): StateFile<T> {
  const debounceMs = options.debounceMs ?? 50;
  let pending: { text: string } | { snapshot: () => T } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> = Promise.resolve();
  let waiters: { resolve(): void; reject(error: unknown): void }[] = [];

  async function write(text: string): Promise<void> {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
    if (dir !== "") await Deno.mkdir(dir, { recursive: true });
    const temp = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(temp, text, { mode: 0o600 });
      await Deno.chmod(temp, 0o600);
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
  }

  function drain(): void {
    timer = undefined;
    const next = pending;
    const settled = waiters;
    pending = undefined;
    waiters = [];
    if (next === undefined) return;
    const text = "text" in next
      ? next.text
      : JSON.stringify(next.snapshot(), null, 2);
    // Writes are chained so an older snapshot never lands after a newer one.
    writing = writing.then(() => write(text)).then(
      () => settled.forEach((w) => w.resolve()),
      (error) => settled.forEach((w) => w.reject(error)),
    );
  }

  return {
    async load() {
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new SyntaxError(`State file "${path}" is not JSON`);
      }
      return options.parse ? options.parse(value) : value as T;
    },
    save(state) {
      pending = typeof state === "function"
        ? { snapshot: state as () => T }
        : { text: JSON.stringify(state, null, 2) };
      const done = new Promise<void>((resolve, reject) => {
        waiters.push({ resolve, reject });
      });
      clearTimeout(timer);
      timer = setTimeout(drain, debounceMs);
      return done;
    },
    async flush() {
      if (timer !== undefined) {
        clearTimeout(timer);
        drain();
      }
      await writing.catch(() => {});
    },
  };
}
