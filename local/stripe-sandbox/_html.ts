/**
 * The checkout page a human sees at a session's `url`: the order, and one button
 * per payment outcome.
 *
 * @module
 */
import type { SessionRecord } from "./_state.ts";

const OUTCOMES: [outcome: string, label: string][] = [
  ["paid", "Pay (card succeeds)"],
  ["async_pending", "Pay by bank (pending)"],
  ["async_succeeded", "Bank payment succeeds"],
  ["async_failed", "Bank payment fails"],
  ["expired", "Let the session expire"],
];

/** The HTML checkout page of one session. */
export function payPage(record: SessionRecord): string {
  const { session, lineItems } = record;
  const money = (amount: number) =>
    `${(amount / 100).toFixed(2)} ${session.currency.toUpperCase()}`;
  const lines = lineItems.map((line) =>
    `<li>${escapeHtml(line.description)} × ${line.quantity}: ${
      money(line.amount_total)
    }${
      line.price.recurring
        ? ` every ${line.price.recurring.interval_count} ${line.price.recurring.interval}(s)`
        : ""
    }</li>`
  ).join("");
  const buttons = OUTCOMES.map(([outcome, label]) =>
    `<button name="outcome" value="${outcome}">${label}</button>`
  ).join(" ");
  const cancel = session.cancel_url === null
    ? ""
    : `<p><a href="${escapeHtml(session.cancel_url)}">Back (cancel)</a></p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stripe sandbox checkout</title>
<style>body{font-family:system-ui;max-width:40rem;margin:3rem auto}button{margin:.2rem}</style>
</head><body>
<h1>Stripe sandbox checkout</h1>
<p>Session <code>${
    escapeHtml(session.id)
  }</code>: status <b>${session.status}</b>, payment <b>${session.payment_status}</b></p>
<p>${
    escapeHtml(session.customer_email ?? session.customer ?? "new customer")
  }</p>
<ul>${lines}</ul>
<p>Total: <b>${money(session.amount_total)}</b></p>
<form method="post" action="/_sandbox/checkout/sessions/${
    encodeURIComponent(session.id)
  }/complete">${buttons}</form>
${cancel}
</body></html>`;
}

/** Text made safe for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
