-- One place for an operator to read an order's whole chain: its timeline (status
-- changes, provisioning attempts, alerts) and the Stripe events applied to it, in time
-- order. Service only: `select * from public.order_chain where order_id = '…' order by at`.

create view public.order_chain with (security_invoker = true) as
select e.order_id, e.created_at as at, 'order'::text as source, e.kind, e.message,
  e.from_status::text as from_status, e.to_status::text as to_status, e.actor, e.detail
from public.order_events e
union all
select l.order_id, l.received_at, 'stripe', l.type,
  coalesce(l.error, l.outcome), null, null, 'stripe',
  jsonb_build_object('event_id', l.event_id, 'outcome', l.outcome)
from public.stripe_events_log l
where l.order_id is not null;
comment on view public.order_chain is 'Everything that happened to an order, from both sides, for operators.';
revoke all on public.order_chain from anon, authenticated;
