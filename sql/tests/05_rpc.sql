-- The public API called the way PostgREST calls it: as authenticator switched to the request's
-- role, with the JWT claims set, named arguments from a JSON body (fred_test.rpc). Ownership,
-- the roles' privileges, and the SQLSTATEs a client sees.
begin;
select plan(84);

-- The SQLSTATE of p_sql run as p_role ('ok' when it succeeds). The role is restored before
-- returning, so pgTAP (whose temp tables belong to the session user) can record the result.
create function pg_temp.sqlstate_as(p_role text, p_sql text) returns text
language plpgsql as $$
declare
  v_role  text := current_setting('role');
  v_state text := 'ok';
begin
  perform set_config('role', p_role, true);
  begin
    execute p_sql;
  exception when others then
    v_state := sqlstate;
  end;
  perform set_config('role', v_role, true);
  return v_state;
end
$$;

-- The ids of the rows an rpc returned, in order.
create function pg_temp.ids(p_rows jsonb) returns uuid[]
language sql immutable as $$
  select coalesce(array_agg((e ->> 'id')::uuid order by o), '{}')
    from jsonb_array_elements(coalesce(p_rows, '[]')) with ordinality x(e, o)
$$;

create temp table ids (k text primary key, id uuid);
create temp table tr as
select jsonb_agg(jsonb_build_object('text', 'line ' || i, 'speaker', case when i % 2 = 0 then 'coach' else 'user' end)) as t501
  from generate_series(1, 501) i;

-- 0. The caps in the extension are superuser settings. A value a non-superuser sets before the
-- library is loaded in the session is only a placeholder, and is thrown away when it loads.
-- In the SQL install the setting is a placeholder anyone may set (a documented difference).
do $$
declare
  v_level text := current_setting('client_min_messages');
begin
  perform pg_temp.sqlstate_as('authenticated', 'set fred.max_transcript_entries = 1000');
  -- Load the extension's library (if it is not loaded yet), without the WARNING it gives
  -- as it discards the value.
  perform set_config('client_min_messages', 'error', true);
  perform fred.check_transcript('[]');
  perform set_config('client_min_messages', v_level, true);
end
$$;
select case when fred_test.is_extension()
  then is(current_setting('fred.max_transcript_entries'), '500',
          'extension: a cap a non-superuser set before the library loaded does not take effect')
  else is(current_setting('fred.max_transcript_entries'), '1000',
          'SQL install: fred.max_transcript_entries is a placeholder any role may set')
  end;
reset fred.max_transcript_entries;
select case when fred_test.is_extension()
  then is(pg_temp.sqlstate_as('authenticated', 'set fred.max_transcript_entries = 1000'), '42501',
          'extension: authenticated may not change fred.max_transcript_entries')
  else is(pg_temp.sqlstate_as('authenticated', 'set fred.max_transcript_entries = 1000'), 'ok',
          'SQL install: authenticated may set fred.max_transcript_entries (a placeholder)')
  end;
select case when fred_test.is_extension()
  then is(pg_temp.sqlstate_as('authenticated', 'set fred.max_transcript_bytes = 2000000'), '42501',
          'extension: authenticated may not change fred.max_transcript_bytes')
  else is(pg_temp.sqlstate_as('authenticated', 'set fred.max_transcript_bytes = 2000000'), 'ok',
          'SQL install: fred.max_transcript_bytes is a placeholder too')
  end;
select case when fred_test.is_extension()
  then is((select context from pg_settings where name = 'fred.max_transcript_entries'), 'superuser',
          'extension: fred.max_transcript_entries is a superuser setting')
  else is((select context from pg_settings where name = 'fred.max_transcript_entries'), null,
          'SQL install: fred.max_transcript_entries is no registered setting')
  end;
reset fred.max_transcript_entries;
reset fred.max_transcript_bytes;

-- 1. anon may call none of the four functions.
select throws_ok($$ select fred_test.rpc('anon', null, 'fred_get_session', '{"session_id": "00000000-0000-0000-0000-000000000001"}') $$,
                 '42501', null, 'anon: fred_get_session is denied');
select throws_ok($$ select fred_test.rpc('anon', null, 'fred_list_sessions', '{}') $$,
                 '42501', null, 'anon: fred_list_sessions is denied');
