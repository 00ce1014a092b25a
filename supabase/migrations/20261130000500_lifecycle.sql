-- The life of a server after payment: what the panel should show (desired state), what
-- it showed last, paid-until, grace and retention deadlines, and renewals applied once
-- per invoice. Webhooks and admins change the desired state; the sweep makes the panel
-- match it.

alter table public.orders
  add column paid_until timestamptz,
  add column subscription_status text,
  add column cancel_at_period_end boolean not null default false,
  add column panel_target text not null default 'running'
    check (panel_target in ('running', 'suspended', 'deleted')),
  add column suspend_reason text
    check (suspend_reason in ('billing', 'dispute', 'canceled', 'admin')),
  add column suspend_at timestamptz,
  add column delete_at timestamptz,
  add column delete_warned_at timestamptz,
  add column panel_state text
    check (panel_state in ('installing', 'installed', 'install_failed', 'suspended', 'missing', 'deleted')),
  add column panel_seen_at timestamptz,
  add column panel_action_due_at timestamptz,
  add column panel_action_attempts integer not null default 0
    check (panel_action_attempts >= 0),
  add column was_running boolean,
  add column gave_up_at timestamptz,
  add constraint orders_suspension_has_reason
    check (panel_target <> 'suspended' or suspend_reason is not null);

comment on column public.orders.paid_until is 'End of the paid period (the subscription item''s current_period_end).';
comment on column public.orders.panel_target is 'What the panel should show: the server running (unsuspended), suspended, or deleted.';
comment on column public.orders.suspend_reason is 'Why the server is (to be) suspended; only billing suspensions lift on payment.';
comment on column public.orders.suspend_at is 'End of the payment grace period: the server is suspended then unless paid.';
comment on column public.orders.delete_at is 'End of retention after cancellation: the server is deleted then.';
comment on column public.orders.panel_state is 'What the panel showed last for the server.';
comment on column public.orders.panel_action_due_at is 'When the sweep next tries to make the panel match panel_target.';
comment on column public.orders.was_running is 'Whether the server was running when suspended, to start it again on unsuspend.';
comment on column public.orders.gave_up_at is 'When provisioning gave up after the last attempt; an admin call restarts it.';

-- The sweep's work lists, each an index scan.
create index orders_panel_action_idx on public.orders (panel_action_due_at)
  where panel_action_due_at is not null;
create index orders_suspend_at_idx on public.orders (suspend_at) where suspend_at is not null;
create index orders_delete_at_idx on public.orders (delete_at) where delete_at is not null;
create index orders_installing_idx on public.orders (updated_at) where status = 'installing';
create index orders_subscription_idx on public.orders (stripe_subscription_id)
  where stripe_subscription_id is not null;

/**
 * ORDER INVOICES
 * Each paid invoice of an order's subscription, recorded once: a renewal extends
 * paid_until once per invoice however often its events arrive. Private: service only.
 */
create table public.order_invoices (
  invoice_id text primary key,
  order_id uuid not null references public.orders (id) on delete cascade,
  billing_reason text,
  amount_paid integer not null,
  currency text not null,
  period_end timestamptz,
  paid_at timestamptz not null default now()
);
comment on table public.order_invoices is 'Paid invoices applied to each order, once each.';
create index order_invoices_order_id_idx on public.order_invoices (order_id);
alter table public.order_invoices enable row level security;
grant select, insert, update, delete on public.order_invoices to service_role;

-- Suspended orders come back to where they were; a failed install can be retried.
create or replace function public.order_transition_allowed(
  from_status public.order_status,
  to_status public.order_status
) returns boolean
language sql immutable
set search_path = ''
as $$
  select (from_status, to_status) in (
    ('pending', 'paid'), ('pending', 'expired'), ('pending', 'canceled'),
    ('paid', 'provisioning'), ('paid', 'error'), ('paid', 'suspended'), ('paid', 'canceled'),
    ('provisioning', 'installing'), ('provisioning', 'error'), ('provisioning', 'suspended'),
    ('provisioning', 'canceled'),
    ('installing', 'active'), ('installing', 'error'), ('installing', 'suspended'),
    ('installing', 'canceled'),
    ('active', 'installing'), ('active', 'error'), ('active', 'suspended'), ('active', 'canceled'),
    ('error', 'provisioning'), ('error', 'installing'), ('error', 'active'),
    ('error', 'suspended'), ('error', 'canceled'),
    ('suspended', 'paid'), ('suspended', 'installing'), ('suspended', 'active'),
    ('suspended', 'error'), ('suspended', 'canceled')
  )::boolean
$$;

/**
 * Memory and disk still free on each enabled node, counting every order placed on it
 * whose server has not been deleted from the panel.
 */
create or replace view public.node_capacity with (security_invoker = true) as
select
  n.id as node_id,
  n.region,
  n.memory_mb - coalesce(sum(o.memory_mb), 0)::integer as free_memory_mb,
  n.disk_mb - coalesce(sum(o.disk_mb), 0)::integer as free_disk_mb
from public.ptero_nodes n
left join public.orders o on o.node_id = n.id and o.status <> 'expired'
  and o.panel_state is distinct from 'deleted'
where n.enabled
group by n.id;
