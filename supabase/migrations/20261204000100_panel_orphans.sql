/**
 * PANEL ORPHANS
 * Servers on the panel whose external_id names no order: made by hand, by another shop
 * on the same panel, or left from a database that was reset. The sweep alerts an
 * operator once per server (remembered here) and never deletes them: a person decides.
 * Private: service only.
 */
create table public.panel_orphans (
  panel_server_id integer primary key,
  external_id text not null,
  identifier text,
  name text,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now()
);
comment on table public.panel_orphans is 'Panel servers whose external_id names no order: alerted once, never deleted by the shop.';
alter table public.panel_orphans enable row level security;
revoke all on table public.panel_orphans from anon, authenticated, service_role;
grant select, insert, update, delete on public.panel_orphans to service_role;