select throws_ok($$ select fred_test.rpc('anon', null, 'fred_upsert_session', '{"room_name": "rpc-anon"}') $$,
                 '42501', null, 'anon: fred_upsert_session is denied');
select throws_ok($$ select fred_test.rpc('anon', null, 'fred_persist_transcript', '{"room_name": "rpc-anon", "transcript": []}') $$,
                 '42501', null, 'anon: fred_persist_transcript is denied');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'rpc-anon'), 0, 'anon created nothing');
select is(current_user::text, 'postgres', 'a denied request leaves the session role as it was');

-- An authenticated request without a user id (no sub claim) may neither write nor read.
select throws_ok($$ select fred_test.rpc('authenticated', null, 'fred_upsert_session', '{"room_name": "rpc-nosub"}') $$,
                 '42501', null, 'authenticated without a sub: upsert is denied');
select throws_ok($$ select fred_test.rpc('authenticated', null, 'fred_persist_transcript', '{"room_name": "rpc-nosub", "transcript": []}') $$,
                 '42501', null, 'authenticated without a sub: persist is denied');

-- 2. User A: create, persist, read back, list.
insert into ids select 'a', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
  '{"room_name": "rpc-a", "call_type": "coaching", "metadata": {"topic": "pitch"}}')::uuid;
select isnt((select id from ids where k = 'a'), null, 'A: fred_upsert_session returns the session id');
select is((select (user_id, call_type, metadata, status) from fred.coaching_sessions where id = (select id from ids where k = 'a')),
          row('00000000-0000-0000-0000-00000000000a'::uuid, 'coaching'::text, '{"topic": "pitch"}'::jsonb, 'active'::text),
          'A: the session is owned by A, with its call type and metadata');
select is(fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "rpc-a"}')::uuid,
          (select id from ids where k = 'a'), 'A: a repeat upsert returns the same session');
select is(fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
            '{"room_name": "rpc-a", "user_id": "00000000-0000-0000-0000-00000000000a"}')::uuid,
          (select id from ids where k = 'a'), 'A: upsert naming A''s own user_id is allowed');
select is(fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
            '{"room_name": "rpc-a", "transcript": [{"text": "hello", "speaker": "user"}, {"text": "hi", "role": "coach", "ts": 2}],
              "summary": "a short call", "decisions": ["d1"], "next_actions": ["n1", "n2"]}')::uuid,
          (select id from ids where k = 'a'), 'A: fred_persist_transcript writes to A''s session');
select is((fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0)
            - array['created_at', 'updated_at', 'id', 'transcript_digest'],
          jsonb_build_object('room_name', 'rpc-a', 'user_id', '00000000-0000-0000-0000-00000000000a', 'status', 'active',
            'transcript_json', '[{"text": "hello", "speaker": "user"}, {"text": "hi", "role": "coach", "ts": 2}]'::jsonb,
            'transcript_entries', 2, 'summary', 'a short call', 'decisions', '["d1"]'::jsonb, 'next_actions', '["n1", "n2"]'::jsonb,
            'call_type', 'coaching', 'metadata', '{"topic": "pitch"}'::jsonb)
          || (select jsonb_object_agg(k, null) from unnest(array['room_sid', 'started_at', 'ended_at', 'duration_seconds', 'end_reason',
            'last_event_at', 'recording_url', 'recording_status', 'recording_bucket', 'recording_key', 'recording_bytes',
            'recording_duration_ms', 'recording_error', 'recording_verified_at', 'egress_id', 'egress_status', 'egress_updated_ns']) k),
          'A: fred_get_session returns the whole row, transcript, summary and owner included');
select is((fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_get_session',
             jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0 ->> 'id')::uuid,
          (select id from ids where k = 'a'), 'A: fred_get_session returns the asked session');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_list_sessions', '{}')),
          array[(select id from ids where k = 'a')], 'A: fred_list_sessions lists A''s session');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_list_sessions', '{"max_rows": 5}')),
          array[(select id from ids where k = 'a')], 'A: fred_list_sessions with max_rows');
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_get_session',
            '{"session_id": "00000000-0000-0000-0000-000000000001"}') -> 0 ->> 'id', null,
          'A: a session that does not exist reads as NULL');

-- 3. User B cannot see or change A's session.
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0 ->> 'id', null,
          'B: A''s session reads as NULL');
