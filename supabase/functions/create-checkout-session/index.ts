// create-checkout-session: a signed-in customer starts a Stripe Checkout for a plan.
import { checkoutFromEnv } from "./handler.ts";

const { handler } = checkoutFromEnv(Deno.env.toObject());
Deno.serve(handler);
