/**
 * Every call the storefront makes to the backend, one function each, with the types
 * of `supabase/functions/_shared/contract.ts`. Each reply is checked against the
 * contract's schema; an error reply becomes a {@linkcode ShopError} carrying the
 * function's stable code and the customer's sentence for it.
 *
 * - sign in: {@linkcode signInLocal} (local stack only) or {@linkcode sendSignInEmail}
 *   and {@linkcode verifySignInCode} (Supabase Auth, hosted)
 * - the catalogue: {@linkcode loadCatalogue} (Data API: `regions`, `plans`,
 *   `plan_prices`, `plan_region_availability`)
 * - buy: {@linkcode createCheckout} (`create-checkout-session`)
 * - "My servers": {@linkcode myServers} (`sync-server-status`), {@linkcode
 *   ensurePanelAccount} (`create-pterodactyl-user`)
 * - change plan: {@linkcode previewPlanChange}, {@linkcode confirmPlanChange}
 *   (`change-server-plan`)
 * - manage billing: {@linkcode openBillingPortal} (`create-billing-portal-session`)
 *
 * @module
 */
import {
  createClient,
  FunctionsHttpError,
  type SupabaseClient,
} from "@supabase/supabase-js";
import type { z } from "zod";
import {
  AVAILABILITY_COLUMNS,
  AvailabilityRow,
  BillingPortalResponse,
  ChangePlanPreviewResponse,
  ChangePlanResponse,
  type CheckoutRequest,
  CheckoutResponse,
  ErrorBody,
  PanelUserResponse,
  PLAN_COLUMNS,
  PLAN_PRICE_COLUMNS,
  PlanPriceRow,
  PlanRow,
  REGION_COLUMNS,
  RegionRow,
  SyncResponse,
} from "../supabase/functions/_shared/contract.ts";
import { errorWords } from "./words.ts";

/** What `/config.json` tells the page: the project, and how to sign in. */
export interface StoreConfig {
  supabase_url: string;
  publishable_key: string;
  /** The local stack issues its own tokens (`/local/sign-in`); hosted uses Supabase Auth. */
  local_sign_in: boolean;
}

/** A failed call, in customer words (`message`) with the function's code. */
export class ShopError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ShopError";
  }
}

function failure(code: string, status: number): ShopError {
  return new ShopError(code, status, errorWords(code, status));
}

const LOCAL_TOKEN = "storefront.local-token";

/** The storefront's connection to the project. */
export interface Shop {
  config: StoreConfig;
  supabase: SupabaseClient;
  /** The signed-in customer's email, or null. */
  email(): Promise<string | null>;
  signOut(): Promise<void>;
}

/** Connects to the project in `config`. */
export function connect(config: StoreConfig): Shop {
  if (config.local_sign_in) {
    // The local stack's own tokens, kept for this tab; supabase-js sends them as the
    // user's access token on every call.
    const supabase = createClient(
      config.supabase_url,
      config.publishable_key,
      {
        accessToken: () => Promise.resolve(sessionStorage.getItem(LOCAL_TOKEN)),
      },
    );
    return {
      config,
      supabase,
      email: () => Promise.resolve(localEmail()),
      signOut: () => Promise.resolve(sessionStorage.removeItem(LOCAL_TOKEN)),
    };
  }
  const supabase = createClient(config.supabase_url, config.publishable_key);
  return {
    config,
    supabase,
    async email() {
      const { data } = await supabase.auth.getSession();
      return data.session?.user.email ?? null;
    },
    async signOut() {
      await supabase.auth.signOut();
    },
  };
}

function localEmail(): string | null {
  const token = sessionStorage.getItem(LOCAL_TOKEN);
  if (!token) return null;
  try {
    const payload = JSON.parse(
      atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")),
    );
    if (typeof payload.exp === "number" && payload.exp * 1000 < Date.now()) {
      sessionStorage.removeItem(LOCAL_TOKEN);
      return null;
    }
    return typeof payload.email === "string" ? payload.email : null;
  } catch {
    return null;
  }
}

/** Local stack only: the stack issues a token for `email` (no password, no mail). */
export async function signInLocal(shop: Shop, email: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch("/local/sign-in", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email }),
    });
  } catch {
    throw failure("network", 0);
  }
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) throw fromErrorBody(body, res.status);
  const token = (body as { access_token?: unknown } | null)?.access_token;
  if (typeof token !== "string") throw failure("unexpected_reply", res.status);
  sessionStorage.setItem(LOCAL_TOKEN, token);
  void shop;
}

/** Hosted: Supabase Auth mails a sign-in link and a code to `email`. */
export async function sendSignInEmail(
  shop: Shop,
  email: string,
): Promise<void> {
  const { error } = await shop.supabase.auth.signInWithOtp({
    email,
    options: { emailRedirectTo: location.origin },
  });
  if (error) throw failure("unauthorized", error.status ?? 400);
}

