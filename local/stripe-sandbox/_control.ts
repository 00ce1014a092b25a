/**
 * Control calls under `/_sandbox` (no auth): completing a checkout as the customer,
 * re-delivering events, reading deliveries, losing and restoring the webhook, and the human
 * checkout page; calls and faults are the kit's (`../sandbox-kit/mod.ts`).
 *
 * @module
 */
import { z } from "zod";
import type { ControlRoutes, FaultPlan } from "../sandbox-kit/mod.ts";
import { completeSession, getSession } from "./_checkout.ts";
import { getEndpoint, pointWebhook } from "./_endpoints.ts";
import type { StripeErrorType } from "./_errors.ts";
import {
  controlBody,
  json,
  noSuch,
  parseControl,
  StripeApiError,
} from "./_errors.ts";
import { parseForm } from "./_form.ts";
import { payPage } from "./_html.ts";
import { lifecycleRoutes } from "./_lifecycle.ts";
import { portalRoutes } from "./_portal.ts";
import { newId } from "./_objects.ts";
import type { State } from "./_state.ts";

const Complete = z.object({
  outcome: z.enum([
    "paid",
    "async_pending",
    "async_succeeded",
    "async_failed",
    "expired",
  ]).default("paid"),
  delivery: z.enum(["normal", "duplicate", "reverse"]).default("normal"),
});

const Deliver = z.object({
  copies: z.number().int().min(1).max(100).default(1),
  concurrent: z.boolean().default(false),
  endpoint: z.string().optional(),
});

const Webhook = z.object({ url: z.url().nullable().optional() });

const PaymentMethod = z.object({ outcome: z.enum(["succeeds", "declines"]) })
  .strict();

/** The Stripe sandbox's control routes, beside the kit's calls and faults. */
export function controlRoutes(state: State): ControlRoutes {
  return {
    "POST /_sandbox/checkout/sessions/:id/complete": (c) =>
      complete(state, c.request, c.params.id),
    "POST /_sandbox/events/:id/deliver": async (c) => {
      const input = parseControl(Deliver, await controlBody(c.request));
      const event = state.store.events.get(c.params.id);
      if (event === undefined) throw noSuch("event", c.params.id);
      if (input.endpoint !== undefined) {
        getEndpoint(state.store, input.endpoint);
      }
      const statuses = await state.webhooks.redeliver(
        event,
        input.copies,
        input.concurrent,
        input.endpoint,
      );
      return json(200, { event_id: c.params.id, statuses });
    },
    "GET /_sandbox/deliveries": () => json(200, state.webhooks.log),
    "GET /_sandbox/events": () => json(200, [...state.store.events.values()]),
    "POST /_sandbox/webhook": async (c) => {
      const { url } = parseControl(Webhook, await controlBody(c.request));
      pointWebhook(state, url ?? undefined, state.webhookSecret);
      return json(200, { url: url ?? null });
    },
    "POST /_sandbox/customers/:id/payment_method": async (c) => {
      const input = parseControl(PaymentMethod, await controlBody(c.request));
      if (!state.store.customers.has(c.params.id)) {
        throw noSuch("customer", c.params.id);
      }
      state.store.paymentMethods.set(c.params.id, input);
      return json(200, { customer: c.params.id, outcome: input.outcome });
    },
    ...lifecycleRoutes(state),
    ...portalRoutes(state),
    "GET /_sandbox/pay/:id": (c) =>
      new Response(payPage(getSession(state, c.params.id)), {
        headers: { "content-type": "text/html; charset=utf-8" },
      }),
  };
}

/** Stripe's own errors in control calls keep Stripe's error body. */
export function controlError(error: unknown): Response | undefined {
  return error instanceof StripeApiError
    ? json(error.status, error.body())
    : undefined;
}

/** The answer to a request a status fault fails, with Stripe's defaults per status. */
export function faultAnswer(plan: FaultPlan & { status: number }): Response {
  const type: StripeErrorType = plan.type ??
    (plan.status >= 500
      ? "api_error"
      : plan.status === 402
      ? "card_error"
      : "invalid_request_error");
  const code = plan.code ?? (plan.status === 429 ? "rate_limit" : undefined);
  const message = plan.message ??
    (plan.status === 429
      ? "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
      : plan.status >= 500
      ? "Sorry, something went wrong. We've already been notified of the problem."
      : `Injected failure ${plan.status}`);
  const error = new StripeApiError(plan.status, type, message, { code });
  return json(error.status, error.body(), {
    "request-id": newId("req", 14),
    ...(plan.retryAfterSeconds === undefined
      ? {}
      : { "retry-after": String(plan.retryAfterSeconds) }),
  });
}

/** The answer when a fault loses the real one: a gateway timeout. */
export function lostAnswer(): Response {
  return json(504, {
    error: { type: "api_error", message: "The gateway timed out" },
  });
}

async function complete(
  state: State,
  req: Request,
  id: string,
): Promise<Response> {
  const fromPage = (req.headers.get("content-type") ?? "").includes(
    "application/x-www-form-urlencoded",
  );
  const input = parseControl(
    Complete,
    fromPage ? parseForm(await req.text()) : await controlBody(req),
  );
  const { session, events } = completeSession(state, id, input.outcome);
  await state.webhooks.deliver(events, input.delivery);
  if (fromPage) {
    const next = session.status === "expired"
      ? session.cancel_url ?? `/_sandbox/pay/${id}`
      : session.success_url.replaceAll("{CHECKOUT_SESSION_ID}", id);
    return new Response(null, { status: 303, headers: { location: next } });
  }
  return json(200, { session, event_ids: events.map((e) => e.id) });
}
