-- A validly signed Stripe event the shop cannot use (not a JSON object, no `data`, a NUL
-- character that Postgres cannot store) is recorded as 'invalid', alerted and
-- acknowledged: answering 5xx would only make Stripe retry it for three days.
alter table public.stripe_events_log drop constraint stripe_events_log_outcome_check;
alter table public.stripe_events_log add constraint stripe_events_log_outcome_check
  check (outcome in ('received', 'processed', 'ignored', 'mismatch', 'failed', 'invalid'));
comment on column public.stripe_events_log.outcome is
  'received, processed, ignored, mismatch (disagrees with its order), failed, or invalid (signed but unusable; payload keeps the raw body)';
