// servers-provision: take one paid (or failed) order to a server on the panel.
import { provisionFromEnv } from "./handler.ts";

const { handler } = provisionFromEnv(Deno.env.toObject());
Deno.serve(handler);
