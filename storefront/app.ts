/**
 * The reference storefront: sign in, the catalogue with availability, buying through
 * Stripe Checkout, and "My servers" (status, plan changes, billing, the panel). Every
 * backend call is in `api.ts`; customer words are in `words.ts`.
 *
 * @module
 */
import type {
  OrderView,
  PlanChangePreview,
  PlanRow,
  Term,
} from "../supabase/functions/_shared/contract.ts";
import {
  cancelPlanChange,
  type Catalogue,
  confirmPlanChange,
  connect,
  createCheckout,
  ensurePanelAccount,
  loadCatalogue,
  myServers,
  openBillingPortal,
  previewPlanChange,
  sendSignInEmail,
  type Shop,
  ShopError,
  signInLocal,
  type StoreConfig,
  verifySignInCode,
} from "./api.ts";
import {
  changeInProgress,
  changeOpen,
  changeShown,
  day,
  errorWords,
  IN_PROGRESS,
  money,
  size,
  statusWords,
  TERM_WORDS,
} from "./words.ts";

/** How often "My servers" refreshes while something is in progress. */
const POLL_MS = 2000;

type Child = Node | string | null | false | undefined;

/** Makes an element; text children are text nodes, never HTML. */
function h(
  tag: string,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === false || child === undefined) continue;
    el.append(child);
  }
  return el;
}

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`The page has no element with id "${id}"`);
  return el;
}

/** The customer's sentence for anything thrown by a call. */
function wordsFor(error: unknown): string {
  return error instanceof ShopError
    ? error.message
    : errorWords("internal_error", 500);
}

/** What the page knows. */
interface State {
  shop: Shop;
  email: string | null;
  catalogue: Catalogue | null;
  orders: OrderView[];
  panel: { url: string; created: boolean } | null;
  /** A plan change being previewed, per order. */
  previews: Map<string, PlanChangePreview>;
  /** The plan picked in each order's "change plan" list. */
  picked: Map<string, string>;
  poll: ReturnType<typeof setTimeout> | null;
}

function planOf(state: State, id: string): PlanRow | undefined {
  return state.catalogue?.plans.find((plan) => plan.id === id);
}

function regionName(state: State, id: string): string {
  return state.catalogue?.regions.find((r) => r.id === id)?.display_name ?? id;
}

// ---------------------------------------------------------------------------------
// Sign in

function renderAccount(state: State): void {
  const account = byId("account");
  const signIn = byId("sign-in");
  account.replaceChildren();
  signIn.replaceChildren();
  if (state.email) {
    const out = h("button", { type: "button" }, "Sign out");
    out.addEventListener("click", async () => {
      await state.shop.signOut();
      location.assign("/");
    });
    account.append(h("span", {}, `Signed in as ${state.email} `), out);
    signIn.hidden = true;
    return;
  }
  signIn.hidden = false;
  const local = state.shop.config.local_sign_in;
  const form = fieldForm({
    label: "Email",
    input: { id: "email", name: "email", type: "email", autocomplete: "email" },
    button: local ? "Sign in" : "Email me a sign-in link",
    describedBy: "sign-in-note",
    async submit(email) {
      if (local) {
        await signInLocal(state.shop, email);
        location.reload();
        return;
      }
      await sendSignInEmail(state.shop, email);
      renderCodeForm(state, email);
    },
  });
  signIn.append(
    h("h2", { id: "sign-in-title" }, "Sign in"),
    h(
      "p",
      { id: "sign-in-note", class: local ? "local-note" : undefined },
      local
        ? "Local stack only: signing in issues the stack's own token for this email, with no password and no email. A hosted shop signs in with Supabase Auth."
        : "We email you a sign-in link and a code.",
    ),
    form,
  );
}

/** A form of one labelled field; a failed submit shows its customer words in the form. */
function fieldForm(options: {
  label: string;
  input: Record<string, string> & { id: string };
  button: string;
  describedBy?: string;
  submit(value: string): Promise<void>;
}): HTMLElement {
  const input = h("input", {
    ...options.input,
    required: true,
  }) as HTMLInputElement;
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h(
    "form",
    { "aria-describedby": options.describedBy },
    h("label", { for: options.input.id }, options.label),
    input,
    h("button", { type: "submit" }, options.button),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await options.submit(input.value.trim());
    } catch (e) {
      error.textContent = wordsFor(e);
    }
  });
  return form;
}

