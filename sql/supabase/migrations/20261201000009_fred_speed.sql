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