select ok(not exists (select 1 from jsonb_each(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0) e where e.value <> 'null'),
          'B: every field of A''s session reads as NULL');
select ok(not ((select id from ids where k = 'a') = any(pg_temp.ids(
            fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_list_sessions', '{"max_rows": 1000}')))),
          'B: fred_list_sessions does not list A''s session');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_persist_transcript',
                      '{"room_name": "rpc-a", "transcript": [{"text": "mine now", "speaker": "user"}], "summary": "stolen"}') $$,
                 '42501', null, 'B: persisting to A''s room is denied');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session',
                      '{"room_name": "rpc-a", "call_type": "stolen"}') $$,
                 '42501', null, 'B: upserting A''s room is denied');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session',
                      '{"room_name": "rpc-b-for-a", "user_id": "00000000-0000-0000-0000-00000000000a"}') $$,
                 '42501', null, 'B: creating a session owned by A is denied');
select is((select (user_id, summary, transcript_entries, call_type) from fred.coaching_sessions where id = (select id from ids where k = 'a')),
          row('00000000-0000-0000-0000-00000000000a'::uuid, 'a short call'::text, 2, 'coaching'::text),
          'A''s session is unchanged by B''s attempts');
select is((select count(*)::int from fred.coaching_sessions where room_name in ('rpc-a', 'rpc-b-for-a')), 1,
          'B''s attempts created no session');

-- 4. A session without an owner (from LiveKit, no user_id in the room metadata) cannot be claimed.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_rpc_noowner", "createdAt": "1795510800",
            "room": {"sid": "RM_rpc_noowner", "name": "rpc-noowner", "creationTime": "1795510800"}}'), 'applied',
          'a session without an owner is created by a room_started event');
insert into ids select 'noowner', id from fred.coaching_sessions where room_sid = 'RM_rpc_noowner';
select is((select user_id from fred.coaching_sessions where id = (select id from ids where k = 'noowner')), null, 'it has no owner');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      '{"room_name": "rpc-noowner", "transcript": [{"text": "x", "speaker": "user"}]}') $$,
                 '42501', null, 'a user cannot persist to a session without an owner');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
                      '{"room_name": "rpc-noowner"}') $$,
                 '42501', null, 'a user cannot claim a session without an owner by upsert');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
                      '{"room_name": "rpc-noowner", "user_id": "00000000-0000-0000-0000-00000000000a"}') $$,
                 '42501', null, 'a user cannot claim a session without an owner by naming themselves');
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'noowner'))) -> 0 ->> 'id', null,
          'a user cannot read a session without an owner');
select ok(not ((select id from ids where k = 'noowner') = any(pg_temp.ids(
            fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_list_sessions', '{"max_rows": 1000}')))),
          'a user does not list a session without an owner');
select is((select (user_id, transcript_entries) from fred.coaching_sessions where id = (select id from ids where k = 'noowner')),
          row(null::uuid, 0), 'the session without an owner is unchanged');

-- 5. Caps and shape through the API: 22001 and 22023, so PostgREST answers 400.
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      jsonb_build_object('room_name', 'rpc-a', 'transcript', (select t501 from tr))) $$,
                 '22001', null, '501 entries over RPC fail with 22001');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      jsonb_build_object('room_name', 'rpc-new', 'transcript', (select t501 from tr))) $$,
                 '22001', null, '501 entries over RPC fail with 22001 for a new room too');
select lives_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      jsonb_build_object('room_name', 'rpc-cap', 'transcript', (select t501 - 500 from tr))) $$,
                '500 entries over RPC pass');
select throws_like($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                        '{"room_name": "rpc-a", "transcript": [{"text": "ok", "speaker": "user"}, {"text": "no speaker"}]}') $$,
                   '%entry 1 %', 'a bad entry over RPC names its index');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      '{"room_name": "rpc-a", "transcript": [{"text": "ok", "speaker": "user"}, {"text": "no speaker"}]}') $$,
                 '22023', null, 'a bad entry over RPC fails with 22023');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      '{"room_name": "rpc-a", "transcript": {"text": "x", "speaker": "y"}}') $$,
                 '22023', null, 'an object transcript over RPC fails with 22023');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      '{"room_name": "rpc-a", "transcript": null}') $$,
                 '22023', null, 'a null transcript over RPC fails with 22023');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
                      '{"room_name": ""}') $$,
                 '22023', null, 'an empty room_name over RPC fails with 22023');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
                      '{"room_name": "rpc-meta", "metadata": [1]}') $$,
                 '22023', null, 'metadata that is not an object fails with 22023');