/** Hosted: signs in with the code from the sign-in email. */
export async function verifySignInCode(
  shop: Shop,
  email: string,
  code: string,
): Promise<void> {
  const { error } = await shop.supabase.auth.verifyOtp({
    email,
    token: code,
    type: "email",
  });
  if (error) throw failure("unauthorized", error.status ?? 400);
}

/** The catalogue: what is on sale, at which prices, and where it can go now. */
export interface Catalogue {
  regions: RegionRow[];
  plans: PlanRow[];
  prices: PlanPriceRow[];
  availability: AvailabilityRow[];
}

async function rows<T extends z.ZodType>(
  shop: Shop,
  table: string,
  columns: string,
  schema: T,
  order: string,
): Promise<z.infer<T>[]> {
  const { data, error, status } = await shop.supabase.from(table).select(
    columns,
  ).order(order);
  if (error) {
    throw failure(
      status === 0
        ? "network"
        : status >= 500
        ? "internal_error"
        : "unexpected_reply",
      status,
    );
  }
  const parsed = schema.array().safeParse(data);
  if (!parsed.success) throw failure("unexpected_reply", status);
  return parsed.data as z.infer<T>[];
}

/** Reads the catalogue through the Data API (anyone may; RLS keeps it to what is on sale). */
export async function loadCatalogue(shop: Shop): Promise<Catalogue> {
  const [regions, plans, prices, availability] = await Promise.all([
    rows(shop, "regions", REGION_COLUMNS, RegionRow, "id"),
    rows(shop, "plans", PLAN_COLUMNS, PlanRow, "memory_mb"),
    rows(shop, "plan_prices", PLAN_PRICE_COLUMNS, PlanPriceRow, "plan_id"),
    rows(
      shop,
      "plan_region_availability",
      AVAILABILITY_COLUMNS,
      AvailabilityRow,
      "region",
    ),
  ]);
  return { regions, plans, prices, availability };
}

function fromErrorBody(body: unknown, status: number): ShopError {
  const parsed = ErrorBody.safeParse(body);
  return parsed.success
    ? failure(parsed.data.error.code, status)
    : failure(status === 404 ? "not_deployed" : "unexpected_reply", status);
}

/** Calls a function with the customer's token and checks its reply against `schema`. */
async function call<T extends z.ZodType>(
  shop: Shop,
  name: string,
  body: Record<string, unknown>,
  schema: T,
): Promise<z.infer<T>> {
  const { data, error } = await shop.supabase.functions.invoke(name, { body });
  if (error) {
    if (error instanceof FunctionsHttpError) {
      const res = error.context as Response;
      throw fromErrorBody(await res.json().catch(() => null), res.status);
    }
    throw failure("network", 0);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw failure("unexpected_reply", 200);
  return parsed.data;
}

/** `create-checkout-session`: opens Stripe Checkout for a new server. */
export function createCheckout(
  shop: Shop,
  request: CheckoutRequest,
): Promise<CheckoutResponse> {
  return call(shop, "create-checkout-session", request, CheckoutResponse);
}

/** `sync-server-status`: the customer's orders, the installing ones refreshed. */
export function myServers(shop: Shop): Promise<SyncResponse> {
  return call(shop, "sync-server-status", {}, SyncResponse);
}

/** `create-pterodactyl-user`: the customer's panel account (made on first call). */
export function ensurePanelAccount(shop: Shop): Promise<PanelUserResponse> {
  return call(shop, "create-pterodactyl-user", {}, PanelUserResponse);
}

/** `change-server-plan` with `preview: true`: the amount and the effect, nothing changed. */
export function previewPlanChange(
  shop: Shop,
  orderId: string,
  planId: string,
): Promise<ChangePlanPreviewResponse> {
  return call(shop, "change-server-plan", {
    order_id: orderId,
    plan_id: planId,
    preview: true,
  }, ChangePlanPreviewResponse);
}

/** `change-server-plan`: makes the change the preview showed. */
export function confirmPlanChange(
  shop: Shop,
  orderId: string,
  planId: string,
): Promise<ChangePlanResponse> {
  return call(shop, "change-server-plan", {
    order_id: orderId,
    plan_id: planId,
  }, ChangePlanResponse);
}

/** `change-server-plan` with `cancel: true`: cancels a scheduled downgrade. */
export function cancelPlanChange(
  shop: Shop,
  orderId: string,
): Promise<ChangePlanResponse> {
  return call(shop, "change-server-plan", {
    order_id: orderId,
    cancel: true,
  }, ChangePlanResponse);
}

/** `create-billing-portal-session`: Stripe's customer portal for an order's subscription. */
export function openBillingPortal(
  shop: Shop,
  orderId: string,
): Promise<BillingPortalResponse> {
  return call(shop, "create-billing-portal-session", {
    order_id: orderId,
    return_url: location.href,
  }, BillingPortalResponse);
}