function renderCodeForm(state: State, email: string): void {
  const form = fieldForm({
    label: "Code from the email",
    input: {
      id: "code",
      name: "code",
      inputmode: "numeric",
      autocomplete: "one-time-code",
    },
    button: "Sign in",
    async submit(code) {
      await verifySignInCode(state.shop, email, code);
      location.reload();
    },
  });
  byId("sign-in").replaceChildren(
    h("h2", { id: "sign-in-title" }, "Check your email"),
    h(
      "p",
      {},
      `We sent a sign-in link and a code to ${email}. Open the link, or type the code here.`,
    ),
    form,
  );
  document.getElementById("code")?.focus();
}

// ---------------------------------------------------------------------------------
// The catalogue

function renderCatalogue(state: State): void {
  const root = byId("plans");
  const catalogue = state.catalogue;
  if (!catalogue) return;
  root.replaceChildren();
  const games = [...new Set(catalogue.plans.map((plan) => plan.game))];
  for (const game of games) {
    const plans = catalogue.plans.filter((plan) => plan.game === game);
    root.append(
      h("h3", {}, gameName(game)),
      h("div", { class: "cards" }, ...plans.map((p) => planCard(state, p))),
    );
  }
}

/** `minecraft-java` → `Minecraft Java`. */
function gameName(game: string): string {
  return game.split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(" ");
}

function planCard(state: State, plan: PlanRow): HTMLElement {
  const catalogue = state.catalogue!;
  const prices = catalogue.prices.filter((p) => p.plan_id === plan.id);
  const where = catalogue.regions.map((region) => ({
    region,
    available: catalogue.availability.some((a) =>
      a.plan_id === plan.id && a.region === region.id && a.available
    ),
  }));
  const id = (what: string) => `${what}-${plan.id}`;
  const term = h(
    "select",
    { id: id("term"), name: "term" },
    ...prices.map((price) =>
      h(
        "option",
        { value: price.term },
        `${money(price.amount_cents, price.currency)} ${
          TERM_WORDS[price.term]
        }`,
      )
    ),
  ) as HTMLSelectElement;
  const region = h(
    "select",
    { id: id("region"), name: "region" },
    ...where.map(({ region, available }) =>
      h(
        "option",
        { value: region.id, disabled: !available },
        available ? region.display_name : `${region.display_name} (sold out)`,
      )
    ),
  ) as HTMLSelectElement;
  const firstOpen = where.find((w) => w.available);
  if (firstOpen) region.value = firstOpen.region.id;
  const name = h("input", {
    id: id("name"),
    name: "server_name",
    required: true,
    minlength: "3",
    maxlength: "40",
    autocomplete: "off",
  }) as HTMLInputElement;
  const error = h("p", { class: "form-error", role: "alert" });
  const buy = h(
    "button",
    { type: "submit", disabled: !firstOpen },
    firstOpen ? "Buy" : "Sold out",
  );
  const form = h(
    "form",
    { class: "buy" },
    h("label", { for: id("term") }, "Billing"),
    term,
    h("label", { for: id("region") }, "Region"),
    region,
    h("label", { for: id("name") }, "Server name"),
    name,
    buy,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!state.email) {
      error.textContent = "Please sign in first.";
      (document.getElementById("email") as HTMLInputElement | null)?.focus();
      return;
    }
    buy.setAttribute("disabled", "");
    try {
      const checkout = await createCheckout(state.shop, {
        plan_id: plan.id,
        term: term.value as Term,
        region: region.value,
        server_name: name.value.trim(),
      });
      location.assign(checkout.url);
    } catch (e) {
      error.textContent = wordsFor(e);
      buy.removeAttribute("disabled");
    }
  });
  return h(
    "article",
    { class: "plan", "data-plan": plan.id, "aria-labelledby": id("title") },
    h("h4", { id: id("title") }, plan.display_name),
    h(
      "p",
      {},
      `${size(plan.memory_mb)} memory · ${
        size(plan.disk_mb)
      } disk · ${plan.cpu_percent}% CPU`,
    ),
    h(
      "ul",
      { class: "regions", "aria-label": "Availability" },
      ...where.map(({ region, available }) =>
        h(
          "li",
          { class: available ? "available" : "sold-out" },
          `${region.display_name}: ${available ? "available" : "sold out"}`,
        )
      ),
    ),
    form,
  );
}

// ---------------------------------------------------------------------------------
// My servers

function renderServers(state: State): void {
  const section = byId("servers");
  const list = byId("server-list");
  if (!state.email) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const orders = state.orders.filter((o) => o.status !== "expired");
  const note = byId("panel-note");
  note.replaceChildren();
  if (state.panel && orders.some((o) => o.server.identifier)) {
    note.append(
      "Your game panel account uses your email, ",
      h("strong", {}, state.email),
      ". The first time, the panel emails you a link to set your password: look in your inbox (and spam folder) for the email from the game panel, set a password, then sign in at ",
      h("a", { href: state.panel.url }, state.panel.url),
      ".",
    );
  }
  if (orders.length === 0) {
    list.replaceChildren(
      h("p", {}, "No servers yet. Pick a plan below to buy one."),
    );
    return;
  }
  list.replaceChildren(...orders.map((order) => serverCard(state, order)));
}

