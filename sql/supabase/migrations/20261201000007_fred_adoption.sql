-- fred 0.2.0: adopting fred (shared by both installs; see 20261201000001_fred_lifecycle.sql for the layout).
--   1. service_role (or any trusted caller) may name the owner in fred_persist_transcript, so a
--      server-side agent that persists before any session exists does not leave an ownerless row;
--      for a signed-in user it must be their own id or NULL (42501 otherwise);
--   2. a write mode: `users` (default) lets signed-in users upsert and persist their own
--      sessions; `server_only` takes both writes away from them (42501) while reads stay
--      owner-only. One statement switches it: select fred.set_write_mode('server_only').

-- ---------------------------------------------------------------------------------------------
-- Project settings, one row each; no row means the default. The install inserts none, so a
-- backup never restores a row twice.
create table if not exists fred.settings (
  name       text primary key check (name in ('write_mode')),
  value      text not null,
  updated_at timestamptz not null default now(),
  check (name <> 'write_mode' or value in ('users', 'server_only'))
);
alter table fred.settings enable row level security;
drop policy if exists settings_no_direct_access on fred.settings;
create policy settings_no_direct_access on fred.settings as permissive for all to public using (false) with check (false);
revoke all on fred.settings from public;

create or replace function fred.write_mode() returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select coalesce((select s.value from fred.settings s where s.name = 'write_mode'), 'users') $$;

-- Switches the write mode; returns the mode now in force. For the project's owner and
-- service_role (dashboard SQL editor, a migration, or a server with the service key).
create or replace function fred.set_write_mode(mode text) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if set_write_mode.mode is null or set_write_mode.mode not in ('users', 'server_only') then
    raise exception 'fred: the write mode must be ''users'' or ''server_only'', not %', coalesce(set_write_mode.mode, 'NULL')
      using errcode = '22023';
  end if;
  insert into fred.settings as s (name, value) values ('write_mode', set_write_mode.mode)
  on conflict (name) do update set value = excluded.value, updated_at = now()
   where s.value is distinct from excluded.value;
  return fred.write_mode();
end
$$;

