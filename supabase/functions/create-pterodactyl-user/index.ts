// create-pterodactyl-user: ensure the signed-in customer's panel account.
import { panelUserFromEnv } from "./handler.ts";

const { handler } = panelUserFromEnv(Deno.env.toObject());
Deno.serve(handler);
