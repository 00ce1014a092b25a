-- Plan changes: what each order is entitled to, what the panel last confirmed, and the
-- upgrades and downgrades on their way.

/**
 * Every limit an order is entitled to lives on the order (memory_mb and disk_mb already
 * did): a catalogue edit changes no sold server, and a plan change changes exactly
 * these. Existing orders take the limits of their plan.
 */
alter table public.orders
  add column cpu_percent integer,
  add column swap_mb integer,
  add column io_weight integer,
  add column databases integer,
  add column backups integer,
  add column allocations integer;

update public.orders o set
  cpu_percent = p.cpu_percent, swap_mb = p.swap_mb, io_weight = p.io_weight,
  databases = p.databases, backups = p.backups, allocations = p.allocations
from public.plans p where p.id = o.plan_id;

alter table public.orders
  alter column cpu_percent set not null,
  alter column swap_mb set not null,
  alter column io_weight set not null,
  alter column databases set not null,
  alter column backups set not null,
  alter column allocations set not null,
  add constraint orders_cpu_percent_check check (cpu_percent >= 0),
  add constraint orders_swap_mb_check check (swap_mb >= -1),
  add constraint orders_io_weight_check check (io_weight between 10 and 1000),
  add constraint orders_databases_check check (databases >= 0),
  add constraint orders_backups_check check (backups >= 0),
  add constraint orders_allocations_check check (allocations >= 1);

/** An order inserted without its limits (by hand, say) takes its plan's. */
create function public.orders_default_limits()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  p public.plans;
begin
  select * into p from public.plans where id = new.plan_id;
  if found then
    new.cpu_percent := coalesce(new.cpu_percent, p.cpu_percent);
    new.swap_mb := coalesce(new.swap_mb, p.swap_mb);
    new.io_weight := coalesce(new.io_weight, p.io_weight);
    new.databases := coalesce(new.databases, p.databases);
    new.backups := coalesce(new.backups, p.backups);
    new.allocations := coalesce(new.allocations, p.allocations);
  end if;
  return new;
end;
$$;
revoke all on function public.orders_default_limits() from public, anon, authenticated, service_role;
create trigger orders_default_limits before insert on public.orders
  for each row execute function public.orders_default_limits();

/**
 * What the panel last confirmed of the server's build ({memory, swap, disk, io, cpu,
 * databases, backups, allocations}); the sweep changes the build while it differs
 * from the order's limits. Servers made before this column were made with them.
 */
alter table public.orders add column panel_limits jsonb
  check (panel_limits is null or jsonb_typeof(panel_limits) = 'object');
update public.orders set panel_limits = jsonb_build_object(
    'memory', memory_mb, 'swap', swap_mb, 'disk', disk_mb, 'io', io_weight,
    'cpu', cpu_percent, 'databases', databases, 'backups', backups,
    'allocations', allocations)
where pterodactyl_server_id is not null;
comment on column public.orders.panel_limits is 'The server build the panel last confirmed; the sweep converges it to the order''s limits.';

/** A coming cancellation (cancel_at_period_end, or the portal''s cancel_at). */
alter table public.orders add column cancel_at timestamptz;
update public.orders set cancel_at = paid_until where cancel_at_period_end;
comment on column public.orders.cancel_at is 'When a coming cancellation takes effect (from cancel_at_period_end or Stripe''s cancel_at).';

/**
 * PLAN CHANGES
 * One upgrade or downgrade of one order. An upgrade is `requested` (its intent and
 * idempotency key recorded, room held), then `awaiting_payment` while Stripe's pending
 * update waits for its invoice, then `applied` (or `expired`, `failed`). A downgrade is
 * `requested`, then `scheduled` (a subscription schedule switches the price at the
 * period end), then `applied` at renewal (or `canceled` by the customer).
 */