function serverCard(state: State, order: OrderView): HTMLElement {
  const plan = planOf(state, order.plan_id);
  const id = (what: string) => `${what}-${order.order_id}`;
  const error = h("p", { class: "form-error", role: "alert", id: id("error") });
  const facts: [string, string][] = [
    ["Plan", plan?.display_name ?? order.plan_id],
    ["Region", regionName(state, order.region)],
    [
      "Size",
      `${size(order.limits.memory_mb)} memory · ${
        size(order.limits.disk_mb)
      } disk`,
    ],
  ];
  if (order.server.live_state) facts.push(["Live", order.server.live_state]);
  if (order.paid_until) facts.push(["Paid until", day(order.paid_until)]);
  const change = order.plan_change;
  const card = h(
    "article",
    {
      class: "server",
      "data-order": order.order_id,
      "data-status": order.status,
      "aria-labelledby": id("title"),
    },
    h("h3", { id: id("title") }, order.server_name),
    h(
      "p",
      { class: "status" },
      h(
        "span",
        { class: `badge status-${order.status}` },
        statusWords(order.status),
      ),
      " ",
      order.message,
    ),
    h(
      "dl",
      {},
      ...facts.flatMap((
        [term, value],
      ) => [h("dt", {}, term), h("dd", {}, value)]),
    ),
    order.cancel_at &&
      h(
        "p",
        { class: "cancel-notice" },
        `Cancels on ${
          day(order.cancel_at)
        }: the server runs until then. To keep it, undo the cancellation in Manage billing.`,
      ),
    change && changeShown(change) &&
      h(
        "p",
        { class: "plan-change" },
        `Plan change to ${
          planOf(state, change.to_plan_id)?.display_name ?? change.to_plan_id
        }: ${change.message}`,
      ),
    actions(state, order, error),
    error,
  );
  return card;
}

function actions(
  state: State,
  order: OrderView,
  error: HTMLElement,
): HTMLElement {
  const box = h("div", { class: "actions" });
  if (order.server.identifier && state.panel) {
    box.append(
      h(
        "a",
        {
          class: "button",
          href: `${state.panel.url}/server/${order.server.identifier}`,
          target: "_blank",
          rel: "noopener",
        },
        "Open the game panel",
      ),
    );
  }
  if (!["pending", "expired"].includes(order.status)) {
    const billing = h("button", { type: "button" }, "Manage billing");
    billing.addEventListener("click", async () => {
      error.textContent = "";
      try {
        const portal = await openBillingPortal(state.shop, order.order_id);
        location.assign(portal.url);
      } catch (e) {
        error.textContent = wordsFor(e);
      }
    });
    box.append(billing);
  }
  const change = order.plan_change;
  if (change?.status === "scheduled") {
    const undo = h(
      "button",
      { type: "button", class: "secondary" },
      "Cancel the plan change",
    );
    undo.addEventListener("click", async () => {
      error.textContent = "";
      try {
        await cancelPlanChange(state.shop, order.order_id);
        await refreshServers(state);
      } catch (e) {
        error.textContent = wordsFor(e);
      }
    });
    box.append(undo);
  }
  if (order.status === "active" && !changeOpen(change)) {
    box.append(changePlanForm(state, order, error));
  }
  return box;
}

function changePlanForm(
  state: State,
  order: OrderView,
  error: HTMLElement,
): HTMLElement {
  const current = planOf(state, order.plan_id);
  const choices =
    state.catalogue?.plans.filter((p) =>
      p.game === current?.game && p.id !== order.plan_id
    ) ?? [];
  const id = `plan-${order.order_id}`;
  const wrap = h("div", { class: "change-plan" });
  if (choices.length === 0) return wrap;
  const select = h(
    "select",
    { id, name: "plan_id" },
    ...choices.map((p) =>
      h(
        "option",
        { value: p.id },
        `${p.display_name} (${size(p.memory_mb)})`,
      )
    ),
  ) as HTMLSelectElement;
  select.value = state.picked.get(order.order_id) ?? choices[0].id;
  select.addEventListener("change", () => {
    state.picked.set(order.order_id, select.value);
    state.previews.delete(order.order_id);
    renderServers(state);
  });
  const previewButton = h("button", { type: "submit" }, "Preview change");
  const form = h(
    "form",
    {},
    h("label", { for: id }, "Change plan to"),
    select,
    previewButton,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const { preview } = await previewPlanChange(
        state.shop,
        order.order_id,
        select.value,
      );
      state.picked.set(order.order_id, select.value);
      state.previews.set(order.order_id, preview);
      renderServers(state);
      document.getElementById(`confirm-${order.order_id}`)?.focus();
    } catch (e) {
      error.textContent = wordsFor(e);
    }
  });
  wrap.append(form);
  const preview = state.previews.get(order.order_id);
  if (preview && preview.to_plan_id === select.value) {
    wrap.append(previewBox(state, order, preview, error));
  }
  return wrap;
}

