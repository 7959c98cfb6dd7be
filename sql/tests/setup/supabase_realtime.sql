-- A minimal Supabase Realtime, for a database that is not a supabase/postgres image: the parts
-- Broadcast from the database uses. Optional: a database without it tests the "no Realtime"
-- path. Run as a superuser after supabase_roles.sql and before the install. Idempotent.
--   realtime.messages  the broadcast messages, RLS on, owned by supabase_realtime_admin (as on
--                      Supabase, not by the role that runs migrations); its SELECT policies decide
--                      who may join a private topic;
--   realtime.topic()   the topic being authorised (Realtime sets realtime.topic per check);
--   realtime.send()    inserts one message, as Supabase's does (a failure is a WARNING); owned by
--                      a superuser, as Supabase's (supabase_admin).
do $realtime_admin$ begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin nologin noinherit;
  end if;
end $realtime_admin$;
create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;
grant all on schema realtime to supabase_realtime_admin;
create table if not exists realtime.messages (
  id          uuid not null default gen_random_uuid(),
  topic       text not null,
  extension   text not null,
  payload     jsonb,
  event       text,
  private     boolean default false,
  updated_at  timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  primary key (id, inserted_at)
);
alter table realtime.messages enable row level security;
alter table realtime.messages owner to supabase_realtime_admin;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

create or replace function realtime.topic() returns text
language sql stable
as $$ select nullif(current_setting('realtime.topic', true), '')::text $$;
alter function realtime.topic() owner to supabase_realtime_admin;

create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  begin
    perform pg_catalog.set_config('realtime.topic', topic, true);
    insert into realtime.messages (payload, event, topic, private, extension)
    values (payload, event, topic, private, 'broadcast');
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end
$$;
-- Owned by the superuser running this file, as Supabase's is owned by supabase_admin (a superuser):
-- fred calls realtime.send only when a superuser or fred's owner owns it.
alter function realtime.send(jsonb, text, text, boolean) owner to current_user;
revoke all on function realtime.send(jsonb, text, text, boolean) from public;
grant execute on function realtime.send(jsonb, text, text, boolean) to postgres, service_role;

-- As on Supabase, the role that runs migrations may use Realtime and add policies to its table.
do $realtime_owner$ begin
  if exists (select 1 from pg_roles where rolname = 'fred_owner') then
    grant usage on schema realtime to fred_owner;
    grant execute on function realtime.send(jsonb, text, text, boolean) to fred_owner;
    if not pg_has_role('fred_owner', 'supabase_realtime_admin', 'member') then
      grant supabase_realtime_admin to fred_owner;
    end if;
  end if;
end $realtime_owner$;
