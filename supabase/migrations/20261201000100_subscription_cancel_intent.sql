-- A subscription the shop decided to cancel in Stripe (a full refund of the order's
-- only payment). The webhook records the intent with the order's change, commits, and
-- only then calls Stripe (idempotency key `cancel-<order id>`): no network call runs
-- inside a transaction. The column stays set until Stripe confirms; the next delivery
-- or the sweep retries it when it is due.
alter table public.orders add column subscription_cancel_due_at timestamptz;
comment on column public.orders.subscription_cancel_due_at is
  'Set: the order''s Stripe subscription is to be canceled (retried from this time on); null: nothing to cancel.';
create index orders_subscription_cancel_due_idx on public.orders (subscription_cancel_due_at)
  where subscription_cancel_due_at is not null;
