// order-doctor: explain one order (or a customer's orders), read-only.
import { doctorFromEnv } from "./handler.ts";

const { handler } = doctorFromEnv(Deno.env.toObject());
Deno.serve(handler);
