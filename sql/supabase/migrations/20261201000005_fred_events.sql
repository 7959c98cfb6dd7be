-- fred 0.2.0: change events and erasure (issue 14; shared by both installs, see
-- 20261201000001_fred_lifecycle.sql for the layout).
--
-- Valid inside CREATE/ALTER EXTENSION fred (run by a superuser) and as a plain migration run by a
-- role that is not a superuser. The platform's side (the policy on realtime.messages, the trigger on
-- auth.users) is in 20261201000006_fred_storage.sql, a plain migration for both installs.
--
-- 1. Change events. When a session is created, becomes someone's, changes status or
--    recording_status, or its summary is set, changed or cleared, one small payload goes out:
--      {"session_id", "room_name", "status", "recording_status", "has_summary", "changed": [...]}
--    never the transcript or the summary text. Always as pg_notify('fred_sessions', payload);
--    where realtime.send exists, also to the private Realtime topic fred:user:<user_id> of an owned
--    session. A value written again unchanged emits nothing. Emitting never fails the write: a
--    missing or broken Realtime is a WARNING, and the row is stored.
-- 2. Erasure. fred_delete_session(session_id) (the owner, or service_role) and the deletion of a
--    row of auth.users erase sessions: the row (transcript, summary, metadata, everything) goes at
--    once; the room sid is kept as a tombstone, with no personal data, so that no redelivered or
--    late event brings the session back; the recording object's location waits in fred.erasures
--    until syncd's retention job has deleted the object from S3 (fred.recordings_to_delete and
--    fred.mark_recording_deleted, whatever the retention age). Erasure emits a content-free event.
--    The engines need no change: a late event of an erased room is stopped at the ledger, where
--    both engines start (it is recorded as `ignored` and reported as `duplicate`).

-- ---------------------------------------------------------------------------------------------
-- Tables. Neither holds personal data: a LiveKit room sid is a random id, and an erasure row
-- keeps only where the recording object is, until it is gone.
create table if not exists fred.erased_rooms (
  room_sid  text primary key check (room_sid <> '' and length(room_sid) <= 256),
  erased_at timestamptz not null default now()
);
alter table fred.erased_rooms enable row level security;

create table if not exists fred.erasures (
  session_id   uuid primary key,
  bucket       text,
  key          text not null,
  requested_at timestamptz not null default now()
);
alter table fred.erasures enable row level security;
create index if not exists erasures_requested_idx on fred.erasures (requested_at, session_id);

-- Erasure scrubs room names from the ledger by room sid.
create index if not exists livekit_events_room_sid_idx on fred.livekit_events (room_sid);

revoke all on fred.erased_rooms, fred.erasures from public;
do $tables$
declare
  v_role text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role', 'fred_syncd'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('revoke all on fred.erased_rooms, fred.erasures from %I', v_role);
    end if;
  end loop;
  -- Only fred's functions touch them (Supabase's advisor, lint 0008): an explicit deny-all policy.
  if not exists (select 1 from pg_catalog.pg_policy where polrelid = 'fred.erased_rooms'::regclass) then
    create policy erased_rooms_no_direct_access on fred.erased_rooms as permissive for all to public
      using (false) with check (false);
  end if;
  if not exists (select 1 from pg_catalog.pg_policy where polrelid = 'fred.erasures'::regclass) then
    create policy erasures_no_direct_access on fred.erasures as permissive for all to public
      using (false) with check (false);
  end if;
end
$tables$;

-- ---------------------------------------------------------------------------------------------
-- Change events.

-- The payload: identity and state only, never the transcript or the summary text.
create or replace function fred.session_event(
  session_id uuid,
  room_name text,
  status text,
  recording_status text,
  has_summary boolean,
  changed text[]
) returns jsonb
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select pg_catalog.jsonb_build_object(
    'session_id', $1, 'room_name', $2, 'status', $3, 'recording_status', $4,
    'has_summary', coalesce($5, false), 'changed', pg_catalog.to_jsonb($6))
$$;