-- 42501 for a signed-in user when the project takes writes from the server only.
create or replace function fred.check_user_may_write() returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if fred.write_mode() = 'server_only' then
    raise exception 'fred: this project takes session writes from its server only (write mode server_only)'
      using errcode = '42501';
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- fred_upsert_session: as in 0.2.0's security file, plus the write mode.
create or replace function fred.upsert_session(
  room_name text,
  user_id uuid default null,
  call_type text default null,
  metadata jsonb default null
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user  boolean := fred.caller_is_user();
  v_owner uuid := upsert_session.user_id;
  v_id    uuid;
  v_cur   uuid;
begin
  perform fred.check_room_name(upsert_session.room_name);
  perform fred.check_outcome(call_type => upsert_session.call_type, metadata => upsert_session.metadata);
  if v_user then
    perform fred.check_user_may_write();
    if v_owner is not null and v_owner <> fred.require_uid() then
      raise exception 'fred: user_id must be the caller''s own' using errcode = '42501';
    end if;
    v_owner := fred.require_uid();
  end if;

  perform fred.lock_room(upsert_session.room_name);
  if v_user then
    perform fred.check_room_owner(upsert_session.room_name, v_owner);
  end if;
  select s.id, s.user_id into v_id, v_cur
    from fred.coaching_sessions s
   where s.room_name = upsert_session.room_name and s.status = 'active'
   order by s.created_at desc
   limit 1
   for update;

  if v_id is null then
    insert into fred.coaching_sessions as s (room_name, user_id, call_type, metadata)
    values (upsert_session.room_name, v_owner, upsert_session.call_type, upsert_session.metadata)
    returning s.id into v_id;
    return v_id;
  end if;

  -- A session without an owner cannot be claimed by a user.
  if v_user and v_cur is distinct from v_owner then
    raise exception 'fred: the session for room % belongs to another user', upsert_session.room_name
      using errcode = '42501';
  end if;
  update fred.coaching_sessions s
     set user_id    = coalesce(v_owner, s.user_id),
         call_type  = coalesce(upsert_session.call_type, s.call_type),
         metadata   = coalesce(upsert_session.metadata, s.metadata),
         updated_at = now()
   where s.id = v_id
     and (s.user_id, s.call_type, s.metadata) is distinct from
         (coalesce(v_owner, s.user_id), coalesce(upsert_session.call_type, s.call_type),
          coalesce(upsert_session.metadata, s.metadata));
  return v_id;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- fred_persist_transcript gains `user_id`. The six-argument form is replaced, not overloaded (an
-- overload with the same defaults would make PostgREST's named-argument calls ambiguous); every
-- call written for 0.1.0 still resolves to it.
drop function if exists public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text);
drop function if exists fred.persist_transcript(text, jsonb, text, jsonb, jsonb, text);

create or replace function fred.persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null,
  user_id uuid default null
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user    boolean := fred.caller_is_user();
  v_owner   uuid := persist_transcript.user_id;
  v_entries integer;
  v_id      uuid;
  v_cur     uuid;
begin
  perform fred.check_room_name(persist_transcript.room_name);
  -- Caps and shape: the engine (Rust in the extension) raises 22001 or 22023. The table's
  -- trigger checks again, for every writer.
  v_entries := fred.check_transcript(persist_transcript.transcript);
  perform fred.check_outcome(persist_transcript.call_type, persist_transcript.summary,
                             persist_transcript.decisions, persist_transcript.next_actions);
  if v_user then
    perform fred.check_user_may_write();
    if v_owner is not null and v_owner <> fred.require_uid() then
      raise exception 'fred: user_id must be the caller''s own' using errcode = '42501';
    end if;
    v_owner := fred.require_uid();
  end if;

  perform fred.lock_room(persist_transcript.room_name);
  -- A room name owned by one user is never written for another, whoever names the owner.
  if v_owner is not null then
    perform fred.check_room_owner(persist_transcript.room_name, v_owner);
  end if;
  select s.id, s.user_id into v_id, v_cur
    from fred.coaching_sessions s
   where s.room_name = persist_transcript.room_name
   order by s.created_at desc
   limit 1
   for update;

  if v_id is null then
    insert into fred.coaching_sessions as s
      (room_name, user_id, transcript_json, transcript_entries, summary, decisions, next_actions, call_type)
    values (persist_transcript.room_name, v_owner, persist_transcript.transcript, v_entries,
            persist_transcript.summary, persist_transcript.decisions,
            persist_transcript.next_actions, persist_transcript.call_type)
    returning s.id into v_id;
    return v_id;
  end if;

  -- A user may not claim a session without an owner; a trusted caller that names the owner may.
  if v_user and v_cur is distinct from v_owner then
    raise exception 'fred: the session for room % belongs to another user', persist_transcript.room_name
      using errcode = '42501';
  end if;
  -- A repeat of the same call changes nothing, not even updated_at.
  update fred.coaching_sessions s
     set transcript_json    = persist_transcript.transcript,
         transcript_entries = v_entries,
         summary            = coalesce(persist_transcript.summary, s.summary),
         decisions          = coalesce(persist_transcript.decisions, s.decisions),
         next_actions       = coalesce(persist_transcript.next_actions, s.next_actions),
         call_type          = coalesce(persist_transcript.call_type, s.call_type),
         user_id            = coalesce(s.user_id, v_owner),
         updated_at         = now()
   where s.id = v_id
     and (s.transcript_json, s.summary, s.decisions, s.next_actions, s.call_type, s.user_id) is distinct from
         (persist_transcript.transcript,
          coalesce(persist_transcript.summary, s.summary),
          coalesce(persist_transcript.decisions, s.decisions),
          coalesce(persist_transcript.next_actions, s.next_actions),
          coalesce(persist_transcript.call_type, s.call_type),
          coalesce(s.user_id, v_owner));
  return v_id;
end
$$;

create or replace function public.fred_persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null,
  user_id uuid default null
) returns uuid
language sql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$ select fred.persist_transcript($1, $2, $3, $4, $5, $6, $7) $$;

-- ---------------------------------------------------------------------------------------------
-- Privileges for what this file adds or replaced.
do $grants$
declare
  v_role text;
  v_fn   text;
begin
  foreach v_fn in array array['fred.settings'] loop
    foreach v_role in array array['anon', 'authenticated', 'service_role', 'fred_syncd'] loop
      if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
        execute pg_catalog.format('revoke all on table %s from %I', v_fn, v_role);
      end if;
    end loop;
  end loop;
  foreach v_fn in array array['fred.write_mode()', 'fred.set_write_mode(text)', 'fred.check_user_may_write()',
                              'fred.persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)',
                              'public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)'] loop
    execute pg_catalog.format('alter function %s set search_path = pg_catalog, pg_temp', v_fn);
    execute pg_catalog.format('revoke all on function %s from public', v_fn);
    foreach v_role in array array['anon', 'authenticated', 'service_role', 'fred_syncd'] loop
      if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
        execute pg_catalog.format('revoke all on function %s from %I', v_fn, v_role);
      end if;
    end loop;
  end loop;
  foreach v_role in array array['authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function %s to %I',
                                'fred.persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)', v_role);
      execute pg_catalog.format('grant execute on function %s to %I',
                                'public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)', v_role);
    end if;
  end loop;
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    execute 'grant execute on function fred.set_write_mode(text) to service_role';
  end if;
end
$grants$;

-- Backups: mark the new table for pg_dump in the extension (see 20261201000001_fred_lifecycle.sql).
select fred.mark_tables_for_dump();
