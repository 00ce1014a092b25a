-- Accounts a customer has in the outside systems.

/**
 * EXTERNAL ACCOUNTS
 * The customer's Pterodactyl panel account (the panel user's external_id is the
 * Supabase user id). Owner may read; only the service writes.
 */
create table public.external_accounts (
  user_id uuid primary key references auth.users (id) on delete cascade,
  ptero_user_id integer not null unique,
  ptero_username text not null,
  created_at timestamptz not null default now()
);
comment on table public.external_accounts is 'Link from a Supabase user to their Pterodactyl panel user.';
alter table public.external_accounts enable row level security;
create policy "Users can read their own panel account" on public.external_accounts
  for select to authenticated using ((select auth.uid()) = user_id);

/**
 * STRIPE CUSTOMERS
 * The Stripe customer of each user. Private: no policy, service only.
 */
create table public.stripe_customers (
  user_id uuid primary key references auth.users (id) on delete cascade,
  stripe_customer_id text not null unique,
  created_at timestamptz not null default now()
);
comment on table public.stripe_customers is 'Stripe customer per user; private to the service.';
alter table public.stripe_customers enable row level security;
