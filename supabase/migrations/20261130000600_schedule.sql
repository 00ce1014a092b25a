-- The sweep on a schedule: every minute, pg_cron calls sync-server-status through pg_net
-- with the project URL and a secret key kept in Vault (Supabase's "Scheduling Edge
-- Functions"). Create the two Vault secrets once per project:
--   select vault.create_secret('https://<project-ref>.supabase.co', 'project_url');
--   select vault.create_secret('sb_secret_…', 'sweep_secret_key');
-- Where pg_cron, pg_net or Vault cannot be had (the local stack, a plain Postgres) this
-- migration changes nothing: `npm start` runs the sweep from a timer instead.

do $migration$
begin
  -- Hosted Supabase offers both extensions; enable them where they are available.
  if not exists (select 1 from pg_extension where extname = 'pg_cron')
    and exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    create extension pg_cron with schema pg_catalog;
  end if;
  if not exists (select 1 from pg_extension where extname = 'pg_net')
    and exists (select 1 from pg_available_extensions where name = 'pg_net') then
    create extension pg_net with schema extensions;
  end if;

  if not exists (select 1 from pg_extension where extname = 'pg_cron')
    or not exists (select 1 from pg_extension where extname = 'pg_net')
    or not exists (select 1 from pg_namespace where nspname = 'vault') then
    raise notice 'pg_cron, pg_net or Vault missing: the sweep is not scheduled here';
    return;
  end if;

  -- The same name replaces an earlier schedule. The secrets are read at each run, so
  -- they may be created after this migration. pg_net's default timeout is 2 s; the
  -- sweep's budget is 45 s.
  execute $sql$
    select cron.schedule(
      'sync-server-status-sweep',
      '* * * * *',
      $job$
      select net.http_post(
        url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url')
          || '/functions/v1/sync-server-status',
        headers := jsonb_build_object(
          'Content-Type', 'application/json',
          'apikey', (select decrypted_secret from vault.decrypted_secrets where name = 'sweep_secret_key')
        ),
        body := '{}'::jsonb,
        timeout_milliseconds := 60000
      ) as request_id
      $job$
    )
  $sql$;
end
$migration$;
