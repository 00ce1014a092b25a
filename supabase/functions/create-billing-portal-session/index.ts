// create-billing-portal-session: a customer opens Stripe's portal for card, invoices and cancellation.
import { portalFromEnv } from "./handler.ts";

const { handler } = portalFromEnv(Deno.env.toObject());
Deno.serve(handler);
