/**
 * Control calls under `/_sandbox` (no auth): completing a checkout as the customer,
 * re-delivering events, reading deliveries, injecting API faults, setting the
 * webhook URL, and the human checkout page.
 *
 * @module
 */
import { z } from "zod";
import { completeSession, getSession } from "./_checkout.ts";
import type { StripeErrorType } from "./_errors.ts";
import { invalidRequest, json, noSuch, StripeApiError } from "./_errors.ts";
import { parseForm } from "./_form.ts";
import { payPage } from "./_html.ts";
import { handleLifecycle } from "./_lifecycle.ts";
import type { Fault, State } from "./_state.ts";

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
});

const FaultInput = z.object({
  method: z.string().default("*").transform((m) => m.toUpperCase()),
  path: z.string().startsWith("/"),
  status: z.number().int().min(400).max(599),
  times: z.number().int().min(1).default(1),
  type: z.enum([
    "api_error",
    "card_error",
    "idempotency_error",
    "invalid_request_error",
  ]).optional(),
  code: z.string().optional(),
  message: z.string().optional(),
});

const Webhook = z.object({ url: z.url().nullable().optional() });

/** Answers one request under `/_sandbox`. */
export async function handleControl(
  state: State,
  req: Request,
): Promise<Response> {
  const path = new URL(req.url).pathname;
  try {
    const lifecycle = await handleLifecycle(state, req, path);
    if (lifecycle !== undefined) return lifecycle;
    const route = `${req.method} ${path.replace(/\/(cs_|evt_)[^/]+/, "/:id")}`;
    const id = decodeURIComponent(path.match(/\/((cs_|evt_)[^/]+)/)?.[1] ?? "");
    switch (route) {
      case "POST /_sandbox/checkout/sessions/:id/complete":
        return await complete(state, req, id);
      case "POST /_sandbox/events/:id/deliver": {
        const input = parse(Deliver, await body(req));
        const event = state.store.events.get(id);
        if (event === undefined) throw noSuch("event", id);
        const statuses = await state.webhooks.redeliver(
          event,
          input.copies,
          input.concurrent,
        );
        return json(200, { event_id: id, statuses });
      }
      case "GET /_sandbox/deliveries":
        return json(200, state.webhooks.log);
      case "GET /_sandbox/events":
        return json(200, [...state.store.events.values()]);
      case "POST /_sandbox/faults": {
        state.faults.push(toFault(parse(FaultInput, await body(req))));
        return json(200, state.faults);
      }
      case "DELETE /_sandbox/faults":
        state.faults.length = 0;
        return json(200, state.faults);
      case "POST /_sandbox/webhook": {
        state.webhooks.url = parse(Webhook, await body(req)).url ?? undefined;
        return json(200, { url: state.webhooks.url ?? null });
      }
      case "GET /_sandbox/pay/:id":
        return new Response(payPage(getSession(state, id)), {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
    }
    throw invalidRequest(`Unrecognized sandbox URL (${req.method}: ${path})`);
  } catch (error) {
    if (error instanceof StripeApiError) {
      return json(error.status, error.body());
    }
    console.error("Stripe sandbox failed on a control call:", error);
    return json(500, {
      error: { type: "api_error", message: "The Stripe sandbox failed" },
    });
  }
}

async function complete(
  state: State,
  req: Request,
  id: string,
): Promise<Response> {
  const fromPage = (req.headers.get("content-type") ?? "").includes(
    "application/x-www-form-urlencoded",
  );
  const input = parse(
    Complete,
    fromPage ? parseForm(await req.text()) : await body(req),
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

async function body(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest("Invalid JSON body");
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw invalidRequest(`Invalid ${issue.path.join(".")}: ${issue.message}`, {
      param: issue.path.join("."),
    });
  }
  return result.data;
}

function toFault(input: z.infer<typeof FaultInput>): Fault {
  const type: StripeErrorType = input.type ??
    (input.status >= 500
      ? "api_error"
      : input.status === 402
      ? "card_error"
      : "invalid_request_error");
  const code = input.code ?? (input.status === 429 ? "rate_limit" : undefined);
  const message = input.message ??
    (input.status === 429
      ? "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
      : input.status >= 500
      ? "Sorry, something went wrong. We've already been notified of the problem."
      : `Injected failure ${input.status}`);
  return {
    method: input.method,
    path: input.path,
    status: input.status,
    times: input.times,
    type,
    code,
    message,
  };
}
