-- What provisioning needs to know about the panel, kept in the database so a purchase
-- costs one panel call (the create) instead of five: egg definitions and each node's
-- allocations. The sweep refreshes both; provisioning falls back to the panel when an
-- entry is missing or turns out stale.

/**
 * PANEL EGGS
 * The egg of each plan as the panel defines it: image, startup and variables (with
 * their defaults and rules). Private: service only.
 */
create table public.panel_eggs (
  nest_id integer not null,
  egg_id integer not null,
  name text not null,
  docker_image text not null,
  startup text not null,
  variables jsonb not null check (jsonb_typeof(variables) = 'array'),
  fetched_at timestamptz not null default now(),
  primary key (nest_id, egg_id)
);
comment on table public.panel_eggs is 'Egg definitions read from the panel, refreshed by the sweep.';
alter table public.panel_eggs enable row level security;
grant select, insert, update, delete on public.panel_eggs to service_role;

/**
 * PANEL ALLOCATIONS
 * Every allocation (ip:port) of the shop's nodes. `assigned` is what the panel said at
 * the last refresh; `order_id` is the order that took it since (under the node's row
 * lock), so two provisionings never pick the same one. Private: service only.
 */
create table public.panel_allocations (
  id integer primary key,
  panel_node_id integer not null,
  ip text not null,
  port integer not null check (port between 1 and 65535),
  assigned boolean not null,
  order_id uuid unique references public.orders (id) on delete set null,
  fetched_at timestamptz not null default now()
);
comment on table public.panel_allocations is 'Node allocations read from the panel, and which order took each one.';
create index panel_allocations_free_idx on public.panel_allocations (panel_node_id, id)
  where not assigned and order_id is null;
alter table public.panel_allocations enable row level security;
grant select, insert, update, delete on public.panel_allocations to service_role;