select is((select (transcript_entries, summary) from fred.coaching_sessions where id = (select id from ids where k = 'a')),
          row(2, 'a short call'::text), 'rejected persists change nothing stored');

-- 6. service_role is trusted: it reads and lists every session and may name the owner.
select is((fred_test.rpc('service_role', null, 'fred_get_session',
             jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0 ->> 'summary'),
          'a short call', 'service_role reads A''s session');
select is((fred_test.rpc('service_role', null, 'fred_get_session',
             jsonb_build_object('session_id', (select id from ids where k = 'noowner'))) -> 0 ->> 'room_name'),
          'rpc-noowner', 'service_role reads a session without an owner');
select set_eq($$ select unnest(pg_temp.ids(fred_test.rpc('service_role', null, 'fred_list_sessions', '{"max_rows": 1000}'))) $$,
              $$ select id from fred.coaching_sessions $$, 'service_role lists every session');
insert into ids select 'svc', fred_test.rpc1('service_role', null, 'fred_upsert_session',
  '{"room_name": "rpc-svc", "user_id": "00000000-0000-0000-0000-00000000000a"}')::uuid;
select is((select user_id from fred.coaching_sessions where id = (select id from ids where k = 'svc')),
          '00000000-0000-0000-0000-00000000000a'::uuid, 'service_role creates a session for A');
select is((fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_get_session',
             jsonb_build_object('session_id', (select id from ids where k = 'svc'))) -> 0 ->> 'room_name'),
          'rpc-svc', 'A reads the session service_role made for A');
select is(fred_test.rpc1('service_role', null, 'fred_persist_transcript',
            '{"room_name": "rpc-noowner", "transcript": [{"text": "from the server", "speaker": "coach"}]}')::uuid,
          (select id from ids where k = 'noowner'), 'service_role persists to a session without an owner');

-- 7. fred_list_sessions: newest first, `before`, max_rows clamped to 1..1000.
insert into ids
select 'c' || i, fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_upsert_session',
                                jsonb_build_object('room_name', 'rpc-c' || i))::uuid
  from generate_series(1, 3) i;
update fred.coaching_sessions s set created_at = '2026-11-24 10:00:00+00'::timestamptz + (i.k || ' hours')::interval
  from (select substr(k, 2) as k, id from ids where k like 'c_') i where s.id = i.id;
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions', '{}')),
          array(select id from ids where k in ('c3', 'c2', 'c1') order by k desc), 'newest created_at first');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions',
                                    '{"before": "2026-11-24T13:00:00Z"}')),
          array(select id from ids where k in ('c2', 'c1') order by k desc), 'before excludes sessions created at or after it');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions',
                                    '{"before": "2026-11-24T13:00:00Z", "max_rows": 1}')),
          array(select id from ids where k = 'c2'), 'before with max_rows pages on');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions',
                                    '{"before": "2026-11-24T11:00:00Z"}')),
          '{}'::uuid[], 'nothing before the oldest');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions', '{"max_rows": 2}')),
          array(select id from ids where k in ('c3', 'c2') order by k desc), 'max_rows 2 gives the newest two');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions', '{"max_rows": 0}')),
          array(select id from ids where k = 'c3'), 'max_rows 0 gives 1 row');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions', '{"max_rows": -5}')),
          array(select id from ids where k = 'c3'), 'max_rows -5 gives 1 row');
select is(pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000c', 'fred_list_sessions', '{"max_rows": null}')),
          array(select id from ids where k in ('c3', 'c2', 'c1') order by k desc), 'max_rows null means the default');
insert into fred.coaching_sessions (room_name, user_id, created_at)
select 'rpc-e' || i, '00000000-0000-0000-0000-00000000000e', '2026-01-01'::timestamptz + (i || ' minutes')::interval
  from generate_series(1, 1001) i;
