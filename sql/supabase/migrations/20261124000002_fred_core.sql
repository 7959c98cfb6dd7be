-- fred core: tables, row-level security, the public RPC API and every grant.
--
-- This one file is shared by both installs:
--   * the compiled extension includes it verbatim (`CREATE EXTENSION fred`), after the Rust engine;
--   * the pure-SQL install applies it as a migration, after 20261124000001_fred_engine.sql.
-- The engine (fred.check_transcript, fred.apply_livekit_event) is the only part written twice.
-- Everything here must therefore be valid in an extension script and as a plain migration
-- run by a role that is not a superuser (hosted Supabase's `postgres`).

-- Roles. `fred_syncd` is the daemon's least-privilege role; an operator gives it LOGIN and a password.
do $roles$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'fred_syncd') then
    create role fred_syncd nologin;
  end if;
end
$roles$;

-- One row per call (per LiveKit room instance).
create table fred.coaching_sessions (
  id                    uuid primary key default gen_random_uuid(),
  room_name             text not null check (room_name <> '' and length(room_name) <= 256),
  room_sid              text unique,
  user_id               uuid,
  status                text not null default 'active' check (status in ('active', 'ended')),
  started_at            timestamptz,
  ended_at              timestamptz,
  -- Derived, so it can never disagree with the two times.
  duration_seconds      integer generated always as (
                          (extract(epoch from (ended_at - started_at)))::integer) stored,
  end_reason            text,
  last_event_at         timestamptz,
  metadata              jsonb,
  call_type             text,
  transcript_json       jsonb,
  transcript_entries    integer not null default 0,
  summary               text,
  decisions             jsonb,
  next_actions          jsonb,
  recording_url         text,
  recording_status      text check (recording_status in
                          ('disabled', 'starting', 'recording', 'uploaded', 'ready',
                           'unavailable', 'failed', 'missing', 'lost', 'deleted')),
  recording_bucket      text,
  recording_key         text,
  recording_bytes       bigint,
  recording_duration_ms bigint,
  recording_error       text,
  recording_verified_at timestamptz,
  egress_id             text,
  -- The LiveKit egress status last applied and its updatedAt (ns): the merge state that
  -- makes egress events commutative.
  egress_status         text,
  egress_updated_ns     bigint,
  created_at            timestamptz not null default now(),
  updated_at            timestamptz not null default now()
);

-- Transcripts are large jsonb values rewritten on every persist: lz4 compresses them several
-- times faster than the default pglz. Servers built without lz4 keep the default.
do $lz4$
begin
  alter table fred.coaching_sessions alter column transcript_json set compression lz4;
exception when feature_not_supported then
  raise notice 'fred: lz4 is not available; transcripts use the default compression';
end
$lz4$;

create index coaching_sessions_room_name_idx on fred.coaching_sessions (room_name, created_at desc);
create index coaching_sessions_user_idx on fred.coaching_sessions (user_id, created_at desc);
create index coaching_sessions_created_idx on fred.coaching_sessions (created_at desc, id desc);
create index coaching_sessions_active_idx on fred.coaching_sessions (last_event_at) where status = 'active';
create index coaching_sessions_egress_idx on fred.coaching_sessions (egress_id) where egress_id is not null;
create index coaching_sessions_recording_idx on fred.coaching_sessions (recording_key, recording_bucket) where recording_key is not null;

-- Idempotency ledger: each LiveKit event id is applied once.
create table fred.livekit_events (
  event_id    text primary key,
  event_type  text not null,
  room_sid    text,
  room_name   text,
  created_at  timestamptz,
  outcome     text not null check (outcome in ('applied', 'ignored')),
  applied_at  timestamptz not null default now()
);

alter table fred.coaching_sessions enable row level security;
alter table fred.livekit_events enable row level security;

