/**
 * Webhook delivery like Stripe's: signed POSTs (`Stripe-Signature: t=…,v1=…`), retries
 * of a non-2xx answer or a network error after the configured delays, and a log of
 * every attempt.
 *
 * @module
 */
import type { StripeEvent } from "./_objects.ts";

/** How one batch of events is delivered. */
export type DeliveryMode = "normal" | "duplicate" | "reverse";

/** One delivery attempt as logged by `GET /_sandbox/deliveries`. */
export interface Delivery {
  event_id: string;
  type: string;
  /** 1 for the first attempt of a copy, then 2, 3… for its retries */
  attempt: number;
  /** the receiver's HTTP status, 0 for a network error */
  status: number;
  /** ISO 8601 time of the attempt */
  at: string;
}

const encoder = new TextEncoder();
const ATTEMPT_TIMEOUT_MS = 10_000;

/** The `Stripe-Signature` header for a payload, exactly as Stripe computes it. */
export async function signPayload(
  secret: string,
  payload: string,
  timestamp = Math.floor(Date.now() / 1000),
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(`${timestamp}.${payload}`),
  );
  const hex = [...new Uint8Array(mac)]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `t=${timestamp},v1=${hex}`;
}

/** Sends events to the webhook URL and retries failed attempts in the background. */
export class WebhookDeliverer {
  /** Every attempt made so far, oldest first. */
  readonly log: Delivery[] = [];
  #url: string | undefined;
  #closed = false;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  readonly #aborts = new Set<AbortController>();

  /** Creates a deliverer signing with `secret` and retrying after `delaysMs`. */
  constructor(
    readonly secret: string,
    readonly delaysMs: readonly number[],
    url?: string,
  ) {
    this.#url = url;
  }

  /** The URL events are POSTed to, if any. */
  get url(): string | undefined {
    return this.#url;
  }

  /** Sets (or clears) the URL events are POSTed to. */
  set url(url: string | undefined) {
    this.#url = url;
  }

  /**
   * Delivers a batch; resolves once the first attempt of every copy was made.
   * Retries go on in the background until `idle()`.
   */
  deliver(events: StripeEvent[], mode: DeliveryMode): Promise<number[]> {
    return this.#track((async () => {
      const statuses: number[] = [];
      const ordered = mode === "reverse" ? [...events].reverse() : events;
      for (const event of ordered) {
        const copies = mode === "duplicate" ? 2 : 1;
        statuses.push(...await this.#copies(event, copies));
      }
      return statuses;
    })());
  }

  /** Delivers `copies` copies of one event, all at once or one after another. */
  redeliver(
    event: StripeEvent,
    copies: number,
    concurrent: boolean,
  ): Promise<number[]> {
    return this.#track((async () => {
      if (concurrent) return await this.#copies(event, copies);
      const statuses: number[] = [];
      for (let i = 0; i < copies; i++) {
        statuses.push(...await this.#copies(event, 1));
      }
      return statuses;
    })());
  }

  /** Resolves when no delivery or scheduled retry is left. */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) {
      await Promise.allSettled([...this.#inflight]);
    }
  }

  /** Cancels scheduled retries, aborts attempts in flight and waits for them. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const [timer, wake] of this.#timers) {
      clearTimeout(timer);
      wake();
    }
    this.#timers.clear();
    for (const abort of this.#aborts) abort.abort();
    await this.idle();
  }

  #copies(event: StripeEvent, copies: number): Promise<number[]> {
    return Promise.all(
      Array.from({ length: copies }, async () => {
        const status = await this.#attempt(event, 1);
        // -1: no webhook URL, nothing was sent
        if (status >= 0 && !ok(status)) this.#track(this.#retry(event));
        return status;
      }),
    );
  }

  async #retry(event: StripeEvent): Promise<void> {
    for (const [i, delay] of this.delaysMs.entries()) {
      if (!await this.#sleep(delay)) return;
      const status = await this.#attempt(event, i + 2);
      if (ok(status) || this.#url === undefined) return;
    }
  }

  async #attempt(event: StripeEvent, attempt: number): Promise<number> {
    const url = this.#url;
    if (url === undefined || this.#closed) return -1;
    const body = JSON.stringify(event, null, 2);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ATTEMPT_TIMEOUT_MS);
    this.#aborts.add(abort);
    let status = 0;
    try {
      const res = await fetch(url, {
        method: "POST",
        body,
        signal: abort.signal,
        headers: {
          "content-type": "application/json; charset=utf-8",
          "stripe-signature": await signPayload(this.secret, body),
          "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
          "cache-control": "no-cache",
          accept: "*/*; q=0.5, application/xml",
        },
      });
      await res.body?.cancel();
      status = res.status;
    } catch {
      status = 0;
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    }
    this.log.push({
      event_id: event.id,
      type: event.type,
      attempt,
      status,
      at: new Date().toISOString(),
    });
    if (ok(status)) event.pending_webhooks = 0;
    return status;
  }

  /** Sleeps `ms`; false when the deliverer was closed meanwhile. */
  #sleep(ms: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve(!this.#closed);
      }, ms);
      this.#timers.set(timer, () => resolve(false));
    });
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    promise.finally(() => this.#inflight.delete(promise)).catch(() => {});
    return promise;
  }
}

function ok(status: number): boolean {
  return status >= 200 && status < 300;
}
