// sync-server-status: a customer's servers (user JWT), or the sweep (service role).
import { syncFromEnv } from "./handler.ts";

const { handler } = syncFromEnv(Deno.env.toObject());
Deno.serve(handler);
