-- Grants for what the lifecycle and customer-words migrations added: the owner reads
-- the dates and states that concern their server (paid until, grace and retention
-- deadlines, cancellation at period end); the status words are the service's.

revoke execute on function public.order_status_words(public.order_status)
  from public, anon, authenticated;
grant execute on function public.order_status_words(public.order_status) to service_role;

grant select (paid_until, subscription_status, cancel_at_period_end, suspend_reason,
  suspend_at, delete_at, panel_state) on public.orders to authenticated;
