-- The dashboard's list of orders an operator should look at: one row per order that is
-- not healthy, with how long it has been so, its last error, the next attempt or
-- deadline, and the doctor's cause code where the database alone can tell it (null:
-- ask `npm run doctor -- <order id>` or the order-doctor function, which also read
-- Stripe and the panel). Service role only.

/**
 * The customer's email for an order's user. auth.users is not readable by the API
 * roles, so a security-definer helper reads the one column the view needs.
 */
create function public.order_customer_email(p_user_id uuid) returns text
language sql stable
security definer
set search_path = ''
as $$
  select email::text from auth.users where id = p_user_id
$$;
revoke all on function public.order_customer_email(uuid) from public, anon, authenticated, service_role;
grant execute on function public.order_customer_email(uuid) to service_role;

create view public.orders_needing_attention with (security_invoker = true) as
with flagged as (
  select o.*,
    case
      when o.status = 'error' and o.gave_up_at is not null then 'provisioning_gave_up'
      when o.status = 'error' and o.error_message = 'server missing on the panel' then 'server_missing'
      when o.status = 'error' and o.error_message like 'installation failed on the panel%' then 'install_failed'
      when o.status = 'error' and o.error_message ~ '^(Choosing a node|Finding a free allocation) failed|No nodes satisfying'
        then 'no_capacity'
      when o.status = 'error' and o.error_message like 'Reading the egg failed%' then 'egg_missing'
      when o.status = 'error' and o.error_message ~ '^(Ensuring|Relinking) the customer''s panel account failed'
        then 'panel_account_problem'
      when o.status = 'error' and o.error_message ~ 'could not be reached|no answer within' then 'panel_unreachable'
      when o.status = 'error' and o.error_message like '%panel answered 422%' then 'panel_rejected'
      when o.status = 'error' then 'provisioning_retrying'
      when o.status = 'suspended' and o.panel_target = 'suspended' then
        case o.suspend_reason when 'billing' then 'suspended_billing'
          when 'dispute' then 'suspended_dispute' else 'suspended_admin' end
      when o.status in ('paid', 'provisioning') then 'provisioning_retrying'
      when o.panel_action_due_at < now() - interval '5 minutes' then 'state_drift'
      else null
    end as cause_code
  from public.orders o
  where o.status in ('error', 'suspended')
    -- Paid but not provisioned after five minutes: the hand-off failed or the claim died.
    or (o.status in ('paid', 'provisioning') and o.updated_at < now() - interval '5 minutes')
    -- Still pending after its checkout ended: the payment event may be lost (the doctor
    -- asks Stripe).
    or (o.status = 'pending' and o.checkout_expires_at < now() - interval '5 minutes')
    -- Installing for half an hour: the panel's install hangs.
    or (o.status = 'installing' and o.updated_at < now() - interval '30 minutes')
    -- The panel has not followed the order's target for five minutes.
    or (o.panel_action_due_at < now() - interval '5 minutes' and o.status <> 'expired')
)
select
  f.id as order_id,
  public.order_customer_email(f.user_id) as customer_email,
  f.status,
  now() - coalesce(
    (select max(e.created_at) from public.order_events e
      where e.order_id = f.id and e.kind = 'status' and e.to_status = f.status),
    f.updated_at
  ) as in_status_for,
  f.error_message as last_error,
  case
    when f.status = 'error' then f.next_attempt_at
    when f.panel_action_due_at is not null then f.panel_action_due_at
    when f.status = 'pending' then f.checkout_expires_at
    else coalesce(f.suspend_at, f.delete_at)
  end as next_at,
  f.cause_code
from flagged f;
comment on view public.orders_needing_attention is
  'Orders an operator should look at, with the cause where the database alone can tell it; npm run doctor explains each.';
revoke all on public.orders_needing_attention from anon, authenticated, service_role;
grant select on public.orders_needing_attention to service_role;
