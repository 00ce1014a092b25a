-- Customers see customer words. Operator detail (error_message, node names, panel
-- paths, what to fix) stays where only the service role and the order_chain view read
-- it; the owner reads a customer message on the order and the customer rows of the
-- timeline. Column grants narrow the owner's reads (RLS still picks the rows).

alter table public.orders add column customer_message text;
comment on column public.orders.customer_message is
  'What the customer reads about the order''s last problem; error_message keeps the operator detail.';

/** The words a customer reads for an order status. */
create function public.order_status_words(status public.order_status) returns text
language sql immutable
set search_path = ''
as $$
  select case status
    when 'pending' then 'Order created; waiting for payment'
    when 'paid' then 'Payment received'
    when 'provisioning' then 'Setting up your server'
    when 'installing' then 'Your server is being installed'
    when 'active' then 'Your server is running'
    when 'error' then 'Setting up your server hit a problem; we are retrying and our team has been told'
    when 'suspended' then 'Your server is suspended'
    when 'canceled' then 'Your order was canceled'
    when 'expired' then 'The checkout ended without payment'
  end
$$;

alter table public.order_events
  add column audience text not null default 'operator'
    check (audience in ('customer', 'operator')),
  add column customer_message text;
comment on column public.order_events.audience is
  'customer: the owner may read the row (its customer_message); operator: service role and order_chain only.';
update public.order_events
set audience = 'customer', customer_message = public.order_status_words(to_status)
where kind = 'status';
update public.order_events
set audience = 'customer', customer_message = 'Checkout opened'
where kind = 'checkout';

drop policy "Users can read their own order timeline" on public.order_events;
create policy "Users can read the customer rows of their own order timeline"
  on public.order_events for select to authenticated
  using ((select auth.uid()) = user_id and audience = 'customer');

revoke select on public.order_events from authenticated;
grant select (id, order_id, user_id, kind, from_status, to_status, customer_message,
  audience, created_at) on public.order_events to authenticated;

revoke select on public.orders from authenticated;
grant select (id, user_id, plan_id, item_type, term, region, server_name, status,
  amount_cents, currency, memory_mb, disk_mb, stripe_checkout_url, checkout_expires_at,
  pterodactyl_server_identifier, customer_message, paid_at, created_at, updated_at)
  on public.orders to authenticated;

/**
 * Status rows of the timeline, as before, now also for the customer: the operator's
 * reason stays in message/detail, the customer reads customer_message (the order's own
 * customer message for a failure, else the status's words).
 */
create or replace function public.orders_record_status() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    insert into public.order_events (order_id, user_id, kind, from_status, to_status, message,
      detail, actor, audience, customer_message)
    values (
      new.id, new.user_id, 'status',
      case when tg_op = 'UPDATE' then old.status end, new.status,
      coalesce(
        nullif(current_setting('shop.reason', true), ''),
        case when tg_op = 'INSERT' then 'Order created' else format('Status changed to %s', new.status) end
      ),
      case when new.status = 'error'
        then jsonb_build_object('error_message', new.error_message, 'attempt_count', new.attempt_count,
                                'next_attempt_at', new.next_attempt_at)
        else '{}'::jsonb end,
      nullif(current_setting('shop.actor', true), ''),
      'customer',
      coalesce(
        case when new.status in ('error', 'expired') then new.customer_message end,
        public.order_status_words(new.status)
      )
    );
  end if;
  return null;
end
$$;
