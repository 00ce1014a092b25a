// stripe-webhook: Stripe's signed events (verify_jwt = false: Stripe sends no JWT).
import { webhookFromEnv } from "./handler.ts";

const { handler } = webhookFromEnv(Deno.env.toObject());
Deno.serve(handler);
