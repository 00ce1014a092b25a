-- Data API grants: exactly what each API role needs, nothing more.
--
-- Since 30 October 2026 hosted Supabase no longer grants new tables in public to anon,
-- authenticated or service_role, so without this the Data API answers "permission
-- denied" before any RLS policy is reached. Projects created earlier still carry the
-- old default privileges (everything to every API role), so each object is first
-- revoked from those roles and then granted what it needs: the result is the same on
-- old and new projects. Default privileges are the platform's and stay untouched.
--
-- A later migration that adds a table grants that table itself, in the same file.
-- The functions are not affected by any of this: they connect as postgres
-- (SUPABASE_DB_URL). service_role bypasses RLS but still needs grants: it is what the
-- dashboard's API, admin scripts and supabase-js with a secret key run as.

grant usage on schema public to anon, authenticated, service_role;

revoke all on table
  public.regions, public.plans, public.plan_prices, public.ptero_nodes,
  public.external_accounts, public.stripe_customers, public.orders,
  public.order_events, public.stripe_events_log
from anon, authenticated, service_role;
revoke all on table public.node_capacity, public.order_chain
from anon, authenticated, service_role;
-- Identity columns need no sequence grant for inserts; nobody else needs the sequences.
revoke all on sequence public.ptero_nodes_id_seq, public.order_events_id_seq
from anon, authenticated, service_role;

-- The catalogue: anyone may read what is on sale (policies keep it to active rows).
grant select on table public.regions, public.plans, public.plan_prices
to anon, authenticated;

-- A customer's own rows (policies keep them to user_id = auth.uid()).
grant select on table public.orders, public.order_events, public.external_accounts
to authenticated;

-- The service: reads and writes every table, reads the operator views.
grant select, insert, update, delete on table
  public.regions, public.plans, public.plan_prices, public.ptero_nodes,
  public.external_accounts, public.stripe_customers, public.orders,
  public.order_events, public.stripe_events_log
to service_role;
grant select on table public.node_capacity, public.order_chain to service_role;

-- Functions: availability is public; the lifecycle helpers are the service's (the
-- trigger calls order_transition_allowed as whoever updates an order). Postgres grants
-- EXECUTE to PUBLIC by default, which would reach anon and authenticated.
revoke all on function public.plan_availability(text) from public, anon, authenticated, service_role;
grant execute on function public.plan_availability(text) to anon, authenticated, service_role;
revoke all on function
  public.order_transition_allowed(public.order_status, public.order_status),
  public.orders_before_update(),
  public.orders_record_status()
from public, anon, authenticated, service_role;
grant execute on function
  public.order_transition_allowed(public.order_status, public.order_status)
to service_role;