-- Realtime's half of sending an event: the owner's private topic, where realtime.send exists.
-- Never fails: a failure is a WARNING. SECURITY DEFINER: the writer needs no rights on Realtime.
-- (The extension's change-event trigger, in Rust, sends NOTIFY itself and calls this.)
-- realtime.send runs with fred's owner's rights, so it is called only when a superuser (Supabase's
-- supabase_admin) or fred's owner itself owns it: a role that may create a schema named realtime
-- where Realtime is not installed must not get its code run as fred's owner (42501 as a WARNING).
-- The arguments are cast to the checked signature, so no other overload is chosen.
create or replace function fred.realtime_send(owner uuid, payload jsonb) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  fn pg_catalog.regprocedure := pg_catalog.to_regprocedure('realtime.send(jsonb, text, text, boolean)');
  fn_owner pg_catalog.name;
begin
  if realtime_send.owner is null or fn is null then
    return;
  end if;
  select r.rolname into fn_owner
    from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
   where p.oid = fn and not r.rolsuper and r.rolname <> current_user;
  if found then
    raise warning 'fred: realtime.send is owned by %, neither a superuser nor fred''s owner: not called (42501); the change is stored',
      fn_owner;
    return;
  end if;
  begin
    perform realtime.send(realtime_send.payload::pg_catalog.jsonb, 'session_changed'::pg_catalog.text,
                          ('fred:user:' || realtime_send.owner::pg_catalog.text)::pg_catalog.text,
                          true::pg_catalog.bool);
  exception when others then
    raise warning 'fred: realtime.send failed (%): %; the change is stored', sqlstate, sqlerrm;
  end;
end
$$;

-- Sends one event: NOTIFY fred_sessions always; Realtime's private topic of the owner where
-- realtime.send exists. Never fails: each way out is tried on its own and a failure is a WARNING.
-- SECURITY DEFINER: the writer (fred_syncd, a user's API call) needs no rights on Realtime.
create or replace function fred.emit_session_event(owner uuid, payload jsonb) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  begin
    perform pg_catalog.pg_notify('fred_sessions', emit_session_event.payload::text);
  exception when others then
    raise warning 'fred: NOTIFY fred_sessions failed (%): %; the change is stored', sqlstate, sqlerrm;
  end;
  if emit_session_event.owner is not null
     and pg_catalog.to_regprocedure('realtime.send(jsonb, text, text, boolean)') is not null then
    perform fred.realtime_send(emit_session_event.owner, emit_session_event.payload);
  end if;
end
$$;

-- After a session is created or one of its watched fields changes (the triggers' WHEN clauses
-- leave out writes that change nothing watched, so a duplicate event or a no-op persist emits
-- nothing). A row that arrives with an earlier created_at is a restored one (pg_restore's COPY),
-- not a new session: it emits nothing. The extension replaces this function with the same rule
-- in Rust (extension/src/change_events.rs); the tests hold both to the same messages.
create or replace function fred.coaching_sessions_events() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_changed text[] := '{}';
begin
  if tg_op = 'INSERT' then
    v_changed := array['created'];
  else
    if new.user_id is distinct from old.user_id then
      v_changed := v_changed || 'user_id'::text;
    end if;
    if new.status is distinct from old.status then
      v_changed := v_changed || 'status'::text;
    end if;
    if new.recording_status is distinct from old.recording_status then
      v_changed := v_changed || 'recording_status'::text;
    end if;
    if new.summary is distinct from old.summary then
      v_changed := v_changed || 'summary'::text;
    end if;
    if pg_catalog.cardinality(v_changed) = 0 then
      return null;
    end if;
  end if;
  perform fred.emit_session_event(new.user_id,
    fred.session_event(new.id, new.room_name, new.status, new.recording_status, new.summary is not null, v_changed));
  return null;
end
$$;

create or replace trigger coaching_sessions_created
  after insert on fred.coaching_sessions
  for each row
  when (new.created_at = now())
  execute function fred.coaching_sessions_events();
create or replace trigger coaching_sessions_changed
  after update of user_id, status, recording_status, summary on fred.coaching_sessions
  for each row
  when (old.user_id is distinct from new.user_id or old.status is distinct from new.status
        or old.recording_status is distinct from new.recording_status or old.summary is distinct from new.summary)
  execute function fred.coaching_sessions_events();

-- ---------------------------------------------------------------------------------------------
-- Tombstones: an erased room's sid never gets a session again.

-- At the ledger, where both engines (and syncd's own events) start: an applicable event of an
-- erased room is recorded as `ignored` (without its room name) and the engine sees the id as
-- already taken, so it reports `duplicate` and creates nothing. Never an error, so syncd never
-- quarantines it. Only rows being applied now (applied_at is the default, now()): a restored
-- ledger row (pg_restore's COPY, with its own applied_at) is kept as it was.
create or replace function fred.livekit_events_tombstone() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select 1 from fred.erased_rooms r where r.room_sid = new.room_sid) then
    return new;
  end if;
  insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
  values (new.event_id, new.event_type, new.room_sid, null, new.created_at, 'ignored')
  on conflict (event_id) do nothing;
  return null;
end
$$;

create or replace trigger livekit_events_tombstone
  before insert on fred.livekit_events
  for each row
  when (new.room_sid is not null and new.outcome = 'applied' and new.applied_at = now())
  execute function fred.livekit_events_tombstone();

-- On the table, for every writer: a session never gets an erased room's sid. Only reached by a
-- race with the erasure itself (the event passed the ledger before the tombstone committed):
-- 40001, so the writer retries, and the retry stops at the ledger.
create or replace function fred.coaching_sessions_tombstone() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from fred.erased_rooms r where r.room_sid = new.room_sid) then
    raise exception 'fred: room % was erased', new.room_sid
      using errcode = '40001', hint = 'Retry: the event is then ignored.';
  end if;
  return new;
end
$$;

create or replace trigger coaching_sessions_tombstone
  before insert or update of room_sid on fred.coaching_sessions
  for each row
  when (new.room_sid is not null)
  execute function fred.coaching_sessions_tombstone();

-- ---------------------------------------------------------------------------------------------
-- Erasure.

-- Erases one session, without asking who calls (the callers below do). The row goes at once;
-- the room sid becomes a tombstone; the ledger and the egress claim keep no room name; a
-- recording object that may exist waits in fred.erasures for syncd's retention job. Emits a
-- content-free event. True when the session existed.
create or replace function fred.erase_session(session_id uuid) returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_sid    text;
  v_owner  uuid;
  v_bucket text;
  v_key    text;
  v_rec    text;
begin
  delete from fred.coaching_sessions s
   where s.id = erase_session.session_id
  returning s.room_sid, s.user_id, s.recording_bucket, s.recording_key, s.recording_status
    into v_sid, v_owner, v_bucket, v_key, v_rec;
  if not found then
    return false;
  end if;
  if v_sid is not null then
    insert into fred.erased_rooms (room_sid) values (v_sid) on conflict do nothing;
    update fred.livekit_events e set room_name = null where e.room_sid = v_sid and e.room_name is not null;
    update fred.egress_claims c set room_name = c.room_sid where c.room_sid = v_sid;
  end if;
  if v_key is not null and v_rec is distinct from 'deleted' then
    insert into fred.erasures (session_id, bucket, key)
    values (erase_session.session_id, v_bucket, v_key)
    on conflict do nothing;
  end if;
  perform fred.emit_session_event(v_owner,
    fred.session_event(erase_session.session_id, null, null, null, false, array['erased']));
  return true;
end
$$;

-- The app's erasure: the owner, or a trusted role (service_role), erases a session. Someone
-- else's id, like a missing one, gives false and erases nothing.
create or replace function fred.delete_session(session_id uuid) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id uuid;
begin
  if fred.caller_is_user() then
    select s.id into v_id
      from fred.coaching_sessions s
     where s.id = delete_session.session_id and s.user_id = fred.current_uid()
       for update;
  else
    select s.id into v_id from fred.coaching_sessions s where s.id = delete_session.session_id for update;
  end if;
  if v_id is null then
    return false;
  end if;
  return fred.erase_session(v_id);
end
$$;

create or replace function public.fred_delete_session(session_id uuid) returns boolean
language sql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$ select fred.delete_session($1) $$;

-- When a Supabase user is deleted, their sessions are erased the same way (the trigger on
-- auth.users is created by 20261201000006_fred_storage.sql where auth.users exists).
create or replace function fred.auth_user_deleted() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id uuid;
begin
  for v_id in select s.id from fred.coaching_sessions s where s.user_id = old.id order by s.id for update loop
    perform fred.erase_session(v_id);
  end loop;
  return null;
end
$$;

-- Retention, now also for erasures: an erased session's recording object is due whatever its
-- age, and comes first. `days` is checked as before.
create or replace function fred.recordings_to_delete(days integer, max_rows integer default 200)
returns table (session_id uuid, bucket text, key text)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_max integer := greatest(1, least(1000, coalesce(recordings_to_delete.max_rows, 200)));
begin
  perform fred.check_days('days', recordings_to_delete.days);
  return query
  select q.session_id, q.bucket, q.key
    from (
      (select e.session_id, e.bucket, e.key, 0 as pass, e.requested_at as due
         from fred.erasures e
        order by e.requested_at, e.session_id
        limit v_max)
      union all
      (select s.id, s.recording_bucket, s.recording_key, 1, coalesce(s.ended_at, s.started_at, s.created_at)
         from fred.coaching_sessions s
        where s.recording_key is not null
          and coalesce(s.recording_status, '') <> 'deleted'
          and coalesce(s.ended_at, s.started_at, s.created_at) < now() - make_interval(days => recordings_to_delete.days)
        order by coalesce(s.ended_at, s.started_at, s.created_at)
        limit v_max)) q
   order by q.pass, q.due
   limit v_max;
end
$$;

-- Called only after DeleteObject succeeded: an erasure is finished (its bookkeeping row goes),
-- or an old recording is marked deleted.
create or replace function fred.mark_recording_deleted(session_id uuid) returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  with erased as (
    delete from fred.erasures e where e.session_id = mark_recording_deleted.session_id
    returning 1),
  deleted as (
    update fred.coaching_sessions s
       set recording_status = 'deleted', recording_url = null, recording_key = null, recording_bucket = null,
           recording_bytes = null, recording_duration_ms = null, recording_verified_at = null,
           recording_error = null, updated_at = now()
     where s.id = mark_recording_deleted.session_id and s.recording_key is not null
    returning 1)
  select exists (select 1 from erased) or exists (select 1 from deleted)
$$;

-- ---------------------------------------------------------------------------------------------
-- Grants: search_path on every function of ours, nothing for PUBLIC or anon (as in
-- 20261201000002_fred_security.sql), then exactly what each role needs.
do $functions$
declare
  v_fn regprocedure;
begin
  for v_fn in
    select p.oid::regprocedure
      from pg_catalog.pg_proc p
     where p.pronamespace = 'fred'::regnamespace
        or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%')
     order by p.oid
  loop
    execute pg_catalog.format('alter function %s set search_path = pg_catalog, pg_temp', v_fn);
    execute pg_catalog.format('revoke all on function %s from public', v_fn);
    if exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
      execute pg_catalog.format('revoke all on function %s from anon', v_fn);
    end if;
  end loop;
end
$functions$;

do $grants$
declare
  v_role text;
  v_fn   text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role', 'fred_syncd'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      foreach v_fn in array array['fred.session_event(uuid, text, text, text, boolean, text[])',
                                  'fred.emit_session_event(uuid, jsonb)', 'fred.realtime_send(uuid, jsonb)',
                                  'fred.coaching_sessions_events()',
                                  'fred.livekit_events_tombstone()', 'fred.coaching_sessions_tombstone()',
                                  'fred.erase_session(uuid)', 'fred.auth_user_deleted()',
                                  'fred.delete_session(uuid)', 'public.fred_delete_session(uuid)'] loop
        execute pg_catalog.format('revoke all on function %s from %I', v_fn, v_role);
      end loop;
    end if;
  end loop;
  foreach v_role in array array['authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function fred.delete_session(uuid) to %I', v_role);
      execute pg_catalog.format('grant execute on function public.fred_delete_session(uuid) to %I', v_role);
    end if;
  end loop;
end
$grants$;

-- Backups: mark the new tables for pg_dump in the extension (see 20261201000001_fred_lifecycle.sql).
select fred.mark_tables_for_dump();