-- The caller's user id, read as Supabase's auth.uid() reads it (no dependency on the auth schema).
create function fred.current_uid() returns uuid
language sql stable
set search_path = ''
as $$
  select nullif(coalesce(nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
                         nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'),
                '')::uuid
$$;

-- True unless the effective role is trusted: a superuser, a role with BYPASSRLS
-- (service_role), the daemon's role, or the owner of fred's tables. Everyone else, including
-- PostgREST's anon and authenticated and any custom role derived from them, is an end user
-- whose requests are confined to their own rows.
create function fred.caller_is_user() returns boolean
language sql stable
set search_path = ''
as $$
  select not coalesce((
    select r.rolsuper or r.rolbypassrls or r.rolname = 'fred_syncd'
           or r.oid = (select c.relowner from pg_catalog.pg_class c where c.oid = 'fred.coaching_sessions'::regclass)
      from pg_catalog.pg_roles r
     where r.rolname = coalesce(nullif(pg_catalog.current_setting('role', true), 'none'), session_user::text)), false)
$$;

-- The end user's id, or 42501 when the request carries none.
create function fred.require_uid() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  v_uid uuid := fred.current_uid();
begin
  if v_uid is null then
    raise exception 'fred: an authenticated user is required' using errcode = '42501';
  end if;
  return v_uid;
end
$$;

create function fred.check_room_name(room_name text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if room_name is null or room_name = '' or length(room_name) > 256 then
    raise exception 'fred: room_name must be a non-empty string of at most 256 characters'
      using errcode = '22023';
  end if;
end
$$;

-- Serialises creation of sessions for one room name (transaction-scoped: safe behind a pooler).
create function fred.lock_room(room_name text) returns void
language sql volatile
set search_path = ''
as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('fred.room:' || room_name, 0))
$$;

-- The session of a room instance, locked: by room sid; else the newest session of that name not
-- yet bound to a room whose owner does not contradict `owner` (the app's fred_upsert_session);
-- else a new one. Used by the SQL engine and by syncd's own events; the Rust engine has its twin.
create function fred.session_for(room_sid text, room_name text, owner uuid) returns uuid
language plpgsql volatile
set search_path = ''
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
      update fred.coaching_sessions s set room_sid = session_for.room_sid, updated_at = now() where s.id = v_session;
    end if;
    return v_session;
  end if;
  insert into fred.coaching_sessions as s (room_name, room_sid) values (v_name, session_for.room_sid)
  on conflict on constraint coaching_sessions_room_sid_key do nothing
  returning s.id into v_session;
  if v_session is null then
    select s.id into v_session from fred.coaching_sessions s where s.room_sid = session_for.room_sid for update;
  end if;
  return v_session;
end
$$;

-- Row-level security: an end user sees only their own sessions. The API functions below are
-- SECURITY DEFINER with the same check inside; these policies guard any direct table grant.
do $policies$
declare
  v_uid text := case when exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                                    where n.nspname = 'auth' and p.proname = 'uid' and p.pronargs = 0
                                      and pg_catalog.has_schema_privilege(n.oid, 'usage'))
                     then '(select auth.uid())' else '(select fred.current_uid())' end;
begin
  execute pg_catalog.format(
    'create policy coaching_sessions_owner_select on fred.coaching_sessions for select using (user_id = %s)', v_uid);
  execute pg_catalog.format(
    'create policy coaching_sessions_owner_update on fred.coaching_sessions for update using (user_id = %s) with check (user_id = %s)',
    v_uid, v_uid);
end
$policies$;

create function public.fred_upsert_session(
  room_name text,
  user_id uuid default null,
  call_type text default null,
  metadata jsonb default null
) returns uuid
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_user  boolean := fred.caller_is_user();
  v_owner uuid := fred_upsert_session.user_id;
  v_id    uuid;
  v_cur   uuid;
begin
  perform fred.check_room_name(fred_upsert_session.room_name);
  if fred_upsert_session.metadata is not null and jsonb_typeof(fred_upsert_session.metadata) <> 'object' then
    raise exception 'fred: metadata must be a JSON object' using errcode = '22023';
  end if;
  if v_user then
    if v_owner is not null and v_owner <> fred.require_uid() then
      raise exception 'fred: user_id must be the caller''s own' using errcode = '42501';
    end if;
    v_owner := fred.require_uid();
  end if;

  perform fred.lock_room(fred_upsert_session.room_name);
  select s.id, s.user_id into v_id, v_cur
    from fred.coaching_sessions s
   where s.room_name = fred_upsert_session.room_name and s.status = 'active'
   order by s.created_at desc
   limit 1
   for update;

  if v_id is null then
    insert into fred.coaching_sessions as s (room_name, user_id, call_type, metadata)
    values (fred_upsert_session.room_name, v_owner, fred_upsert_session.call_type, fred_upsert_session.metadata)
    returning s.id into v_id;
    return v_id;
  end if;

  if v_user and v_cur is distinct from v_owner then
    raise exception 'fred: the session for room % belongs to another user', fred_upsert_session.room_name
      using errcode = '42501';
  end if;
  update fred.coaching_sessions s
     set user_id    = coalesce(v_owner, s.user_id),
         call_type  = coalesce(fred_upsert_session.call_type, s.call_type),
         metadata   = coalesce(fred_upsert_session.metadata, s.metadata),
         updated_at = now()
   where s.id = v_id
     and (s.user_id, s.call_type, s.metadata) is distinct from
         (coalesce(v_owner, s.user_id), coalesce(fred_upsert_session.call_type, s.call_type),
          coalesce(fred_upsert_session.metadata, s.metadata));
  return v_id;
end
$$;

create function public.fred_persist_transcript(
  room_name text,
  transcript jsonb,
  summary text default null,
  decisions jsonb default null,
  next_actions jsonb default null,
  call_type text default null
) returns uuid
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_user    boolean := fred.caller_is_user();
  v_uid     uuid;
  v_entries integer;
  v_id      uuid;
  v_cur     uuid;
begin
  perform fred.check_room_name(fred_persist_transcript.room_name);
  -- Caps and shape: the engine (Rust in the extension) raises 22001 or 22023.
  v_entries := fred.check_transcript(fred_persist_transcript.transcript);
  if fred_persist_transcript.decisions is not null and jsonb_typeof(fred_persist_transcript.decisions) <> 'array' then
    raise exception 'fred: decisions must be a JSON array' using errcode = '22023';
  end if;
  if fred_persist_transcript.next_actions is not null and jsonb_typeof(fred_persist_transcript.next_actions) <> 'array' then
    raise exception 'fred: next_actions must be a JSON array' using errcode = '22023';
  end if;
  if v_user then
    v_uid := fred.require_uid();
  end if;

  perform fred.lock_room(fred_persist_transcript.room_name);
  select s.id, s.user_id into v_id, v_cur
    from fred.coaching_sessions s
   where s.room_name = fred_persist_transcript.room_name
   order by s.created_at desc
   limit 1
   for update;

  if v_id is null then
    insert into fred.coaching_sessions as s
      (room_name, user_id, transcript_json, transcript_entries, summary, decisions, next_actions, call_type)
    values (fred_persist_transcript.room_name, v_uid, fred_persist_transcript.transcript, v_entries,
            fred_persist_transcript.summary, fred_persist_transcript.decisions,
            fred_persist_transcript.next_actions, fred_persist_transcript.call_type)
    returning s.id into v_id;
    return v_id;
  end if;

  if v_user and v_cur is distinct from v_uid then
    raise exception 'fred: the session for room % belongs to another user', fred_persist_transcript.room_name
      using errcode = '42501';
  end if;
  -- A repeat of the same call changes nothing, not even updated_at.
  update fred.coaching_sessions s
     set transcript_json    = fred_persist_transcript.transcript,
         transcript_entries = v_entries,
         summary            = coalesce(fred_persist_transcript.summary, s.summary),
         decisions          = coalesce(fred_persist_transcript.decisions, s.decisions),
         next_actions       = coalesce(fred_persist_transcript.next_actions, s.next_actions),
         call_type          = coalesce(fred_persist_transcript.call_type, s.call_type),
         updated_at         = now()
   where s.id = v_id
     and (s.transcript_json, s.summary, s.decisions, s.next_actions, s.call_type) is distinct from
         (fred_persist_transcript.transcript,
          coalesce(fred_persist_transcript.summary, s.summary),
          coalesce(fred_persist_transcript.decisions, s.decisions),
          coalesce(fred_persist_transcript.next_actions, s.next_actions),
          coalesce(fred_persist_transcript.call_type, s.call_type));
  return v_id;
end
$$;

-- NULL both when the session does not exist and when the caller may not see it.
create function public.fred_get_session(session_id uuid) returns fred.coaching_sessions
language sql stable security definer
set search_path = ''
as $$
  select s.*
    from fred.coaching_sessions s
   where s.id = fred_get_session.session_id
     and (not fred.caller_is_user() or s.user_id = fred.current_uid())
$$;

create function public.fred_list_sessions(max_rows integer default 20, before timestamptz default null)
returns setof fred.coaching_sessions
language sql stable security definer
set search_path = ''
as $$
  select s.*
    from fred.coaching_sessions s
   where (not fred.caller_is_user() or s.user_id = fred.current_uid())
     and (fred_list_sessions.before is null or s.created_at < fred_list_sessions.before)
   order by s.created_at desc, s.id desc
   limit greatest(1, least(1000, coalesce(fred_list_sessions.max_rows, 20)))
$$;

-- One egress start per room instance, across syncd replicas.
create table fred.egress_claims (
  room_sid   text primary key,
  room_name  text not null,
  claimed_by text,
  claimed_at timestamptz not null default now()
);
alter table fred.egress_claims enable row level security;

-- True when this caller is the first to claim the start of a recording for the room.
create function fred.claim_egress_start(room_sid text, room_name text, claimed_by text default null)
returns boolean
language sql volatile security definer
set search_path = ''
as $$
  with claimed as (
    insert into fred.egress_claims as c (room_sid, room_name, claimed_by)
    values (claim_egress_start.room_sid, claim_egress_start.room_name, claim_egress_start.claimed_by)
    on conflict (room_sid) do nothing
    returning 1)
  select exists (select 1 from claimed)
$$;

-- What syncd itself learned (an egress it started, a start that failed, recording switched
-- off), spooled and drained in order with the webhooks. Egress events from LiveKit always
-- win over these: they only fill in while no egress status is known.
create function fred.apply_syncd_event(event jsonb) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_type    text := event ->> 'event';
  v_id      text := event ->> 'id';
  v_sid     text := event #>> '{room,sid}';
  v_name    text := coalesce(event #>> '{room,name}', event #>> '{room,sid}');
  v_session uuid;
  r         text;
begin
  if v_type is null or v_id is null or v_sid is null
     or v_type not in ('syncd_egress_started', 'syncd_egress_failed', 'syncd_recording_disabled') then
    raise exception 'fred: not a syncd event' using errcode = '22023';
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
       set egress_id        = coalesce(s.egress_id, event ->> 'egress_id'),
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

-- Completed recordings whose object has not been confirmed in S3 yet.
create function fred.recordings_to_verify(max_rows integer default 100)
returns table (session_id uuid, bucket text, key text)
language sql stable security definer
set search_path = ''
as $$
  select s.id, s.recording_bucket, s.recording_key
    from fred.coaching_sessions s
   where s.recording_status = 'uploaded' and s.recording_key is not null
   order by s.updated_at
   limit greatest(1, least(1000, coalesce(recordings_to_verify.max_rows, 100)))
$$;

-- The HeadObject result: `ready` with its size, or `missing`. Returns the new status, or NULL
-- when the session is not waiting for a check.
create function fred.record_verification(session_id uuid, found boolean, bytes bigint default null)
returns text
language sql volatile security definer
set search_path = ''
as $$
  update fred.coaching_sessions s
     set recording_status      = case when record_verification.found then 'ready' else 'missing' end,
         recording_bytes       = case when record_verification.found then coalesce(record_verification.bytes, s.recording_bytes)
                                      else s.recording_bytes end,
         recording_error       = case when record_verification.found then s.recording_error
                                      else 'the object is not in the bucket' end,
         recording_verified_at = now(),
         updated_at            = now()
   where s.id = record_verification.session_id
     and s.recording_status in ('uploaded', 'ready', 'missing')
  returning s.recording_status
$$;

-- Where a session's recording lives, for presigning; no transcript is readable through it.
create function fred.recording_location(session_id uuid)
returns table (bucket text, key text, status text)
language sql stable security definer
set search_path = ''
as $$
  select s.recording_bucket, s.recording_key, s.recording_status
    from fred.coaching_sessions s
   where s.id = recording_location.session_id
$$;

-- True when the caller owns the session a recording object belongs to: the check behind the
-- storage.objects policy, so supabase-js createSignedUrl works for the owner only.
create function fred.owns_recording(bucket text, key text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from fred.coaching_sessions s
     where s.recording_bucket = owns_recording.bucket
       and s.recording_key = owns_recording.key
       and s.user_id is not null
       and s.user_id = fred.current_uid())
$$;

-- Scheduled jobs: one row per job and tick. The first replica to insert a tick runs it; a
-- replica that dies mid-run blocks nothing, since the next tick is a new row. Works through a
-- transaction-mode pooler, unlike session advisory locks.
create table fred.job_runs (
  job         text not null check (job in ('reconcile', 'stale', 'retention')),
  tick        timestamptz not null,
  runner      text not null,
  started_at  timestamptz not null default now(),
  finished_at timestamptz,
  changed     integer,
  error       text,
  primary key (job, tick)
);
alter table fred.job_runs enable row level security;

create function fred.claim_job_tick(job text, tick timestamptz, runner text) returns boolean
language sql volatile security definer
set search_path = ''
as $$
  with claimed as (
    insert into fred.job_runs as r (job, tick, runner)
    values (claim_job_tick.job, claim_job_tick.tick, claim_job_tick.runner)
    on conflict do nothing
    returning 1)
  select exists (select 1 from claimed)
$$;

create function fred.finish_job_run(job text, tick timestamptz, changed integer, error text default null) returns void
language sql volatile security definer
set search_path = ''
as $$
  update fred.job_runs r
     set finished_at = now(), changed = finish_job_run.changed, error = left(finish_job_run.error, 2000)
   where r.job = finish_job_run.job and r.tick = finish_job_run.tick
$$;

-- Sessions whose recording may have missed its webhooks: still starting or recording with no
-- news for `quiet`, or ended that long ago without a final egress status.
create function fred.reconcile_candidates(quiet interval, max_rows integer default 200)
returns table (session_id uuid, room_name text, room_sid text, egress_id text)
language sql stable security definer
set search_path = ''
as $$
  select s.id, s.room_name, s.room_sid, s.egress_id
    from fred.coaching_sessions s
   where (s.recording_status in ('starting', 'recording')
          and coalesce(s.last_event_at, s.updated_at) < now() - reconcile_candidates.quiet)
      or (s.status = 'ended' and s.ended_at < now() - reconcile_candidates.quiet
          and s.egress_id is not null
          and coalesce(s.egress_status, '') not in ('EGRESS_COMPLETE', 'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED')
          and coalesce(s.recording_status, '') not in ('disabled', 'unavailable', 'lost', 'deleted'))
   order by s.updated_at
   limit greatest(1, least(1000, coalesce(reconcile_candidates.max_rows, 200)))
$$;

-- LiveKit no longer knows the egress: the recording is lost.
create function fred.mark_egress_lost(session_id uuid, reason text) returns boolean
language sql volatile security definer
set search_path = ''
as $$
  with lost as (
    update fred.coaching_sessions s
       set recording_status = 'lost', recording_error = left(mark_egress_lost.reason, 1000), updated_at = now()
     where s.id = mark_egress_lost.session_id
       and coalesce(s.egress_status, '') not in ('EGRESS_COMPLETE', 'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED')
       and coalesce(s.recording_status, '') not in ('disabled', 'deleted', 'lost')
    returning 1)
  select exists (select 1 from lost)
$$;

-- Ends sessions with no event for `quiet`: ended_at is their last activity.
create function fred.close_stale_sessions(quiet interval) returns integer
language sql volatile security definer
set search_path = ''
as $$
  with closed as (
    update fred.coaching_sessions s
       set status = 'ended',
           ended_at = coalesce(s.last_event_at, s.started_at, s.created_at),
           end_reason = 'stale',
           updated_at = now()
     where s.status = 'active'
       and coalesce(s.last_event_at, s.started_at, s.created_at) < now() - close_stale_sessions.quiet
    returning 1)
  select count(*)::integer from closed
$$;

-- Recordings older than `days` (by the call's end, else its start), still to delete from S3.
create function fred.recordings_to_delete(days integer, max_rows integer default 200)
returns table (session_id uuid, bucket text, key text)
language sql stable security definer
set search_path = ''
as $$
  select s.id, s.recording_bucket, s.recording_key
    from fred.coaching_sessions s
   where s.recording_key is not null
     and coalesce(s.recording_status, '') <> 'deleted'
     and coalesce(s.ended_at, s.started_at, s.created_at) < now() - make_interval(days => recordings_to_delete.days)
   order by coalesce(s.ended_at, s.started_at, s.created_at)
   limit greatest(1, least(1000, coalesce(recordings_to_delete.max_rows, 200)))
$$;

-- Called only after DeleteObject succeeded, so a crash in between leaves the row to retry.
create function fred.mark_recording_deleted(session_id uuid) returns boolean
language sql volatile security definer
set search_path = ''
as $$
  with deleted as (
    update fred.coaching_sessions s
       set recording_status = 'deleted', recording_url = null, recording_key = null, recording_bucket = null,
           recording_bytes = null, recording_duration_ms = null, recording_verified_at = null,
           recording_error = null, updated_at = now()
     where s.id = mark_recording_deleted.session_id and s.recording_key is not null
    returning 1)
  select exists (select 1 from deleted)
$$;

-- Clears transcripts and outcomes older than `days`; returns how many sessions changed.
create function fred.purge_transcripts(days integer) returns integer
language sql volatile security definer
set search_path = ''
as $$
  with purged as (
    update fred.coaching_sessions s
       set transcript_json = null, transcript_entries = 0, summary = null, decisions = null, next_actions = null,
           updated_at = now()
     where (s.transcript_json is not null or s.summary is not null or s.decisions is not null or s.next_actions is not null)
       and coalesce(s.ended_at, s.started_at, s.created_at) < now() - make_interval(days => purge_transcripts.days)
    returning 1)
  select count(*)::integer from purged
$$;

-- One event of a batch: LiveKit's, or one of syncd's own records.
create function fred.apply_one_event(event jsonb) returns text
language plpgsql volatile
set search_path = ''
as $$
begin
  if event ->> 'event' like 'syncd\_%' then
    return fred.apply_syncd_event(event);
  end if;
  return fred.apply_livekit_event(event);
end
$$;

-- Batch apply for the daemon: one call per batch, and a poison event (class 22, 54000)
-- is reported in its row instead of failing its neighbours. Other errors abort the batch,
-- so the daemon retries it whole.
create function fred.apply_livekit_events(events jsonb)
returns table (idx integer, result text, error_code text, error_message text)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_event   jsonb;
  v_state   text;
  v_msg     text;
  v_results text[] := '{}';
begin
  if events is null or jsonb_typeof(events) <> 'array' then
    raise exception 'fred: events must be a JSON array' using errcode = '22023';
  end if;
  -- Fast path: the whole batch in one subtransaction. Only when an event in it is poison is
  -- the batch redone one event (and one subtransaction) at a time.
  begin
    for v_event in select e from jsonb_array_elements(events) e loop
      v_results := v_results || fred.apply_one_event(v_event);
    end loop;
  exception when data_exception or program_limit_exceeded then
    v_results := null;
  end;
  if v_results is not null then
    return query select (u.i - 1)::integer, u.r, null::text, null::text
                   from unnest(v_results) with ordinality u(r, i);
    return;
  end if;
  idx := 0;
  for v_event in select e from jsonb_array_elements(events) e loop
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

-- Grants. PUBLIC (and Supabase's default grants to anon/authenticated) lose EXECUTE on
-- everything, then each role gets exactly what it needs.
revoke all on all functions in schema fred from public;
revoke all on function public.fred_upsert_session(text, uuid, text, jsonb) from public;
revoke all on function public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text) from public;
revoke all on function public.fred_get_session(uuid) from public;
revoke all on function public.fred_list_sessions(integer, timestamptz) from public;
revoke all on all tables in schema fred from public;

do $grants$
declare
  v_role text;
  v_api  text[] := array[
    'public.fred_upsert_session(text, uuid, text, jsonb)',
    'public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text)',
    'public.fred_get_session(uuid)',
    'public.fred_list_sessions(integer, timestamptz)'];
  v_fn   text;
begin
  -- Supabase grants new functions and tables to its API roles by default: take that back.
  foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('revoke all on all functions in schema fred from %I', v_role);
      execute pg_catalog.format('revoke all on all tables in schema fred from %I', v_role);
      foreach v_fn in array v_api loop
        execute pg_catalog.format('revoke all on function %s from %I', v_fn, v_role);
      end loop;
    end if;
  end loop;

  foreach v_role in array array['authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      foreach v_fn in array v_api loop
        execute pg_catalog.format('grant execute on function %s to %I', v_fn, v_role);
      end loop;
      -- The API returns fred.coaching_sessions rows; the type lives in fred.
      execute pg_catalog.format('grant usage on schema fred to %I', v_role);
    end if;
  end loop;

  -- Only the daemon's role and service_role may apply LiveKit events.
  foreach v_role in array array['fred_syncd', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant usage on schema fred to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.apply_livekit_event(jsonb) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.apply_livekit_events(jsonb) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.apply_one_event(jsonb) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.apply_syncd_event(jsonb) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.claim_egress_start(text, text, text) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.recordings_to_verify(integer) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.record_verification(uuid, boolean, bigint) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.recording_location(uuid) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.claim_job_tick(text, timestamptz, text) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.finish_job_run(text, timestamptz, integer, text) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.reconcile_candidates(interval, integer) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.mark_egress_lost(uuid, text) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.close_stale_sessions(interval) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.recordings_to_delete(integer, integer) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.mark_recording_deleted(uuid) to %I', v_role);
      execute pg_catalog.format('grant execute on function fred.purge_transcripts(integer) to %I', v_role);
    end if;
  end loop;
  -- The storage policy runs as the requesting user.
  foreach v_role in array array['authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function fred.owns_recording(text, text) to %I', v_role);
    end if;
  end loop;
end
$grants$;

-- Functions created later in fred by this role are not executable by PUBLIC either.
alter default privileges in schema fred revoke execute on functions from public;
