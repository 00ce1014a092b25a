/**
 * The customer portal: configurations, sessions (`POST /v1/billing_portal/sessions`)
 * whose `url` is the sandbox's portal page, and the page's own actions (what a
 * customer's cancel and resume clicks do under flexible billing: `cancel_at` at
 * the period end, `cancel_at_period_end` stays false).
 *
 * @module
 */
import { z } from "zod";
import type { ControlRequest, ControlRoutes } from "../sandbox-kit/mod.ts";
import { endSubscription, isEnded } from "./_billing.ts";
import {
  controlBody,
  invalidRequest,
  missingParam,
  noSuch,
  parseControl,
} from "./_errors.ts";
import type { FormObject } from "./_form.ts";
import { parseForm } from "./_form.ts";
import { escapeHtml } from "./_html.ts";
import type {
  CancellationFeedback,
  PortalConfiguration,
  PortalFeatures,
  PortalSession,
  StripeEvent,
  Subscription,
} from "./_objects.ts";
import { newId, now } from "./_objects.ts";
import {
  onlyKnown,
  optArray,
  optBoolean,
  optMetadata,
  optObject,
  optString,
} from "./_params.ts";
import type { State } from "./_state.ts";
import { NO_REQUEST, recordEvent } from "./_state.ts";
import {
  managedBySchedule,
  periodEndOf,
  setCancellation,
} from "./_subscription_update.ts";

const FLOW_TYPES = [
  "payment_method_update",
  "subscription_cancel",
  "subscription_update",
  "subscription_update_confirm",
];

/** The reasons a customer can give when canceling. */
const FEEDBACK: string[] = [
  "customer_service",
  "low_quality",
  "missing_features",
  "other",
  "switched_service",
  "too_complex",
  "too_expensive",
  "unused",
];

const Action = z.object({
  subscription: z.string().optional(),
  feedback: z.enum(
    FEEDBACK as [CancellationFeedback, ...CancellationFeedback[]],
  )
    .optional(),
  comment: z.string().max(5000).optional(),
}).strict();

/** `POST /v1/billing_portal/configurations` (features kept as given, Stripe's defaults beside). */
export function createConfiguration(
  state: State,
  params: FormObject,
): PortalConfiguration {
  onlyKnown(params, [
    "business_profile",
    "default_return_url",
    "features",
    "login_page",
    "metadata",
    "name",
    "expand",
  ]);
  const features = optObject(params, "features");
  if (features === undefined) throw missingParam("features");
  const configuration = newConfiguration(state, {
    isDefault: false,
    defaultReturnUrl: optString(params, "default_return_url") || null,
    name: optString(params, "name") ?? null,
    metadata: optMetadata(params, "metadata") ?? {},
  });
  applyFeatures(configuration.features, features);
  const profile = optObject(params, "business_profile") ?? {};
  for (const key of Object.keys(configuration.business_profile)) {
    const value = optString(profile, key, `business_profile[${key}]`);
    if (value !== undefined) {
      configuration.business_profile[
        key as keyof PortalConfiguration["business_profile"]
      ] = value || null;
    }
  }
  return configuration;
}

