-- Supabase's API roles and auth.uid(), for a database that is not a supabase/postgres image.
-- Run as a superuser before either install. Idempotent.
do $fixture$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$fixture$;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
-- As on Supabase, the role that runs migrations may use auth.uid().
do $owner$ begin
  if exists (select 1 from pg_roles where rolname = 'fred_owner') then
    grant usage on schema auth to fred_owner;
  end if;
end $owner$;
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select nullif(coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                         nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'), '')::uuid
$$;
create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
$$;
grant usage on schema public to anon, authenticated, service_role;

-- A minimal auth.users, owned by supabase_auth_admin as on Supabase. As there, the role that runs
-- migrations may put a trigger on it (fred erases a deleted user's sessions); sql/tests/roles/
-- hosted_platform.sh checks a role that may not.
do $auth_admin$ begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin nologin noinherit;
  end if;
end $auth_admin$;
create table if not exists auth.users (
  id uuid primary key,
  email text,
  created_at timestamptz default now()
);
alter table auth.users owner to supabase_auth_admin;
grant select, insert, update, delete on auth.users to service_role;
do $auth_owner$ begin
  if exists (select 1 from pg_roles where rolname = 'fred_owner') then
    grant select, references, trigger on auth.users to fred_owner;
  end if;
end $auth_owner$;

-- A minimal Supabase Storage: the objects table, with RLS, owned by supabase_storage_admin as on
-- hosted Supabase (not by the role that runs migrations). fred_owner, the migrating role of the
-- test drivers, may act as supabase_storage_admin, so it may create the recordings policy (the
-- allowed case); sql/tests/roles/hosted_storage.sh checks a migrating role that may not.
do $storage_admin$ begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit;
  end if;
end $storage_admin$;
create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;
create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text not null,
  name text not null,
  owner uuid,
  created_at timestamptz default now()
);
alter table storage.objects enable row level security;
alter table storage.objects owner to supabase_storage_admin;
grant select, insert, update, delete on storage.objects to anon, authenticated, service_role;
do $storage_owner$ begin
  if exists (select 1 from pg_roles where rolname = 'fred_owner') then
    grant usage on schema storage to fred_owner;
    if not pg_has_role('fred_owner', 'supabase_storage_admin', 'member') then
      grant supabase_storage_admin to fred_owner;
    end if;
  end if;
end $storage_owner$;
