-- Missed Stripe events heal by themselves: the sweep lists the events the webhook
-- handles (Stripe keeps them 30 days) and applies each one stripe_events_log does not
-- have, through the webhook's own code path. How each event came is recorded, so an
-- operator sees which ones the webhook never delivered.
alter table public.stripe_events_log add column received_via text not null
  default 'webhook' check (received_via in ('webhook', 'poll'));
comment on column public.stripe_events_log.received_via is
  'webhook: delivered to stripe-webhook; poll: never delivered, found by the sweep in Stripe''s event list';

-- The second net: an order whose paid_until passed with no renewal recorded has its
-- subscription read back from Stripe by the sweep; this says when, so an order is not
-- asked about at every sweep.
alter table public.orders add column subscription_checked_at timestamptz;
comment on column public.orders.subscription_checked_at is
  'When the sweep last read the subscription back from Stripe because paid_until passed without a renewal.';
create index orders_paid_until_idx on public.orders (paid_until)
  where stripe_subscription_id is not null;

-- The order chain says how each Stripe event came.
create or replace view public.order_chain with (security_invoker = true) as
select e.order_id, e.created_at as at, 'order'::text as source, e.kind, e.message,
  e.from_status::text as from_status, e.to_status::text as to_status, e.actor, e.detail
from public.order_events e
union all
select l.order_id, l.received_at, 'stripe', l.type,
  coalesce(l.error, l.outcome), null, null, 'stripe',
  jsonb_build_object('event_id', l.event_id, 'outcome', l.outcome,
    'received_via', l.received_via)
from public.stripe_events_log l
where l.order_id is not null;

-- Grants, as in the grants migrations: the service reads and writes both tables
-- (table grants cover the new columns); the owner's column grants on orders stay as
-- they are (the new column is the operator's); the view stays the service's.
revoke all on table public.stripe_events_log from anon, authenticated, service_role;
grant select, insert, update, delete on table public.stripe_events_log to service_role;
revoke all on public.order_chain from anon, authenticated;
grant select on table public.order_chain to service_role;