/** The features a configuration is created with, over Stripe's defaults. */
function applyFeatures(target: PortalFeatures, given: FormObject): void {
  const part = (name: string) =>
    optObject(given, name, `features[${name}]`) ?? {};
  const enabled = (from: FormObject, name: string) => {
    const value = optBoolean(from, "enabled", `features[${name}][enabled]`);
    if (value === undefined && Object.keys(from).length > 0) {
      throw missingParam(`features[${name}][enabled]`);
    }
    return value;
  };
  const invoices = enabled(part("invoice_history"), "invoice_history");
  if (invoices !== undefined) target.invoice_history.enabled = invoices;
  const methods = enabled(
    part("payment_method_update"),
    "payment_method_update",
  );
  if (methods !== undefined) target.payment_method_update.enabled = methods;
  const cancel = part("subscription_cancel");
  const canCancel = enabled(cancel, "subscription_cancel");
  if (canCancel !== undefined) {
    target.subscription_cancel.enabled = canCancel;
  }
  const reason = optObject(
    cancel,
    "cancellation_reason",
    "features[subscription_cancel][cancellation_reason]",
  );
  if (reason !== undefined) {
    const param = "features[subscription_cancel][cancellation_reason]";
    const on = optBoolean(reason, "enabled", `${param}[enabled]`);
    if (on === undefined) throw missingParam(`${param}[enabled]`);
    const options = reason.options === ""
      ? []
      : optArray(reason, "options", `${param}[options]`);
    if (options === undefined) throw missingParam(`${param}[options]`);
    const reasons = options.map((o, i) => {
      if (typeof o !== "string" || !FEEDBACK.includes(o)) {
        throw invalidRequest(`Invalid ${param}[options][${i}]`, {
          param: `${param}[options][${i}]`,
        });
      }
      return o;
    });
    target.subscription_cancel.cancellation_reason = {
      enabled: on,
      options: reasons,
    };
  }
  const mode = optString(cancel, "mode", "features[subscription_cancel][mode]");
  if (mode !== undefined) {
    if (mode !== "at_period_end" && mode !== "immediately") {
      throw invalidRequest(
        "Invalid features[subscription_cancel][mode]: must be one of at_period_end, immediately",
        { param: "features[subscription_cancel][mode]" },
      );
    }
    target.subscription_cancel.mode = mode;
  }
  const update = part("subscription_update");
  const canUpdate = enabled(update, "subscription_update");
  if (canUpdate !== undefined) {
    target.subscription_update.enabled = canUpdate;
  }
}

/** The configuration an id names, or Stripe's 404. */
export function getConfiguration(
  state: State,
  id: string,
): PortalConfiguration {
  const found = state.store.portalConfigurations.get(id);
  if (found === undefined) {
    throw noSuch("billing_portal.configuration", id);
  }
  return found;
}

function newConfiguration(
  state: State,
  options: {
    isDefault: boolean;
    defaultReturnUrl: string | null;
    name: string | null;
    metadata: Record<string, string>;
  },
): PortalConfiguration {
  const at = now();
  const configuration: PortalConfiguration = {
    id: newId("bpc"),
    object: "billing_portal.configuration",
    active: true,
    application: null,
    business_profile: {
      headline: null,
      privacy_policy_url: null,
      terms_of_service_url: null,
    },
    created: at,
    default_return_url: options.defaultReturnUrl,
    features: {
      customer_update: { allowed_updates: [], enabled: false },
      invoice_history: { enabled: true },
      payment_method_update: {
        enabled: true,
        payment_method_configuration: null,
      },
      subscription_cancel: {
        cancellation_reason: { enabled: false, options: [] },
        enabled: true,
        mode: "at_period_end",
        proration_behavior: "none",
      },
      subscription_update: {
        billing_cycle_anchor: null,
        default_allowed_updates: [],
        enabled: false,
        products: [],
        proration_behavior: "none",
        schedule_at_period_end: { conditions: [] },
        trial_update_behavior: "end_trial",
      },
    },
    is_default: options.isDefault,
    livemode: false,
    login_page: { enabled: false, url: null },
    metadata: options.metadata,
    name: options.name,
    updated: at,
  };
  state.store.portalConfigurations.set(configuration.id, configuration);
  return configuration;
}

/** The account's default configuration (made on first use, as the Dashboard does). */
function defaultConfiguration(state: State): PortalConfiguration {
  return [...state.store.portalConfigurations.values()].find((c) =>
    c.is_default
  ) ?? newConfiguration(state, {
    isDefault: true,
    defaultReturnUrl: null,
    name: null,
    metadata: {},
  });
}

/** `POST /v1/billing_portal/sessions`. */
export function createPortalSession(
  state: State,
  params: FormObject,
): PortalSession {
  onlyKnown(params, [
    "customer",
    "customer_account",
    "configuration",
    "flow_data",
    "locale",
    "on_behalf_of",
    "return_url",
    "expand",
  ]);
  const customerId = optString(params, "customer");
  if (customerId === undefined) throw missingParam("customer");
  if (!state.store.customers.has(customerId)) {
    throw noSuch("customer", customerId, "customer", 400);
  }
  const configId = optString(params, "configuration");
  const configuration = configId === undefined
    ? defaultConfiguration(state)
    : state.store.portalConfigurations.get(configId);
  if (configuration === undefined) {
    throw noSuch(
      "billing_portal.configuration",
      configId ?? "",
      "configuration",
      400,
    );
  }
  const returnUrl = optString(params, "return_url") ??
    configuration.default_return_url;
  const flow = flowOf(state, customerId, params);
  const id = newId("bps");
  const session: PortalSession = {
    id,
    object: "billing_portal.session",
    configuration: configuration.id,
    created: now(),
    customer: customerId,
    customer_account: null,
    flow,
    livemode: false,
    locale: optString(params, "locale") ?? null,
    on_behalf_of: optString(params, "on_behalf_of") ?? null,
    return_url: returnUrl,
    url: `${state.baseUrl}/_sandbox/portal/${id}`,
  };
  state.store.portalSessions.set(id, session);
  return session;
}

