// change-server-plan: a customer upgrades (now) or downgrades (at period end) a server.
import { changePlanFromEnv } from "./handler.ts";

const { handler } = changePlanFromEnv(Deno.env.toObject());
Deno.serve(handler);
