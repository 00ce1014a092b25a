/**
 * Webhook delivery like Stripe's: POSTs to each endpoint an event is due to, signed
 * with that endpoint's secret (`Stripe-Signature: t=…,v1=…`), retries of a non-2xx
 * answer or a network error after the configured delays, and a log of every attempt.
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
  /** the webhook endpoint (`we_…`) the attempt went to */
  endpoint: string;
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

/** Where a deliverer finds endpoints and reports answers (the sandbox's store). */
export interface DeliveryTargets {
  /** The endpoint `id` as it is now, if it exists and is enabled. */
  enabled(id: string): { url: string; secret: string } | undefined;
  /** The endpoints `event` was sent to that have not answered it with a 2xx yet. */
  awaiting(event: StripeEvent): string[];
  /** The enabled endpoints subscribed to `event`'s type now. */
  subscribers(event: StripeEvent): string[];
  /** `endpoint` answered `event` with a 2xx. */
  delivered(event: StripeEvent, endpoint: string): void;
}

/**
 * Sends events to their endpoints, each signed with its endpoint's secret, and
 * retries failed attempts per endpoint in the background.
 */
export class WebhookDeliverer {
  /** Every attempt made so far, oldest first. */
  readonly log: Delivery[] = [];
  #closed = false;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  readonly #aborts = new Set<AbortController>();

  /** Creates a deliverer retrying after `delaysMs`, to the endpoints `targets` name. */
  constructor(
    readonly delaysMs: readonly number[],
    readonly targets: DeliveryTargets,
  ) {}

  /**
   * Delivers a batch to the endpoints each event is due to; resolves once the first
   * attempt of every copy was made. Retries go on in the background until `idle()`.
   */
  deliver(events: StripeEvent[], mode: DeliveryMode): Promise<number[]> {
    return this.#track((async () => {
      const statuses: number[] = [];
      const ordered = mode === "reverse" ? [...events].reverse() : events;
      for (const event of ordered) {
        const copies = mode === "duplicate" ? 2 : 1;
        for (const endpoint of this.targets.awaiting(event)) {
          statuses.push(...await this.#copies(event, endpoint, copies));
        }
      }
      return statuses;
    })());
  }

  /**
   * Delivers `copies` copies of one event, all at once or one after another, to
   * `endpoint` or else to every enabled endpoint subscribed to it now.
   */
  redeliver(
    event: StripeEvent,
    copies: number,
    concurrent: boolean,
    endpoint?: string,
  ): Promise<number[]> {
    return this.#track((async () => {
      const statuses: number[] = [];
      const endpoints = endpoint === undefined
        ? this.targets.subscribers(event)
        : [endpoint];
      for (const id of endpoints) {
        if (concurrent) statuses.push(...await this.#copies(event, id, copies));
        else {
          for (let i = 0; i < copies; i++) {
            statuses.push(...await this.#copies(event, id, 1));
          }
        }
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

  #copies(
    event: StripeEvent,
    endpoint: string,
    copies: number,
  ): Promise<number[]> {
    return Promise.all(
      Array.from({ length: copies }, async () => {
        const status = await this.#attempt(event, endpoint, 1);
        // -1: the endpoint is gone or disabled, nothing was sent
        if (status >= 0 && !ok(status)) {
          this.#track(this.#retry(event, endpoint));
        }
        return status;
      }),
    );
  }

  async #retry(event: StripeEvent, endpoint: string): Promise<void> {
    for (const [i, delay] of this.delaysMs.entries()) {
      if (!await this.#sleep(delay)) return;
      const status = await this.#attempt(event, endpoint, i + 2);
      // A disabled or deleted endpoint gets no more retries.
      if (ok(status) || status < 0) return;
    }
  }

  async #attempt(
    event: StripeEvent,
    endpoint: string,
    attempt: number,
  ): Promise<number> {
    const target = this.targets.enabled(endpoint);
    if (target === undefined || this.#closed) return -1;
    const body = JSON.stringify(event, null, 2);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ATTEMPT_TIMEOUT_MS);
    this.#aborts.add(abort);
    let status = 0;
    try {
      const res = await fetch(target.url, {
        method: "POST",
        body,
        signal: abort.signal,
        headers: {
          "content-type": "application/json; charset=utf-8",
          "stripe-signature": await signPayload(target.secret, body),
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
      endpoint,
      attempt,
      status,
      at: new Date().toISOString(),
    });
    if (ok(status)) this.targets.delivered(event, endpoint);
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