function flowOf(
  state: State,
  customerId: string,
  params: FormObject,
): Record<string, unknown> | null {
  const data = optObject(params, "flow_data");
  if (data === undefined) return null;
  const type = optString(data, "type", "flow_data[type]");
  if (type === undefined) throw missingParam("flow_data[type]");
  if (!FLOW_TYPES.includes(type)) {
    throw invalidRequest(
      `Invalid flow_data[type]: must be one of ${FLOW_TYPES.join(", ")}`,
      { param: "flow_data[type]" },
    );
  }
  const after = optObject(
    data,
    "after_completion",
    "flow_data[after_completion]",
  );
  const afterType = after === undefined
    ? "portal_homepage"
    : optString(after, "type", "flow_data[after_completion][type]");
  const redirect = after === undefined
    ? undefined
    : optObject(after, "redirect", "flow_data[after_completion][redirect]");
  const subscriptionOf = (key: string) => {
    const part = optObject(data, key, `flow_data[${key}]`);
    const subId = part === undefined
      ? undefined
      : optString(part, "subscription", `flow_data[${key}][subscription]`);
    if (subId === undefined) {
      throw missingParam(`flow_data[${key}][subscription]`);
    }
    const sub = state.store.subscriptions.get(subId);
    if (sub === undefined || sub.customer !== customerId) {
      throw noSuch(
        "subscription",
        subId,
        `flow_data[${key}][subscription]`,
        400,
      );
    }
    return subId;
  };
  return {
    after_completion: {
      hosted_confirmation: afterType === "hosted_confirmation"
        ? { custom_message: null }
        : null,
      redirect: afterType === "redirect"
        ? {
          return_url: optString(
            redirect ?? {},
            "return_url",
            "flow_data[after_completion][redirect][return_url]",
          ) ?? "",
        }
        : null,
      type: afterType,
    },
    subscription_cancel: type === "subscription_cancel"
      ? { retention: null, subscription: subscriptionOf("subscription_cancel") }
      : null,
    subscription_update: type === "subscription_update"
      ? { subscription: subscriptionOf("subscription_update") }
      : null,
    subscription_update_confirm: null,
    type,
  };
}

function getPortalSession(state: State, id: string): PortalSession {
  const session = state.store.portalSessions.get(id);
  if (session === undefined) throw noSuch("billing_portal.session", id);
  return session;
}

/** The customer's subscriptions the portal shows (not ended). */
function portalSubscriptions(state: State, customer: string): Subscription[] {
  return [...state.store.subscriptions.values()].filter((s) =>
    s.customer === customer && !isEnded(s)
  );
}

