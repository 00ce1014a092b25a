-- What a storefront shows before a customer tries to buy: for each active plan and
-- active region, only whether the region can take the plan now. No node names, ids or
-- free memory: nothing a competitor could mine beyond "available / sold out".

/**
 * PLAN REGION AVAILABILITY
 * One row per active plan and active region. The view runs as its caller
 * (security_invoker), so the plans and regions policies keep it to what is on sale;
 * the room itself comes from plan_availability(), the one place that reads the
 * private node_capacity, by the same rule create-checkout-session refuses a sale with.
 */
create view public.plan_region_availability with (security_invoker = true) as
select p.id as plan_id, a.region, a.available
from public.plans p
cross join lateral public.plan_availability(p.id) a
where p.active;
comment on view public.plan_region_availability is
  'Per active plan and region: available or sold out, and nothing else. Public.';

revoke all on table public.plan_region_availability from anon, authenticated, service_role;
grant select on table public.plan_region_availability to anon, authenticated, service_role;
