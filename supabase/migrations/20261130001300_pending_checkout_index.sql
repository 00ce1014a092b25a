-- The sweep looks for abandoned checkouts (pending orders whose checkout ended or never
-- opened) every minute: an index scan over pending orders only, oldest first.
create index orders_pending_checkout_idx
  on public.orders ((coalesce(checkout_expires_at, created_at)))
  where status = 'pending';