/** The portal page's routes: the page, and what its cancel and resume buttons do. */
export function portalRoutes(state: State): ControlRoutes {
  const act = (cancel: boolean) => async (c: ControlRequest) => {
    const session = getPortalSession(state, c.params.id);
    const fromPage = (c.request.headers.get("content-type") ?? "").includes(
      "application/x-www-form-urlencoded",
    );
    const input = parseControl(
      Action,
      fromPage
        ? parseForm(await c.request.text())
        : await controlBody(c.request),
    );
    const sub = chosenSubscription(state, session, input.subscription);
    if (sub.schedule !== null) throw managedBySchedule(sub.schedule);
    const features = getConfiguration(state, session.configuration).features;
    if (!features.subscription_cancel.enabled) {
      throw invalidRequest(
        `The portal configuration '${session.configuration}' does not let customers cancel`,
      );
    }
    if (cancel && features.subscription_cancel.mode === "immediately") {
      const words = {
        feedback: input.feedback ?? null,
        comment: input.comment ?? null,
      };
      sub.cancellation_details = { ...words, reason: "cancellation_requested" };
      const ended = endSubscription(
        state,
        sub,
        "cancellation_requested",
        NO_REQUEST,
      );
      await state.webhooks.deliver([ended], "normal");
      return answer(session, sub, [ended], fromPage);
    }
    const previous: Record<string, unknown> = {};
    setCancellation(
      sub,
      { atPeriodEnd: false, at: cancel ? periodEndOf(sub) : null },
      previous,
      cancel
        ? { feedback: input.feedback ?? null, comment: input.comment ?? null }
        : undefined,
    );
    const events = Object.keys(previous).length === 0 ? [] : [
      recordEvent(
        state,
        "customer.subscription.updated",
        sub,
        NO_REQUEST,
        previous,
      ),
    ];
    await state.webhooks.deliver(events, "normal");
    return answer(session, sub, events, fromPage);
  };
  return {
    "GET /_sandbox/portal/:id": (c) =>
      new Response(portalPage(state, getPortalSession(state, c.params.id)), {
        headers: { "content-type": "text/html; charset=utf-8" },
      }),
    "POST /_sandbox/billing_portal/sessions/:id/cancel": act(true),
    "POST /_sandbox/billing_portal/sessions/:id/resume": act(false),
  };
}

/** A portal action's answer: back to the page for a form, else JSON. */
function answer(
  session: PortalSession,
  sub: Subscription,
  events: StripeEvent[],
  fromPage: boolean,
): Response {
  if (fromPage) {
    return new Response(null, {
      status: 303,
      headers: { location: `/_sandbox/portal/${session.id}` },
    });
  }
  return new Response(
    JSON.stringify({ subscription: sub, event_ids: events.map((e) => e.id) }),
    { headers: { "content-type": "application/json" } },
  );
}

function chosenSubscription(
  state: State,
  session: PortalSession,
  id: string | undefined,
): Subscription {
  const subs = portalSubscriptions(state, session.customer);
  if (id !== undefined) {
    const sub = subs.find((s) => s.id === id);
    if (sub === undefined) {
      throw noSuch("subscription", id, "subscription", 400);
    }
    return sub;
  }
  if (subs.length !== 1) {
    throw invalidRequest(
      `Customer '${session.customer}' has ${subs.length} subscriptions in the portal: pass subscription`,
      { param: "subscription" },
    );
  }
  return subs[0];
}

function portalPage(state: State, session: PortalSession): string {
  const cancelable =
    getConfiguration(state, session.configuration).features.subscription_cancel
      .enabled;
  const day = (at: number) => new Date(at * 1000).toISOString().slice(0, 10);
  const rows = portalSubscriptions(state, session.customer).map((sub) => {
    const items = sub.items.data.map((item) => {
      const name = state.store.products.get(item.price.product)?.name ??
        item.price.id;
      return `${escapeHtml(name)}: ${
        (item.price.unit_amount / 100).toFixed(2)
      } ${item.price.currency.toUpperCase()} / ${
        item.price.recurring?.interval ?? "period"
      }`;
    }).join(", ");
    const coming = sub.cancel_at !== null || sub.cancel_at_period_end;
    const action = coming ? "resume" : "cancel";
    const button = cancelable
      ? `<form method="post" action="/_sandbox/billing_portal/sessions/${
        encodeURIComponent(session.id)
      }/${action}"><input type="hidden" name="subscription" value="${
        escapeHtml(sub.id)
      }"><button>${
        coming ? "Don't cancel (resume)" : "Cancel plan"
      }</button></form>`
      : "";
    return `<li><p>${items}</p><p>Status <b>${sub.status}</b>, ${
      coming
        ? `cancels on ${day(sub.cancel_at ?? periodEndOf(sub))}`
        : `renews on ${day(periodEndOf(sub))}`
    }</p>${button}</li>`;
  }).join("");
  const back = session.return_url === null
    ? ""
    : `<p><a href="${escapeHtml(session.return_url)}">Return</a></p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stripe sandbox customer portal</title>
<style>body{font-family:system-ui;max-width:40rem;margin:3rem auto}</style>
</head><body>
<h1>Stripe sandbox customer portal</h1>
<p>Customer <code>${escapeHtml(session.customer)}</code></p>
<ul>${rows || "<li>No subscriptions</li>"}</ul>
${back}
</body></html>`;
}
