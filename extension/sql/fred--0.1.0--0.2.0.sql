-- fred 0.1.0 -> 0.2.0. Built by extension/build-upgrade.sh from sql/releases: do not edit.
\echo Use "ALTER EXTENSION fred UPDATE TO '0.2.0'" to load this file. \quit

-- extension/upgrade/fred--0.1.0--0.2.0.sql
-- The Rust side of fred 0.1.0 -> 0.2.0: the functions the compiled engine adds or replaces, as
-- pgrx generates them in fred--0.2.0.sql (the shared files that follow use them).

-- fred.check_transcript: was a SQL wrapper over check_transcript_text(transcript::text); now
-- Rust reads the jsonb's binary form. check_transcript_text stays, unchanged.
CREATE OR REPLACE FUNCTION "check_transcript"(
	"transcript" jsonb /* Option < jsonb :: RawJsonb > */
) RETURNS INT /* i32 */
STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_transcript_wrapper';

CREATE  FUNCTION "transcript_digest"(
	"transcript" jsonb /* jsonb :: RawJsonb */
) RETURNS bytea /* Vec < u8 > */
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'transcript_digest_wrapper';

-- fred.apply_event_batch: fred.apply_livekit_events's fast path, a batch in a few statements.
CREATE  FUNCTION "apply_event_batch"(
	"events" jsonb /* Option < pgrx :: JsonB > */
) RETURNS TEXT[] /* Vec < String > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'apply_event_batch_wrapper';

-- sql/supabase/migrations/20261201000001_fred_lifecycle.sql
-- fred 0.2.0: the system of record (shared by both installs, like *_fred_core.sql).
--
-- Released migration files are never edited: each release adds new files. Files named
-- *_fred_engine.sql belong to the SQL install only; *_fred_storage.sql is applied to both installs
-- as a plain migration; every other file is also part of the extension (CREATE EXTENSION includes it,
-- and fred--OLD--NEW.sql is built from the release's files by extension/build-upgrade.sh).

-- What is installed: the same answer on both installs.
create or replace function fred.version() returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select '0.2.0'::text $$;
revoke all on function fred.version() from public;
do $version_grants$
declare
  v_role text;
begin
  foreach v_role in array array['fred_syncd', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function fred.version() to %I', v_role);
    end if;
  end loop;
end
$version_grants$;

-- Backups: in the extension, fred's tables belong to the extension, and pg_dump writes only
-- CREATE EXTENSION for them unless they are marked. This marks every table (and any standalone
-- sequence) of the extension so that pg_dump and pg_restore keep every row; every release file
-- that adds a table calls it again at its end. The SQL install's tables are ordinary tables, which
-- pg_dump always dumps: there (no extension row) it does nothing. pg_extension_config_dump works
-- only inside CREATE/ALTER EXTENSION, which is the only place fred calls this from.
create or replace function fred.mark_tables_for_dump() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_rel regclass;
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'fred') then
    return;
  end if;
  for v_rel in
    select c.oid::regclass
      from pg_catalog.pg_class c
      join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
      join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'fred'
     where c.relkind in ('r', 'S', 'p')
     order by c.oid
  loop
    perform pg_catalog.pg_extension_config_dump(v_rel, '');
  end loop;
end
$$;
revoke all on function fred.mark_tables_for_dump() from public;
select fred.mark_tables_for_dump();

-- sql/supabase/migrations/20261201000002_fred_security.sql
-- fred 0.2.0: security (shared by both installs; see 20261201000001_fred_lifecycle.sql for the layout).
--
-- Valid inside CREATE/ALTER EXTENSION fred (run by a superuser) and as a plain migration run by a
-- role that is not a superuser. Issue 11:
--   1. every function runs with search_path = pg_catalog, pg_temp (pg_temp last: with '' PostgreSQL
--      still resolves types and relations in the caller's pg_temp first);
--   2. a room name owned by a user stays theirs, whatever the status of its sessions;
--   3. a cap on every writable field, enforced on the table itself (trigger) for every writer;
--   4. maintenance functions refuse nonsense arguments (22023, nothing changes);
--   5. no function of ours is executable by PUBLIC;
--   7. the public API is thin SECURITY INVOKER wrappers over SECURITY DEFINER functions in the
--      unexposed schema fred; the deny-all tables have explicit policies;
--   8. fred_get_session checks the caller first, then looks up.
-- And issue 12: fred.apply_syncd_event validates its input like LiveKit's events (class 22).

-- ---------------------------------------------------------------------------------------------
-- Caps on the outcome fields: 22001 over a cap (naming the field), 22023 for a wrong type.
-- NULL means "not given" and passes. Shared by the API functions and the table's trigger.
create or replace function fred.check_outcome(
  call_type text default null,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  metadata jsonb default null
) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name  text;
  v_value jsonb;
  v_n     integer;
begin
  if check_outcome.call_type is not null and pg_catalog.char_length(check_outcome.call_type) > 64 then
    raise exception 'fred: call_type is % characters; the cap is 64', pg_catalog.char_length(check_outcome.call_type)
      using errcode = '22001';
  end if;
  if check_outcome.summary is not null and pg_catalog.octet_length(check_outcome.summary) > 65536 then
    raise exception 'fred: summary is % bytes; the cap is 65536', pg_catalog.octet_length(check_outcome.summary)
      using errcode = '22001';
  end if;
  foreach v_name in array array['decisions', 'next_actions'] loop
    v_value := case v_name when 'decisions' then check_outcome.decisions else check_outcome.next_actions end;
    continue when v_value is null;
    if pg_catalog.jsonb_typeof(v_value) <> 'array' then
      raise exception 'fred: % must be a JSON array', v_name using errcode = '22023';
    end if;
    v_n := pg_catalog.jsonb_array_length(v_value);
    if v_n > 200 then
      raise exception 'fred: % has % entries; the cap is 200', v_name, v_n using errcode = '22001';
    end if;
    v_n := pg_catalog.octet_length(v_value::text);
    if v_n > 65536 then
      raise exception 'fred: % is % bytes; the cap is 65536', v_name, v_n using errcode = '22001';
    end if;
  end loop;
  if check_outcome.metadata is not null then
    if pg_catalog.jsonb_typeof(check_outcome.metadata) <> 'object' then
      raise exception 'fred: metadata must be a JSON object' using errcode = '22023';
    end if;
    v_n := pg_catalog.octet_length(check_outcome.metadata::text);
    if v_n > 16384 then
      raise exception 'fred: metadata is % bytes; the cap is 16384', v_n using errcode = '22001';
    end if;
  end if;
end
$$;

-- The table holds every writer to the rules: the API, the engines, a service_role or dashboard
-- UPDATE, a future function. Only the checked columns fire it, and only changed values are
-- checked, so the engines' event updates cost nothing. The transcript check is the engine's
-- (Rust in the extension), and transcript_entries always agrees with the transcript.
-- SECURITY DEFINER: the checks run whatever the writer may execute.
create or replace function fred.coaching_sessions_guard() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_insert boolean := tg_op = 'INSERT';
begin
  if v_insert then
    perform fred.check_room_name(new.room_name);
    perform fred.check_outcome(new.call_type, new.summary, new.decisions, new.next_actions, new.metadata);
  else
    if new.room_name is distinct from old.room_name then
      perform fred.check_room_name(new.room_name);
    end if;
    perform fred.check_outcome(
      case when new.call_type is distinct from old.call_type then new.call_type end,
      case when new.summary is distinct from old.summary then new.summary end,
      case when new.decisions is distinct from old.decisions then new.decisions end,
      case when new.next_actions is distinct from old.next_actions then new.next_actions end,
      case when new.metadata is distinct from old.metadata then new.metadata end);
  end if;
  if not v_insert then
    if new.transcript_json is not distinct from old.transcript_json
       and new.transcript_entries is not distinct from old.transcript_entries then
      return new;
    end if;
  end if;
  new.transcript_entries := case when new.transcript_json is null then 0
                                 else fred.check_transcript(new.transcript_json) end;
  return new;
end
$$;

create or replace trigger coaching_sessions_guard
  before insert or update of room_name, call_type, summary, decisions, next_actions, metadata,
                             transcript_json, transcript_entries
  on fred.coaching_sessions
  for each row execute function fred.coaching_sessions_guard();

-- ---------------------------------------------------------------------------------------------
-- The app API, in fred (not exposed over the API), SECURITY DEFINER. A room name that has a
-- session owned by a user belongs to that user, whatever the status of its sessions.

-- 42501 unless no session of the room name is owned by someone other than `owner`.
-- Call with the room locked (fred.lock_room).
create or replace function fred.check_room_owner(room_name text, owner uuid) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from fred.coaching_sessions s
              where s.room_name = check_room_owner.room_name
                and s.user_id is not null and s.user_id <> check_room_owner.owner) then
    raise exception 'fred: room % belongs to another user', check_room_owner.room_name using errcode = '42501';
  end if;
end
$$;

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

  -- A session without an owner cannot be claimed.
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

create or replace function fred.persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user    boolean := fred.caller_is_user();
  v_uid     uuid;
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
    v_uid := fred.require_uid();
  end if;

  perform fred.lock_room(persist_transcript.room_name);
  if v_user then
    perform fred.check_room_owner(persist_transcript.room_name, v_uid);
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
    values (persist_transcript.room_name, v_uid, persist_transcript.transcript, v_entries,
            persist_transcript.summary, persist_transcript.decisions,
            persist_transcript.next_actions, persist_transcript.call_type)
    returning s.id into v_id;
    return v_id;
  end if;

  if v_user and v_cur is distinct from v_uid then
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
         updated_at         = now()
   where s.id = v_id
     and (s.transcript_json, s.summary, s.decisions, s.next_actions, s.call_type) is distinct from
         (persist_transcript.transcript,
          coalesce(persist_transcript.summary, s.summary),
          coalesce(persist_transcript.decisions, s.decisions),
          coalesce(persist_transcript.next_actions, s.next_actions),
          coalesce(persist_transcript.call_type, s.call_type));
  return v_id;
end
$$;

-- NULL both when the session does not exist and when the caller may not see it. The caller is
-- checked first; then one lookup by id and owner, the same path for any id.
create or replace function fred.get_session(session_id uuid) returns fred.coaching_sessions
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_uid uuid;
  r     fred.coaching_sessions;
begin
  if fred.caller_is_user() then
    v_uid := fred.current_uid();
    if v_uid is null then
      return null;
    end if;
    select s.* into r from fred.coaching_sessions s where s.id = get_session.session_id and s.user_id = v_uid;
  else
    select s.* into r from fred.coaching_sessions s where s.id = get_session.session_id;
  end if;
  return r;
end
$$;

create or replace function fred.list_sessions(max_rows integer default 20, before timestamptz default null)
returns setof fred.coaching_sessions
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user boolean := fred.caller_is_user();
  v_uid  uuid;
begin
  if v_user then
    v_uid := fred.current_uid();
    if v_uid is null then
      return;
    end if;
  end if;
  return query
    select s.*
      from fred.coaching_sessions s
     where (not v_user or s.user_id = v_uid)
       and (list_sessions.before is null or s.created_at < list_sessions.before)
     order by s.created_at desc, s.id desc
     limit greatest(1, least(1000, coalesce(list_sessions.max_rows, 20)));
end
$$;

-- The exposed API: thin SECURITY INVOKER wrappers (Supabase's advisor, lints 0028/0029).
-- Same names, parameters, defaults and volatility as in 0.1.0.
create or replace function public.fred_upsert_session(
  room_name text,
  user_id uuid default null,
  call_type text default null,
  metadata jsonb default null
) returns uuid
language sql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$ select fred.upsert_session($1, $2, $3, $4) $$;

create or replace function public.fred_persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null
) returns uuid
language sql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$ select fred.persist_transcript($1, $2, $3, $4, $5, $6) $$;

create or replace function public.fred_get_session(session_id uuid) returns fred.coaching_sessions
language sql stable security invoker
set search_path = pg_catalog, pg_temp
as $$ select * from fred.get_session($1) $$;

create or replace function public.fred_list_sessions(max_rows integer default 20, before timestamptz default null)
returns setof fred.coaching_sessions
language sql stable security invoker
set search_path = pg_catalog, pg_temp
as $$ select * from fred.list_sessions($1, $2) $$;

-- ---------------------------------------------------------------------------------------------
-- syncd's own events, validated like LiveKit's (issue 12): a bad one fails with 22023, never
-- with a class-23 constraint violation.
create or replace function fred.apply_syncd_event(event jsonb) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_type    text;
  v_id      text;
  v_room    jsonb;
  v_sid     text;
  v_name    text;
  v_key     text;
  v_session uuid;
  r         text;
begin
  if event is null or jsonb_typeof(event) <> 'object' then
    raise exception 'fred: a syncd event must be a JSON object' using errcode = '22023';
  end if;
  v_type := case when jsonb_typeof(event -> 'event') = 'string' then event ->> 'event' end;
  if v_type is null or v_type not in ('syncd_egress_started', 'syncd_egress_failed', 'syncd_recording_disabled') then
    raise exception 'fred: not a syncd event' using errcode = '22023';
  end if;
  if jsonb_typeof(event -> 'id') is distinct from 'string' or event ->> 'id' = '' or length(event ->> 'id') > 256 then
    raise exception 'fred: a syncd event needs a string "id" of 1 to 256 characters' using errcode = '22023';
  end if;
  v_id := event ->> 'id';
  v_room := event -> 'room';
  if v_room is null or jsonb_typeof(v_room) <> 'object' then
    raise exception 'fred: a syncd event needs an object "room"' using errcode = '22023';
  end if;
  foreach v_key in array array['sid', 'name'] loop
    if v_room -> v_key is not null and v_room -> v_key <> 'null'::jsonb
       and (jsonb_typeof(v_room -> v_key) <> 'string' or length(v_room ->> v_key) > 256) then
      raise exception 'fred: room.% must be a string of at most 256 characters', v_key using errcode = '22023';
    end if;
  end loop;
  v_sid := nullif(v_room ->> 'sid', '');
  v_name := coalesce(nullif(v_room ->> 'name', ''), v_sid);
  if v_sid is null then
    raise exception 'fred: a syncd event needs room.sid' using errcode = '22023';
  end if;
  foreach v_key in array array['egress_id', 'error'] loop
    if event -> v_key is not null and event -> v_key <> 'null'::jsonb and jsonb_typeof(event -> v_key) <> 'string' then
      raise exception 'fred: % must be a string', v_key using errcode = '22023';
    end if;
  end loop;
  if length(event ->> 'egress_id') > 256 then
    raise exception 'fred: egress_id is at most 256 characters' using errcode = '22023';
  end if;

  insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
  values (v_id, v_type, v_sid, v_name, now(), 'applied')
  on conflict (event_id) do nothing
  returning event_id into r;
  if r is null then
    return 'duplicate';
  end if;
  -- The room's own room_started was spooled before this, so the session normally exists.
  v_session := fred.session_for(v_sid, v_name, null);
  if v_type = 'syncd_egress_started' then
    update fred.coaching_sessions s
       set egress_id        = coalesce(s.egress_id, nullif(event ->> 'egress_id', '')),
           recording_status = case when s.egress_status is null then 'starting' else s.recording_status end,
           recording_error  = case when s.egress_status is null then null else s.recording_error end,
           updated_at       = now()
     where s.id = v_session;
  elsif v_type = 'syncd_egress_failed' then
    update fred.coaching_sessions s
       set recording_status = 'unavailable',
           recording_error  = left(coalesce(event ->> 'error', 'egress start failed'), 1000),
           updated_at       = now()
     where s.id = v_session and s.egress_status is null and s.egress_id is null;
  else
    update fred.coaching_sessions s
       set recording_status = 'disabled', updated_at = now()
     where s.id = v_session and s.recording_status is null and s.egress_status is null;
  end if;
  return 'applied';
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Maintenance: retention takes at least 1 day, stale and reconcile thresholds at least 1 minute.
-- Anything else (NULL included) is 22023 and changes nothing.
create or replace function fred.check_days(name text, days integer) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if days is null or days < 1 then
    raise exception 'fred: % must be at least 1 day (got %)', name, coalesce(days::text, 'NULL') using errcode = '22023';
  end if;
end
$$;

create or replace function fred.check_quiet(name text, quiet interval) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if quiet is null or quiet < interval '1 minute' then
    raise exception 'fred: % must be at least 1 minute (got %)', name, coalesce(quiet::text, 'NULL') using errcode = '22023';
  end if;
end
$$;

create or replace function fred.reconcile_candidates(quiet interval, max_rows integer default 200)
returns table (session_id uuid, room_name text, room_sid text, egress_id text)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform fred.check_quiet('quiet', reconcile_candidates.quiet);
  return query
  select s.id, s.room_name, s.room_sid, s.egress_id
    from fred.coaching_sessions s
   where (s.recording_status in ('starting', 'recording')
          and coalesce(s.last_event_at, s.updated_at) < now() - reconcile_candidates.quiet)
      or (s.status = 'ended' and s.ended_at < now() - reconcile_candidates.quiet
          and s.egress_id is not null
          and coalesce(s.egress_status, '') not in ('EGRESS_COMPLETE', 'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED')
          and coalesce(s.recording_status, '') not in ('disabled', 'unavailable', 'lost', 'deleted'))
   order by s.updated_at
   limit greatest(1, least(1000, coalesce(reconcile_candidates.max_rows, 200)));
end
$$;

create or replace function fred.close_stale_sessions(quiet interval) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_n integer;
begin
  perform fred.check_quiet('quiet', close_stale_sessions.quiet);
  with closed as (
    update fred.coaching_sessions s
       set status = 'ended',
           ended_at = coalesce(s.last_event_at, s.started_at, s.created_at),
           end_reason = 'stale',
           updated_at = now()
     where s.status = 'active'
       and coalesce(s.last_event_at, s.started_at, s.created_at) < now() - close_stale_sessions.quiet
    returning 1)
  select count(*)::integer into v_n from closed;
  return v_n;
end
$$;

create or replace function fred.recordings_to_delete(days integer, max_rows integer default 200)
returns table (session_id uuid, bucket text, key text)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform fred.check_days('days', recordings_to_delete.days);
  return query
  select s.id, s.recording_bucket, s.recording_key
    from fred.coaching_sessions s
   where s.recording_key is not null
     and coalesce(s.recording_status, '') <> 'deleted'
     and coalesce(s.ended_at, s.started_at, s.created_at) < now() - make_interval(days => recordings_to_delete.days)
   order by coalesce(s.ended_at, s.started_at, s.created_at)
   limit greatest(1, least(1000, coalesce(recordings_to_delete.max_rows, 200)));
end
$$;

create or replace function fred.purge_transcripts(days integer) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_n integer;
begin
  perform fred.check_days('days', purge_transcripts.days);
  with purged as (
    update fred.coaching_sessions s
       set transcript_json = null, transcript_entries = 0, summary = null, decisions = null, next_actions = null,
           updated_at = now()
     where (s.transcript_json is not null or s.summary is not null or s.decisions is not null or s.next_actions is not null)
       and coalesce(s.ended_at, s.started_at, s.created_at) < now() - make_interval(days => purge_transcripts.days)
    returning 1)
  select count(*)::integer into v_n from purged;
  return v_n;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Tables that only fred's functions touch: an explicit deny-all policy says so (Supabase's
-- advisor, lint 0008 rls_enabled_no_policy). Owners and BYPASSRLS roles are not affected.
do $deny$
declare
  v_rel regclass;
begin
  for v_rel in
    select c.oid::regclass
      from pg_catalog.pg_class c
     where c.relnamespace = 'fred'::regnamespace and c.relkind in ('r', 'p') and c.relrowsecurity
       and not exists (select 1 from pg_catalog.pg_policy p where p.polrelid = c.oid)
     order by c.relname
  loop
    execute pg_catalog.format(
      'create policy %I on %s as permissive for all to public using (false) with check (false)',
      (select c.relname from pg_catalog.pg_class c where c.oid = v_rel) || '_no_direct_access', v_rel);
  end loop;
end
$deny$;

-- ---------------------------------------------------------------------------------------------
-- Every function of ours: search_path = pg_catalog, pg_temp, and no EXECUTE for PUBLIC or anon.
-- (The core's `alter default privileges in schema fred revoke execute on functions from public`
-- could not remove PUBLIC's built-in EXECUTE; each release revokes explicitly, and the suite
-- checks that a fresh role can execute nothing of ours.)
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

-- Grants for the functions this file adds: the API's definer functions to the roles that call
-- the wrappers; the helpers to nobody.
do $grants$
declare
  v_role text;
  v_fn   text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role', 'fred_syncd'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      foreach v_fn in array array['fred.check_outcome(text, text, jsonb, jsonb, jsonb)', 'fred.coaching_sessions_guard()',
                                  'fred.check_room_owner(text, uuid)', 'fred.check_days(text, integer)',
                                  'fred.check_quiet(text, interval)'] loop
        execute pg_catalog.format('revoke all on function %s from %I', v_fn, v_role);
      end loop;
    end if;
  end loop;
  foreach v_role in array array['authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      foreach v_fn in array array['fred.upsert_session(text, uuid, text, jsonb)',
                                  'fred.persist_transcript(text, jsonb, text, jsonb, jsonb, text)',
                                  'fred.get_session(uuid)', 'fred.list_sessions(integer, timestamptz)'] loop
        execute pg_catalog.format('grant execute on function %s to %I', v_fn, v_role);
      end loop;
    end if;
  end loop;
end
$grants$;

-- sql/supabase/migrations/20261201000005_fred_events.sql
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

-- sql/supabase/migrations/20261201000007_fred_adoption.sql
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

-- sql/supabase/migrations/20261201000009_fred_speed.sql
-- fred 0.2.0: speed (issue 13), shared by both installs (see 20261201000001_fred_lifecycle.sql
-- for the layout). The same rules, less work per call:
--   1. the row keeps a digest of its transcript (transcript_digest), so an identical repeat of a
--      persist is found without reading (detoasting) the stored transcript. The table sets it on
--      every write of the transcript, for every writer; a writer cannot set it to anything else;
--   2. the table's transcript rule is its own trigger, fired only by writes of the transcript
--      columns, and it no longer compares the old transcript with the new one;
--   3. the helpers on every write path (fred.lock_room, fred.caller_is_user, fred.session_event) are PL/pgSQL, whose
--      plans are kept per backend: as SQL functions with a SET clause they were parsed and planned
--      again in every transaction;
--   4. fred_persist_transcript finds the room's newest session and whether another user owns the
--      room name in one indexed statement, and compares digests, not transcripts; its statements
--      keep generic plans, and a transcript-only call does not name the outcome columns;
--   5. a LiveKit event's room merge is a HOT update (no index holds last_event_at).
--   6. a new room's session is inserted with its owner (the room's metadata), so its first change
--      event is one `created` on the owner's topic, not `created` then `user_id`; the extension
--      also inserts it with the first event's merged times, one statement fewer per call.
-- The transcript check itself is the engine's: in the extension, Rust walks the jsonb's binary
-- form (no text, no tree) and hashes the binary; the SQL install's is PL/pgSQL
-- (20261124000001_fred_engine.sql, 20261201000008_fred_engine.sql).

-- ---------------------------------------------------------------------------------------------
-- 1. The digest column, filled for the rows that exist. The UPDATE runs before the trigger below
-- exists and touches no column the other triggers watch, so it checks and emits nothing.
alter table fred.coaching_sessions add column if not exists transcript_digest bytea;
update fred.coaching_sessions s
   set transcript_digest = fred.transcript_digest(s.transcript_json)
 where s.transcript_json is not null
   and s.transcript_digest is distinct from fred.transcript_digest(s.transcript_json);

-- ---------------------------------------------------------------------------------------------
-- 2. The outcome caps stay in fred.coaching_sessions_guard, without the transcript. An insert
-- that names no outcome field (every LiveKit event's new session) and an update that changes
-- none skip the call: fred.check_outcome of five NULLs checks nothing.
create or replace function fred.coaching_sessions_guard() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    perform fred.check_room_name(new.room_name);
    if new.call_type is not null or new.summary is not null or new.decisions is not null
       or new.next_actions is not null or new.metadata is not null then
      perform fred.check_outcome(new.call_type, new.summary, new.decisions, new.next_actions, new.metadata);
    end if;
  else
    if new.room_name is distinct from old.room_name then
      perform fred.check_room_name(new.room_name);
    end if;
    if new.call_type is distinct from old.call_type or new.summary is distinct from old.summary
       or new.decisions is distinct from old.decisions or new.next_actions is distinct from old.next_actions
       or new.metadata is distinct from old.metadata then
      perform fred.check_outcome(
        case when new.call_type is distinct from old.call_type then new.call_type end,
        case when new.summary is distinct from old.summary then new.summary end,
        case when new.decisions is distinct from old.decisions then new.decisions end,
        case when new.next_actions is distinct from old.next_actions then new.next_actions end,
        case when new.metadata is distinct from old.metadata then new.metadata end);
    end if;
  end if;
  return new;
end
$$;

create or replace trigger coaching_sessions_guard
  before insert or update of room_name, call_type, summary, decisions, next_actions, metadata
  on fred.coaching_sessions
  for each row execute function fred.coaching_sessions_guard();

-- The transcript rule, for every writer that writes a transcript column: the engine's check
-- (caps and shape), and transcript_entries and transcript_digest always agree with the
-- transcript. A row without a transcript that claims nothing skips the call (the engines' event
-- inserts).
create or replace function fred.coaching_sessions_transcript() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.transcript_json is null then
    new.transcript_entries := 0;
    new.transcript_digest := null;
  else
    new.transcript_entries := fred.check_transcript(new.transcript_json);
    new.transcript_digest := fred.transcript_digest(new.transcript_json);
  end if;
  return new;
end
$$;

create or replace trigger coaching_sessions_transcript
  before insert or update of transcript_json, transcript_entries, transcript_digest
  on fred.coaching_sessions
  for each row
  when (new.transcript_json is not null or new.transcript_entries is distinct from 0
        or new.transcript_digest is not null)
  execute function fred.coaching_sessions_transcript();

-- ---------------------------------------------------------------------------------------------
-- 3. The same helpers, in PL/pgSQL (plans kept per backend).
create or replace function fred.lock_room(room_name text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('fred.room:' || lock_room.room_name, 0));
end
$$;

create or replace function fred.caller_is_user() returns boolean
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return not coalesce((
    select r.rolsuper or r.rolbypassrls or r.rolname = 'fred_syncd'
           or r.oid = (select c.relowner from pg_catalog.pg_class c where c.oid = 'fred.coaching_sessions'::regclass)
      from pg_catalog.pg_roles r
     where r.rolname = coalesce(nullif(pg_catalog.current_setting('role', true), 'none'), session_user::text)), false);
end
$$;

-- The change events' payload, built on every emitted event (several per call).
create or replace function fred.session_event(
  session_id uuid,
  room_name text,
  status text,
  recording_status text,
  has_summary boolean,
  changed text[]
) returns jsonb
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return pg_catalog.jsonb_build_object(
    'session_id', $1, 'room_name', $2, 'status', $3, 'recording_status', $4,
    'has_summary', coalesce($5, false), 'changed', pg_catalog.to_jsonb($6));
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 4. fred_persist_transcript: the rules of 0.2.0's adoption file, in fewer statements. The
-- transcript is checked once: by the table's trigger when the call writes, here when it is an
-- identical repeat. (So a call that breaks two rules may now report the permission error, 42501,
-- before the transcript's 22001/22023.)
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
-- Generic plans: with custom plans (PL/pgSQL's default for statements with parameters) every
-- call planned its statements again, a sixth of a persist's time.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_user    boolean := fred.caller_is_user();
  v_owner   uuid := persist_transcript.user_id;
  v_entries integer;
  v_digest  bytea;
  v_id      uuid;
  v_cur     uuid;
  v_other   boolean;
begin
  perform fred.check_room_name(persist_transcript.room_name);
  if persist_transcript.call_type is not null or persist_transcript.summary is not null
     or persist_transcript.decisions is not null or persist_transcript.next_actions is not null then
    perform fred.check_outcome(persist_transcript.call_type, persist_transcript.summary,
                               persist_transcript.decisions, persist_transcript.next_actions);
  end if;
  if v_user then
    perform fred.check_user_may_write();
    if v_owner is not null and v_owner <> fred.require_uid() then
      raise exception 'fred: user_id must be the caller''s own' using errcode = '42501';
    end if;
    v_owner := fred.require_uid();
  end if;
  if persist_transcript.transcript is null then
    perform fred.check_transcript(null);  -- 22023, as always
  end if;
  v_digest := fred.transcript_digest(persist_transcript.transcript);

  perform fred.lock_room(persist_transcript.room_name);
  -- One indexed step (coaching_sessions_room_name_idx): the newest session of the room name,
  -- locked, and whether a user other than the owner owns any session of that name (the rule of
  -- fred.check_room_owner: a room name owned by one user is never written for another).
  select n.id, n.user_id,
         v_owner is not null and exists (select 1 from fred.coaching_sessions o
                                          where o.room_name = persist_transcript.room_name
                                            and o.user_id is not null and o.user_id <> v_owner)
    into v_id, v_cur, v_other
    from (select s.id, s.user_id
            from fred.coaching_sessions s
           where s.room_name = persist_transcript.room_name
           order by s.created_at desc
           limit 1
             for update) n;
  if v_other then
    raise exception 'fred: room % belongs to another user', persist_transcript.room_name using errcode = '42501';
  end if;

  if v_id is null then
    -- The table's transcript trigger checks the transcript (caps and shape: 22001, 22023) and
    -- sets transcript_entries and transcript_digest.
    insert into fred.coaching_sessions as s
      (room_name, user_id, transcript_json, summary, decisions, next_actions, call_type)
    values (persist_transcript.room_name, v_owner, persist_transcript.transcript,
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
  -- A repeat of the same call changes nothing, not even updated_at. The transcripts are compared
  -- by digest: the stored one is not read. A write is checked by the table's transcript trigger,
  -- which also sets transcript_entries and transcript_digest.
  if persist_transcript.summary is null and persist_transcript.decisions is null
     and persist_transcript.next_actions is null and persist_transcript.call_type is null then
    -- The transcript alone (the usual call during a conversation): the outcome columns are not
    -- named, so the outcome trigger (coaching_sessions_guard) has nothing to check and does not fire.
    update fred.coaching_sessions s
       set transcript_json = persist_transcript.transcript,
           user_id         = coalesce(s.user_id, v_owner),
           updated_at      = now()
     where s.id = v_id
       and (s.transcript_digest, s.user_id) is distinct from (v_digest, coalesce(s.user_id, v_owner));
    if not found then
      v_entries := fred.check_transcript(persist_transcript.transcript);
    end if;
    return v_id;
  end if;
  update fred.coaching_sessions s
     set transcript_json    = persist_transcript.transcript,
         summary            = coalesce(persist_transcript.summary, s.summary),
         decisions          = coalesce(persist_transcript.decisions, s.decisions),
         next_actions       = coalesce(persist_transcript.next_actions, s.next_actions),
         call_type          = coalesce(persist_transcript.call_type, s.call_type),
         user_id            = coalesce(s.user_id, v_owner),
         updated_at         = now()
   where s.id = v_id
     and (s.transcript_digest, s.summary, s.decisions, s.next_actions, s.call_type, s.user_id) is distinct from
         (v_digest,
          coalesce(persist_transcript.summary, s.summary),
          coalesce(persist_transcript.decisions, s.decisions),
          coalesce(persist_transcript.next_actions, s.next_actions),
          coalesce(persist_transcript.call_type, s.call_type),
          coalesce(s.user_id, v_owner));
  if not found then
    -- An identical repeat writes nothing, but still answers as a write would: the transcript
    -- must meet today's caps (they may have been lowered since it was stored).
    v_entries := fred.check_transcript(persist_transcript.transcript);
  end if;
  return v_id;
end
$$;

-- The API's wrapper, in PL/pgSQL: its one statement keeps its plan (a SQL function with a SET
-- clause is parsed and planned on every call).
create or replace function public.fred_persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null,
  user_id uuid default null
) returns uuid
language plpgsql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
  return fred.persist_transcript($1, $2, $3, $4, $5, $6, $7);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 5. Room merges as HOT updates. Every LiveKit event moves last_event_at, and 0.1.0 indexed it
-- (coaching_sessions_active_idx), so every merge wrote a new entry into each of the table's
-- eight indexes. The stale job, its only reader, filters on coalesce(last_event_at, ...), which
-- that index cannot serve: it only used the index's predicate (status = 'active'), which the
-- same predicate on created_at (never updated) serves as well. Free space on each page
-- (fillfactor 80, for pages written from now on) lets the new row version stay on its page.
do $hot$
begin
  if exists (select 1 from pg_catalog.pg_index i
               join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
              where i.indexrelid = pg_catalog.to_regclass('fred.coaching_sessions_active_idx')
                and a.attname = 'last_event_at') then
    drop index fred.coaching_sessions_active_idx;
  end if;
end
$hot$;
create index if not exists coaching_sessions_active_idx on fred.coaching_sessions (created_at)
  where status = 'active';
alter table fred.coaching_sessions set (fillfactor = 80);

-- ---------------------------------------------------------------------------------------------
-- Privileges for what this file adds or replaced: search_path, and no EXECUTE for PUBLIC or anon.
-- fred.persist_transcript and its wrapper keep their grants (CREATE OR REPLACE keeps them).
do $grants$
declare
  v_fn text;
begin
  foreach v_fn in array array['fred.transcript_digest(jsonb)', 'fred.check_transcript(jsonb)',
                              'fred.coaching_sessions_guard()', 'fred.coaching_sessions_transcript()',
                              'fred.lock_room(text)', 'fred.caller_is_user()',
                              'fred.session_event(uuid, text, text, text, boolean, text[])',
                              'fred.persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)',
                              'public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)'] loop
    execute pg_catalog.format('alter function %s set search_path = pg_catalog, pg_temp', v_fn);
    execute pg_catalog.format('revoke all on function %s from public', v_fn);
    if exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
      execute pg_catalog.format('revoke all on function %s from anon', v_fn);
    end if;
  end loop;
end
$grants$;

-- ---------------------------------------------------------------------------------------------
-- 6. The daemon's batches in a few statements. fred.apply_livekit_events hands the whole batch to
-- the engine's fred.apply_event_batch (the extension: one ledger insert, one locked lookup and one
-- merge for the batch's rooms; the SQL install: one event at a time), in one subtransaction. As
-- before, only when an event in it is poison is the batch redone one event (and one
-- subtransaction) at a time.
create or replace function fred.apply_livekit_events(events jsonb)
returns table (idx integer, result text, error_code text, error_message text)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event   jsonb;
  v_state   text;
  v_msg     text;
  v_results text[];
begin
  if events is null or pg_catalog.jsonb_typeof(events) <> 'array' then
    raise exception 'fred: events must be a JSON array' using errcode = '22023';
  end if;
  begin
    v_results := fred.apply_event_batch(events);
  exception when data_exception or program_limit_exceeded then
    v_results := null;
  end;
  if v_results is not null then
    return query select (u.i - 1)::integer, u.r, null::text, null::text
                   from pg_catalog.unnest(v_results) with ordinality u(r, i);
    return;
  end if;
  idx := 0;
  for v_event in select e from pg_catalog.jsonb_array_elements(events) e loop
    begin
      result := fred.apply_one_event(v_event);
      error_code := null;
      error_message := null;
    exception when data_exception or program_limit_exceeded then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      result := 'rejected';
      error_code := v_state;
      error_message := v_msg;
    end;
    return next;
    idx := idx + 1;
  end loop;
end
$$;

do $grants$
declare
  v_role text;
begin
  alter function fred.apply_event_batch(jsonb) set search_path = pg_catalog, pg_temp;
  revoke all on function fred.apply_event_batch(jsonb) from public;
  foreach v_role in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('revoke all on function fred.apply_event_batch(jsonb) from %I', v_role);
    end if;
  end loop;
  -- Only the daemon's role and service_role may apply LiveKit events.
  foreach v_role in array array['fred_syncd', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function fred.apply_event_batch(jsonb) to %I', v_role);
    end if;
  end loop;
end
$grants$;

-- ---------------------------------------------------------------------------------------------
-- 6. The session of a room instance (20261124000002_fred_core.sql), a new one inserted with its
-- owner: one `created` event, on the owner's topic (the engines' merge would set it next anyway).
create or replace function fred.session_for(room_sid text, room_name text, owner uuid) returns uuid
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name    text := coalesce(session_for.room_name, session_for.room_sid);
  v_session uuid;
begin
  if session_for.room_sid is not null then
    select s.id into v_session from fred.coaching_sessions s where s.room_sid = session_for.room_sid for update;
    if v_session is not null then
      return v_session;
    end if;
  end if;
  perform fred.lock_room(v_name);
  select s.id into v_session
    from fred.coaching_sessions s
   where s.room_name = v_name and (s.room_sid is null or session_for.room_sid is null)
     and (s.user_id is null or session_for.owner is null or s.user_id = session_for.owner)
   order by s.created_at desc
   limit 1
   for update;
  if v_session is not null then
    if session_for.room_sid is not null then
      update fred.coaching_sessions s set room_sid = session_for.room_sid, updated_at = pg_catalog.now() where s.id = v_session;
    end if;
    return v_session;
  end if;
  insert into fred.coaching_sessions as s (room_name, room_sid, user_id) values (v_name, session_for.room_sid, session_for.owner)
  on conflict on constraint coaching_sessions_room_sid_key do nothing
  returning s.id into v_session;
  if v_session is null then
    select s.id into v_session from fred.coaching_sessions s where s.room_sid = session_for.room_sid for update;
  end if;
  return v_session;
end
$$;

-- extension/upgrade/fred--0.1.0--0.2.0.final.sql
-- The extension's own definitions that replace a shared PL/pgSQL one, run after the shared
-- migrations (extension/build-upgrade.sh appends this file to fred--0.1.0--0.2.0.sql; a fresh
-- install runs it last, extension/src/lib.rs). CREATE OR REPLACE keeps the function's oid, so
-- its triggers, and its grants.

-- Change events (20261201000005_fred_events.sql §1), in Rust: extension/src/change_events.rs.
create or replace function fred.coaching_sessions_events() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'coaching_sessions_events_wrapper';

-- The ledger's tombstone (20261201000005_fred_events.sql, "Tombstones"), in Rust:
-- extension/src/tombstone.rs.
create or replace function fred.livekit_events_tombstone() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'livekit_events_tombstone_wrapper';

-- The table's tombstone (20261201000005_fred_events.sql, "Tombstones"), in Rust, with the same
-- lookup: extension/src/tombstone.rs.
create or replace function fred.coaching_sessions_tombstone() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'coaching_sessions_tombstone_wrapper';