function previewBox(
  state: State,
  order: OrderView,
  preview: PlanChangePreview,
  error: HTMLElement,
): HTMLElement {
  const to = planOf(state, preview.to_plan_id)?.display_name ??
    preview.to_plan_id;
  const when = preview.effective === "now"
    ? "It takes effect as soon as the payment goes through."
    : `It takes effect on ${
      preview.effective_at ? day(preview.effective_at) : "the next renewal"
    }.`;
  const confirm = h(
    "button",
    { type: "button", id: `confirm-${order.order_id}` },
    preview.kind === "upgrade"
      ? `Pay ${money(preview.amount_due_cents, preview.currency)} and upgrade`
      : "Confirm downgrade",
  );
  const back = h(
    "button",
    { type: "button", class: "secondary" },
    "Keep my plan",
  );
  confirm.addEventListener("click", async () => {
    error.textContent = "";
    confirm.setAttribute("disabled", "");
    try {
      await confirmPlanChange(state.shop, order.order_id, preview.to_plan_id);
      state.previews.delete(order.order_id);
      await refreshServers(state);
    } catch (e) {
      error.textContent = wordsFor(e);
      confirm.removeAttribute("disabled");
    }
  });
  back.addEventListener("click", () => {
    state.previews.delete(order.order_id);
    renderServers(state);
  });
  return h(
    "div",
    { class: "preview", role: "region", "aria-label": "Plan change preview" },
    h(
      "p",
      {},
      `${preview.kind === "upgrade" ? "Upgrade" : "Downgrade"} to ${to}: ${
        size(preview.limits.memory_mb)
      } memory, ${size(preview.limits.disk_mb)} disk.`,
    ),
    h(
      "p",
      { class: "amount" },
      `Due now: ${money(preview.amount_due_cents, preview.currency)}. ${when}`,
    ),
    preview.restart_needed &&
      h("p", {}, "Restart your server afterwards to use the new memory."),
    confirm,
    back,
  );
}

async function refreshServers(state: State): Promise<void> {
  if (state.poll !== null) clearTimeout(state.poll);
  state.poll = null;
  const alert = byId("servers-error");
  try {
    state.orders = (await myServers(state.shop)).orders;
    alert.textContent = "";
  } catch (e) {
    alert.textContent = wordsFor(e);
  }
  renderServers(state);
  const moving = state.orders.some((o) =>
    IN_PROGRESS.includes(o.status) || changeInProgress(o.plan_change)
  );
  if (moving) {
    state.poll = setTimeout(() => void refreshServers(state), POLL_MS);
  }
}

// ---------------------------------------------------------------------------------
// Start

function renderReturn(): void {
  const box = byId("checkout-result");
  const path = location.pathname;
  if (path === "/checkout/success") {
    box.hidden = false;
    box.replaceChildren(
      h("h2", {}, "Thank you: payment received"),
      h(
        "p",
        {},
        "Your server is being set up. It appears under My servers and is ready in a minute or two; this page updates by itself.",
      ),
    );
  } else if (path === "/checkout/canceled") {
    box.hidden = false;
    box.replaceChildren(
      h("h2", {}, "Checkout canceled"),
      h("p", {}, "Nothing was charged. You can pick a plan again below."),
    );
  } else box.hidden = true;
}

async function main(): Promise<void> {
  const config: StoreConfig = await (await fetch("/config.json")).json();
  const shop = connect(config);
  const state: State = {
    shop,
    email: await shop.email(),
    catalogue: null,
    orders: [],
    panel: null,
    previews: new Map(),
    picked: new Map(),
    poll: null,
  };
  renderReturn();
  renderAccount(state);
  try {
    state.catalogue = await loadCatalogue(shop);
    renderCatalogue(state);
  } catch (e) {
    byId("plans").replaceChildren(
      h("p", { role: "alert", class: "form-error" }, wordsFor(e)),
    );
  }
  if (!state.email) {
    renderServers(state);
    return;
  }
  try {
    const account = await ensurePanelAccount(shop);
    state.panel = { url: account.panel_url, created: account.created };
  } catch (e) {
    byId("servers-error").textContent = wordsFor(e);
  }
  await refreshServers(state);
}

void main();
