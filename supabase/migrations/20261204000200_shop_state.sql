/**
 * SHOP STATE
 * Small facts about the shop as a whole, one row per key: when the sweep last ran
 * (`last_sweep`), how far the sweep has read Stripe's event list (`stripe_events_cursor`).
 * The doctor reads them to report problems of the whole shop. Private: service only.
 */
create table public.shop_state (
  key text primary key check (key ~ '^[a-z_]{1,64}$'),
  value jsonb not null default '{}'::jsonb,
  updated_at timestamptz not null default now()
);
comment on table public.shop_state is 'Shop-wide facts: last sweep, Stripe event cursor.';
alter table public.shop_state enable row level security;
revoke all on table public.shop_state from anon, authenticated, service_role;
grant select, insert, update, delete on public.shop_state to service_role;