create table public.plan_changes (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references public.orders (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete restrict,
  kind text not null check (kind in ('upgrade', 'downgrade')),
  status text not null default 'requested' check (status in (
    'requested', 'awaiting_payment', 'scheduled', 'applied', 'failed', 'canceled',
    'expired')),
  from_plan_id text not null references public.plans (id),
  to_plan_id text not null references public.plans (id),
  from_price_id text not null,
  to_price_id text not null,
  -- The new recurring price and the new limits (copied to the order when applied).
  amount_cents integer not null check (amount_cents > 0),
  currency text not null check (currency ~ '^[a-z]{3}$'),
  limits jsonb not null check (jsonb_typeof(limits) = 'object'),
  -- What is charged now (the proration), as previewed.
  amount_due_cents integer not null default 0 check (amount_due_cents >= 0),
  -- Room held on the order's node while an upgrade waits (counted by node_capacity).
  node_id bigint references public.ptero_nodes (id),
  reserve_memory_mb integer not null default 0 check (reserve_memory_mb >= 0),
  reserve_disk_mb integer not null default 0 check (reserve_disk_mb >= 0),
  proration_date timestamptz,
  effective_at timestamptz,
  expires_at timestamptz,
  stripe_invoice_id text,
  stripe_schedule_id text,
  idempotency_key text not null unique,
  -- When the sweep next carries a `requested` change on (its call may have been lost).
  next_attempt_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  error_message text,
  customer_message text,
  actor text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  settled_at timestamptz,
  check (from_plan_id <> to_plan_id)
);
comment on table public.plan_changes is 'Upgrades and downgrades of orders, from request to applied.';
comment on column public.plan_changes.error_message is 'What failed, in words an operator can act on (customer_message is the customer''s).';
-- One change at a time per order: a second request loses the race here.
create unique index plan_changes_one_open_idx on public.plan_changes (order_id)
  where status in ('requested', 'awaiting_payment', 'scheduled');
create index plan_changes_order_idx on public.plan_changes (order_id, created_at desc);
create index plan_changes_due_idx on public.plan_changes (next_attempt_at)
  where status in ('requested', 'awaiting_payment');
create index plan_changes_holding_idx on public.plan_changes (node_id)
  where status in ('requested', 'awaiting_payment');

alter table public.plan_changes enable row level security;
create policy "Users can read their own plan changes" on public.plan_changes
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.plan_changes from anon, authenticated, service_role;
grant select (id, order_id, user_id, kind, status, from_plan_id, to_plan_id,
  amount_cents, currency, limits, amount_due_cents, effective_at, expires_at,
  customer_message, created_at, updated_at, settled_at)
  on table public.plan_changes to authenticated;
grant select, insert, update, delete on table public.plan_changes to service_role;

/** Keeps updated_at current. */
create function public.plan_changes_touch()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
revoke all on function public.plan_changes_touch() from public, anon, authenticated, service_role;
create trigger plan_changes_touch before update on public.plan_changes
  for each row execute function public.plan_changes_touch();

/**
 * Memory and disk still free on each enabled node: every order's current limits
 * (servers not deleted), plus the room held by upgrades still on their way.
 */
create or replace view public.node_capacity with (security_invoker = true) as
select
  n.id as node_id,
  n.region,
  n.memory_mb - coalesce(o.memory_mb, 0) - coalesce(c.memory_mb, 0) as free_memory_mb,
  n.disk_mb - coalesce(o.disk_mb, 0) - coalesce(c.disk_mb, 0) as free_disk_mb
from public.ptero_nodes n
left join lateral (
  select sum(memory_mb)::integer as memory_mb, sum(disk_mb)::integer as disk_mb
  from public.orders
  where node_id = n.id and status <> 'expired' and panel_state is distinct from 'deleted'
) o on true
left join lateral (
  select sum(reserve_memory_mb)::integer as memory_mb,
    sum(reserve_disk_mb)::integer as disk_mb
  from public.plan_changes
  where node_id = n.id and status in ('requested', 'awaiting_payment')
) c on true
where n.enabled;

-- Plan changes have their own timeline rows.
alter table public.order_events drop constraint order_events_kind_check;
alter table public.order_events add constraint order_events_kind_check check (kind in (
  'status', 'checkout', 'payment', 'provision_attempt', 'panel', 'alert', 'note',
  'plan_change'));

-- The owner reads their order's limits and a coming cancellation, like its other
-- customer-facing columns.
grant select (cpu_percent, swap_mb, io_weight, databases, backups, allocations, cancel_at)
  on table public.orders to authenticated;
