-- Orders, their lifecycle, and their timeline.

create type public.order_status as enum (
  'pending', 'paid', 'provisioning', 'installing', 'active',
  'error', 'suspended', 'canceled', 'expired'
);

/**
 * ORDERS
 * One purchase of one server. Owner may read; only the service writes. The status
 * follows the lifecycle enforced by orders_check_transition below.
 */
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete restrict,
  plan_id text not null references public.plans (id),
  item_type text not null default 'game' check (item_type in ('game')),
  term public.billing_term not null,
  region text not null references public.regions (id),
  server_name text not null check (char_length(server_name) between 1 and 60),
  status public.order_status not null default 'pending',
  -- Snapshot of what was sold, so later catalogue edits do not change this order.
  stripe_price_id text not null,
  amount_cents integer not null check (amount_cents > 0),
  currency text not null,
  memory_mb integer not null check (memory_mb > 0),
  disk_mb integer not null check (disk_mb > 0),
  stripe_checkout_session_id text unique,
  stripe_checkout_url text,
  checkout_expires_at timestamptz,
  stripe_customer_id text,
  stripe_subscription_id text unique,
  node_id bigint references public.ptero_nodes (id),
  pterodactyl_server_id integer unique,
  pterodactyl_server_identifier text unique,
  error_message text,
  attempt_count integer not null default 0 check (attempt_count >= 0),
  next_attempt_at timestamptz,
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.orders is 'Server purchases and where each one is in its lifecycle.';
comment on column public.orders.error_message is 'What failed last, in words an operator can act on.';
comment on column public.orders.next_attempt_at is 'When the sweep retries a failed provisioning.';

create index orders_user_id_idx on public.orders (user_id);
create index orders_node_id_idx on public.orders (node_id) where node_id is not null;
create index orders_retry_idx on public.orders (next_attempt_at) where status = 'error';
-- A double submit of the same checkout finds the open order instead of making another.
create unique index orders_one_open_checkout_idx
  on public.orders (user_id, plan_id, term, region, server_name) where status = 'pending';

alter table public.orders enable row level security;
create policy "Users can read their own orders" on public.orders
  for select to authenticated using ((select auth.uid()) = user_id);

/** Whether an order may move from one status to another. */
create function public.order_transition_allowed(
  from_status public.order_status,
  to_status public.order_status
) returns boolean
language sql immutable
set search_path = ''
as $$
  select (from_status, to_status) in (
    ('pending', 'paid'), ('pending', 'expired'), ('pending', 'canceled'),
    ('paid', 'provisioning'), ('paid', 'error'), ('paid', 'suspended'), ('paid', 'canceled'),
    ('provisioning', 'installing'), ('provisioning', 'error'), ('provisioning', 'canceled'),
    ('installing', 'active'), ('installing', 'error'), ('installing', 'suspended'),
    ('installing', 'canceled'),
    ('active', 'installing'), ('active', 'error'), ('active', 'suspended'), ('active', 'canceled'),
    ('error', 'provisioning'), ('error', 'installing'), ('error', 'active'),
    ('error', 'suspended'), ('error', 'canceled'),
    ('suspended', 'paid'), ('suspended', 'active'), ('suspended', 'error'),
    ('suspended', 'canceled')
  )::boolean
$$;

/**
 * ORDER EVENTS
 * The order's timeline: every status change (written by trigger), every provisioning
 * attempt and every notable step. Owner may read their own.
 */
create table public.order_events (
  id bigint generated always as identity primary key,
  order_id uuid not null references public.orders (id) on delete cascade,
  user_id uuid not null,
  kind text not null check (kind in ('status', 'checkout', 'payment', 'provision_attempt', 'panel', 'alert', 'note')),
  from_status public.order_status,
  to_status public.order_status,
  message text not null,
  detail jsonb not null default '{}'::jsonb,
  actor text,
  created_at timestamptz not null default clock_timestamp()
);
comment on table public.order_events is 'Timeline of each order: status changes, provisioning attempts, notes.';
create index order_events_order_id_idx on public.order_events (order_id, id);
create index order_events_user_id_idx on public.order_events (user_id);
alter table public.order_events enable row level security;
create policy "Users can read their own order timeline" on public.order_events
  for select to authenticated using ((select auth.uid()) = user_id);

/** Rejects illegal status changes and keeps updated_at current. */
create function public.orders_before_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status
     and not public.order_transition_allowed(old.status, new.status) then
    raise exception 'illegal order status transition from "%" to "%"', old.status, new.status
      using errcode = 'check_violation', detail = format('order %s', old.id);
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger orders_before_update before update on public.orders
  for each row execute function public.orders_before_update();

/**
 * Writes a timeline row for the creation and every status change of an order. The
 * writer may name itself and its reason with set_config('shop.actor'|'shop.reason', ..., true).
 */
create function public.orders_record_status() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    insert into public.order_events (order_id, user_id, kind, from_status, to_status, message, detail, actor)
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
      nullif(current_setting('shop.actor', true), '')
    );
  end if;
  return null;
end
$$;
create trigger orders_record_status after insert or update of status on public.orders
  for each row execute function public.orders_record_status();

/** Memory and disk still free on each enabled node, counting every order placed on it. */
create view public.node_capacity with (security_invoker = true) as
select
  n.id as node_id,
  n.region,
  n.memory_mb - coalesce(sum(o.memory_mb), 0)::integer as free_memory_mb,
  n.disk_mb - coalesce(sum(o.disk_mb), 0)::integer as free_disk_mb
from public.ptero_nodes n
left join public.orders o on o.node_id = n.id and o.status <> 'expired'
where n.enabled
group by n.id;
comment on view public.node_capacity is 'Free memory and disk per enabled node; private like ptero_nodes.';
revoke all on public.node_capacity from anon, authenticated;

/** For each active region: whether a server of this plan can be placed there now. */
create function public.plan_availability(p_plan_id text)
returns table (region text, display_name text, available boolean)
language sql stable
security definer
set search_path = ''
as $$
  select r.id, r.display_name, exists (
    select 1
    from public.node_capacity c
    join public.plans p on p.id = p_plan_id
    where c.region = r.id and c.free_memory_mb >= p.memory_mb and c.free_disk_mb >= p.disk_mb
  )
  from public.regions r
  where r.active
  order by r.id
$$;
revoke all on function public.plan_availability(text) from public;
grant execute on function public.plan_availability(text) to anon, authenticated, service_role;

/**
 * STRIPE EVENTS LOG
 * Every Stripe event received, once (keyed by event id), with what was done with it.
 * Private: service only.
 */
create table public.stripe_events_log (
  event_id text primary key,
  type text not null,
  api_version text,
  stripe_created_at timestamptz,
  order_id uuid references public.orders (id) on delete set null,
  outcome text not null default 'received'
    check (outcome in ('received', 'processed', 'ignored', 'mismatch', 'failed')),
  error text,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz
);
comment on table public.stripe_events_log is 'Stripe webhook events, recorded once each, with their outcome.';
create index stripe_events_log_order_id_idx on public.stripe_events_log (order_id);
alter table public.stripe_events_log enable row level security;
