-- Catalogue: what the shop sells and where it can host it.

/**
 * REGIONS
 * Where a customer may place a server. Each region maps to one panel location.
 */
create table public.regions (
  id text primary key check (id ~ '^[a-z0-9-]{2,32}$'),
  display_name text not null,
  panel_location_id integer not null,
  active boolean not null default true,
  created_at timestamptz not null default now()
);
comment on table public.regions is 'Regions a customer may choose; each is one panel location.';
alter table public.regions enable row level security;
create policy "Anyone can read active regions" on public.regions
  for select to anon, authenticated using (active);

/**
 * PLANS
 * A game server offering: limits sent to the panel and the egg it is built from.
 * Prices per term live in plan_prices.
 */
create table public.plans (
  id text primary key check (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  game text not null,
  display_name text not null,
  memory_mb integer not null check (memory_mb > 0),
  disk_mb integer not null check (disk_mb > 0),
  cpu_percent integer not null check (cpu_percent >= 0),
  swap_mb integer not null default 0 check (swap_mb >= -1),
  io_weight integer not null default 500 check (io_weight between 10 and 1000),
  databases integer not null default 0 check (databases >= 0),
  backups integer not null default 0 check (backups >= 0),
  allocations integer not null default 1 check (allocations >= 1),
  ptero_nest_id integer not null,
  ptero_egg_id integer not null,
  docker_image text,
  startup text,
  environment jsonb not null default '{}'::jsonb check (jsonb_typeof(environment) = 'object'),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.plans is 'Game server plans: panel limits, nest and egg, environment overrides.';
comment on column public.plans.environment is 'Egg variable overrides; variables not named here take the egg default.';
alter table public.plans enable row level security;
create policy "Anyone can read active plans" on public.plans
  for select to anon, authenticated using (active);

create type public.billing_term as enum ('monthly', 'quarterly', 'yearly');

/**
 * PLAN PRICES
 * One Stripe recurring price per plan and term. The amount is a copy of the Stripe
 * price for display; Stripe charges what the price id says.
 */
create table public.plan_prices (
  plan_id text not null references public.plans (id) on delete cascade,
  term public.billing_term not null,
  stripe_price_id text not null unique,
  amount_cents integer not null check (amount_cents > 0),
  currency text not null check (currency ~ '^[a-z]{3}$'),
  active boolean not null default true,
  primary key (plan_id, term)
);
comment on table public.plan_prices is 'Stripe price per plan and billing term.';
alter table public.plan_prices enable row level security;
create policy "Anyone can read active prices of active plans" on public.plan_prices
  for select to anon, authenticated
  using (active and exists (select 1 from public.plans p where p.id = plan_id and p.active));

/**
 * PTERO NODES
 * Panel nodes the shop places servers on, with the capacity it may use. Private:
 * customers see availability per region through plan_availability().
 */
create table public.ptero_nodes (
  id bigint generated always as identity primary key,
  panel_node_id integer not null unique,
  panel_location_id integer not null,
  name text not null,
  region text not null references public.regions (id),
  memory_mb integer not null check (memory_mb > 0),
  disk_mb integer not null check (disk_mb > 0),
  enabled boolean not null default true,
  created_at timestamptz not null default now()
);
comment on table public.ptero_nodes is 'Panel nodes and the memory and disk the shop may allocate on each.';
create index ptero_nodes_region_idx on public.ptero_nodes (region) where enabled;
alter table public.ptero_nodes enable row level security;