select is(jsonb_array_length(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000e', 'fred_list_sessions', '{}')), 20,
          'the default is 20 rows');
select is(jsonb_array_length(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000e', 'fred_list_sessions',
                                           '{"max_rows": 5000}')), 1000, 'max_rows 5000 gives 1000 rows');
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000e', 'fred_list_sessions', '{"max_rows": 1000}') -> 999 ->> 'room_name',
          'rpc-e2', 'the 1000 rows are the newest');

-- 8. The daemon's role applies events but reads no transcript; end users cannot apply events.
select is(pg_temp.sqlstate_as('fred_syncd', 'select transcript_json from fred.coaching_sessions'), '42501',
          'fred_syncd cannot read transcripts');
select is(pg_temp.sqlstate_as('fred_syncd', 'select count(*) from fred.coaching_sessions'), '42501',
          'fred_syncd cannot read sessions at all');
select is(current_user::text, 'postgres', 'the role is restored after a denied statement');
select ok(has_function_privilege('fred_syncd', 'fred.apply_livekit_event(jsonb)', 'execute'), 'fred_syncd may execute fred.apply_livekit_event');
select is(pg_temp.sqlstate_as('fred_syncd', $q$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_rpc_syncd",
            "createdAt": "1795510800", "room": {"sid": "RM_rpc_syncd", "name": "rpc-syncd", "creationTime": "1795510800"}}') $q$),
          'ok', 'fred_syncd applies an event');
select is((select count(*)::int from fred.coaching_sessions where room_sid = 'RM_rpc_syncd'), 1, 'the event fred_syncd applied made its session');
select ok(not has_function_privilege('authenticated', 'fred.apply_livekit_event(jsonb)', 'execute'),
          'authenticated may not execute fred.apply_livekit_event');
select is(pg_temp.sqlstate_as('authenticated', $q$ select fred.apply_livekit_event('{}') $q$), '42501',
          'authenticated calling fred.apply_livekit_event is denied');
select is(pg_temp.sqlstate_as('authenticated', $q$ select * from fred.apply_livekit_events('[]') $q$), '42501',
          'authenticated calling fred.apply_livekit_events is denied');
select is(pg_temp.sqlstate_as('anon', $q$ select fred.apply_livekit_event('{}') $q$), '42501',
          'anon calling fred.apply_livekit_event is denied');
select is(pg_temp.sqlstate_as('authenticated', 'select transcript_json from fred.coaching_sessions'), '42501',
          'authenticated cannot read the table directly');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'apply_livekit_event', '{}') $$,
                 '42883', null, 'fred.* is not reachable over RPC (PostgREST answers 404)');

-- A custom role derived from authenticated (a JWT may name one) is an end user, not trusted.
do $custom$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_test_custom') then
    create role fred_test_custom nologin inherit;
  end if;
end $custom$;
grant authenticated to fred_test_custom;
select is(pg_temp.ids(fred_test.rpc('fred_test_custom', '00000000-0000-0000-0000-00000000000b', 'fred_list_sessions', '{}')),
          pg_temp.ids(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_list_sessions', '{}')),
          'a role derived from authenticated sees only its own sessions');
select is(fred_test.rpc('fred_test_custom', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'a'))) -> 0 ->> 'id', null,
          'a role derived from authenticated cannot read another user''s session');

-- 9. PostgREST's login role can become each API role.
select is_member_of('authenticated', array['authenticator']::name[], 'authenticator is a member of authenticated');
select is_member_of('anon', array['authenticator']::name[], 'authenticator is a member of anon');
select is_member_of('service_role', array['authenticator']::name[], 'authenticator is a member of service_role');

-- 10. A user who creates a session under a room name before the call cannot take the call
-- over: a room is bound only to a session whose owner agrees with the room's metadata, and
-- the metadata's owner wins.
create temp table squat as
select fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "room-squat"}') as id;
create temp table squat_applied as
select fred.apply_livekit_event(fred_test.retag(body, 'squat')) as r from fred_test.call_events order by seq;
select is((select user_id from fred.coaching_sessions where room_sid = 'RM_squat'), '7c9e6679-7425-40de-944b-e07fc1f90ae7'::uuid,
          'a call belongs to the user its room metadata names, even if another user created a session of that name first');
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', fred_test.session_of('squat'))) -> 0 ->> 'recording_url', null,
          'a user who created a session under the room name first cannot read the call''s recording');

select * from finish();
rollback;
