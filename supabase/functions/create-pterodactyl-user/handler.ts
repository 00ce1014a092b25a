/**
 * `create-pterodactyl-user`: ensures the signed-in customer has a panel account linked
 * in external_accounts, by the same code provisioning uses. Idempotent; never a password.
 *
 * @module
 */
import { FUNCTIONS } from "../_shared/manifest.ts";
import type { PanelUserResponse } from "../_shared/contract.ts";
import { z } from "zod";
import {
  createUserVerifier,
  type UserVerifier,
} from "../_shared/platform/user_auth.ts";
import { clientKey, type Env } from "../_shared/platform/config.ts";
import { type Sql } from "../_shared/platform/db.ts";
import { DomainError, HttpError } from "../_shared/platform/errors.ts";
import {
  type Handler,
  json,
  readJson,
  withErrorHandling,
} from "../_shared/platform/http.ts";
import { type Logger } from "../_shared/platform/log.ts";
import {
  type PanelClient,
  PanelError,
  panelFromConfig,
} from "../_shared/panel/client.ts";
import { ensurePanelAccount } from "../_shared/panel/accounts.ts";
import {
  type WiredFunction,
  wireFunction,
  type WiringOptions,
} from "../_shared/platform/wiring.ts";

/** The function takes no parameters: an empty body or `{}`. */
const PanelUserRequest = z.strictObject({});

/** What the handler needs. */
export interface PanelUserDeps {
  sql: Sql;
  panel: PanelClient;
  verifyUser: UserVerifier;
  log: Logger;
}

/** Builds the handler. */
export function createPanelUserHandler(deps: PanelUserDeps): Handler {
  return withErrorHandling(async (req) => {
    const user = await deps.verifyUser(req);
    await readJson(req, PanelUserRequest, { optional: true });
    try {
      const account = await ensurePanelAccount(deps.sql, deps.panel, user.id);
      deps.log.info("Panel account ensured", {
        user_id: user.id,
        created: account.created,
      });
      return json(
        {
          ptero_user_id: account.pteroUserId,
          username: account.username,
          panel_url: deps.panel.url,
          created: account.created,
        } satisfies PanelUserResponse,
      );
    } catch (error) {
      if (error instanceof DomainError && error.code === "user_not_found") {
        // A validly signed token of a deleted user: the session is no longer valid.
        throw new HttpError(
          401,
          "user_not_found",
          "The signed-in user no longer exists; sign in again",
        );
      }
      if (!(error instanceof PanelError)) throw error;
      deps.log.error("Panel call failed", {
        user_id: user.id,
        error: error.message,
      });
      throw new DomainError(
        "upstream",
        "panel_unavailable",
        "The game panel could not be reached; try again",
      );
    }
  }, { log: deps.log });
}

/** The handler wired from the environment, as deployed and as the local gateway runs it. */
export function panelUserFromEnv(
  env: Env,
  options: WiringOptions = {},
): WiredFunction {
  return wireFunction(
    "create-pterodactyl-user",
    FUNCTIONS["create-pterodactyl-user"].env,
    env,
    options,
    ({ config, sql, log }) =>
      createPanelUserHandler({
        sql,
        panel: panelFromConfig(config),
        verifyUser: createUserVerifier(
          config.SUPABASE_URL,
          clientKey(config),
        ),
        log,
      }),
  );
}
