-- The contract's shape: tables, signatures, grants and Supabase's lints, restated as assertions.
begin;
select plan(54);

select has_table('fred'::name, 'coaching_sessions'::name, 'fred.coaching_sessions exists');
select has_table('fred'::name, 'livekit_events'::name, 'the event ledger exists');
select has_column('fred'::name, 'coaching_sessions'::name, c::name, 'coaching_sessions has ' || c)
  from unnest(array['id', 'room_name', 'room_sid', 'user_id', 'status', 'started_at', 'ended_at',
    'duration_seconds', 'egress_id', 'recording_status', 'recording_bucket', 'recording_key',
    'recording_bytes', 'recording_duration_ms', 'recording_error', 'transcript_entries',
    'last_event_at', 'end_reason', 'created_at', 'updated_at', 'recording_url', 'transcript_json',
    'summary', 'decisions', 'next_actions', 'call_type']) c;
select col_type_is('fred'::name, 'coaching_sessions'::name, c::name, t, 'coaching_sessions.' || c || ' is ' || t)
  from (values ('id', 'uuid'), ('user_id', 'uuid'), ('transcript_json', 'jsonb'), ('decisions', 'jsonb'),
               ('next_actions', 'jsonb'), ('started_at', 'timestamp with time zone')) v(c, t);

-- Exact names and parameter names: app code calls them by name over RPC.
select is((select proargnames from pg_proc where oid = to_regprocedure('public.fred_upsert_session(text, uuid, text, jsonb)')),
          array['room_name', 'user_id', 'call_type', 'metadata'], 'fred_upsert_session parameters');
select is((select proargnames from pg_proc where oid = to_regprocedure('public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)')),
          array['room_name', 'transcript', 'summary', 'decisions', 'next_actions', 'call_type', 'user_id'], 'fred_persist_transcript parameters (0.2.0 added user_id)');
select is((select proargnames from pg_proc where oid = to_regprocedure('public.fred_get_session(uuid)')),
          array['session_id'], 'fred_get_session parameters');
select is((select proargnames from pg_proc where oid = to_regprocedure('public.fred_list_sessions(integer, timestamptz)')),
          array['max_rows', 'before'], 'fred_list_sessions parameters');
select is((select prorettype::regtype::text from pg_proc where oid = to_regprocedure('public.fred_get_session(uuid)')),
          'fred.coaching_sessions', 'fred_get_session returns a session row');
select ok(to_regprocedure('fred.apply_livekit_event(jsonb)') is not null, 'fred.apply_livekit_event(jsonb) exists');
select is((select count(*)::int from pg_proc where proname like 'fred\_%' and pronamespace = 'public'::regnamespace), 5,
          'exactly five public functions (0.2.0 added fred_delete_session), one signature each (no PostgREST overload ambiguity)');
select ok((select provolatile = 'v' from pg_proc where oid = to_regprocedure('public.fred_persist_transcript(text, jsonb, text, jsonb, jsonb, text, uuid)')),
          'writers are VOLATILE (PostgREST runs others read-only)');

-- Lints (Supabase splinter 0011, 0013, 0028/0029).
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where (p.pronamespace = 'fred'::regnamespace or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%'))
     and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
$$, 'every fred function has a fixed search_path (see 08_security.sql for its order)');
select is_empty($$
  select c.relname::text from pg_class c
   where c.relnamespace = 'fred'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity
$$, 'row-level security is on for every fred table');
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where p.prosecdef and p.pronamespace in ('fred'::regnamespace, 'public'::regnamespace)
     and has_function_privilege('anon', p.oid, 'execute')
$$, 'no SECURITY DEFINER function is executable by anon');

-- Grants.
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
   where (p.pronamespace = 'fred'::regnamespace or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%'))
     and (has_function_privilege('anon', p.oid, 'execute')
          or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0))
$$, 'neither PUBLIC nor anon may execute any fred function');
select set_eq($$
  select p.proname::text from pg_proc p
   where (p.pronamespace = 'fred'::regnamespace or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%'))
     and has_function_privilege('authenticated', p.oid, 'execute')
$$, array['fred_upsert_session', 'fred_persist_transcript', 'fred_get_session', 'fred_list_sessions', 'fred_delete_session',
          'upsert_session', 'persist_transcript', 'get_session', 'list_sessions', 'delete_session', 'owns_recording'],
  'authenticated may call exactly the five API functions, the definer functions behind them, and the storage policy''s check');
select ok(has_function_privilege('fred_syncd', 'fred.apply_livekit_event(jsonb)', 'execute'), 'fred_syncd may apply events');
select ok(has_function_privilege('service_role', 'fred.apply_livekit_event(jsonb)', 'execute'), 'service_role may apply events');
select ok(not has_function_privilege('authenticated', 'fred.apply_livekit_event(jsonb)', 'execute'), 'authenticated may not apply events');
select ok(not has_table_privilege('fred_syncd', 'fred.coaching_sessions', 'select'), 'fred_syncd cannot read sessions');
select ok(not has_column_privilege('fred_syncd', 'fred.coaching_sessions', 'transcript_json', 'select'), 'fred_syncd cannot read transcripts');
select ok(not has_schema_privilege('anon', 'fred', 'usage'), 'anon has no usage on schema fred');
select ok(not has_table_privilege('authenticated', 'fred.coaching_sessions', 'select'), 'authenticated reads only through the API');

select * from finish();
rollback;
