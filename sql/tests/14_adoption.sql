-- Adopting fred: service_role names the owner when it persists, the server-only write mode, and
-- calls recorded by LiveKit's own auto-egress.
begin;
select plan(25);

\set alice '''aaaaaaaa-0000-4000-8000-00000000000a'''
\set bob '''bbbbbbbb-0000-4000-8000-00000000000b'''

-- 1. service_role names the owner: the agent persists before any session exists.
select fred_test.rpc1('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'adopt-agent-first', 'transcript', '[{"role": "user", "text": "hi"}]'::jsonb,
                            'user_id', :alice)) as agent_first \gset
select is(:'agent_first', (select id::text from fred.coaching_sessions where room_name = 'adopt-agent-first'),
          'user_id for service_role: the agent''s persist creates the session');
select is((select user_id::text from fred.coaching_sessions where room_name = 'adopt-agent-first'), :alice,
          'user_id for service_role: the session belongs to the named user, not to nobody');
select is(jsonb_array_length(fred_test.rpc('authenticated', :alice, 'fred_list_sessions', '{}')
                              -> 0 -> 'transcript_json'), 1,
          'user_id for service_role: the owner reads it through fred_list_sessions');
-- An unowned session (LiveKit created it from metadata without user_id) gets the named owner.
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_adopt_1", "room": {"sid": "RM_adopt_1", "name": "adopt-unowned"}}');
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
                     jsonb_build_object('room_name', 'adopt-unowned', 'transcript', '[]'::jsonb, 'user_id', :bob));
select is((select user_id::text from fred.coaching_sessions where room_sid = 'RM_adopt_1'), :bob,
          'user_id for service_role: an ownerless session gets the named owner');
-- A name that belongs to one user is never written for another, even by service_role.
create temp table adopt_before as select to_jsonb(s) as row from fred.coaching_sessions s where room_name = 'adopt-agent-first';
select is(fred_test.sqlstate($q$ select fred_test.rpc('service_role', null, 'fred_persist_transcript',
            '{"room_name": "adopt-agent-first", "transcript": [], "user_id": "bbbbbbbb-0000-4000-8000-00000000000b"}') $q$),
          '42501', 'user_id for service_role: naming another owner for an owned room is 42501');
select is((select to_jsonb(s) from fred.coaching_sessions s where room_name = 'adopt-agent-first'), (select row from adopt_before),
          'user_id for service_role: and the session is unchanged');
-- For a signed-in user, user_id is their own or NULL.
select is(fred_test.sqlstate($q$ select fred_test.rpc('authenticated', 'aaaaaaaa-0000-4000-8000-00000000000a', 'fred_persist_transcript',
            '{"room_name": "adopt-user", "transcript": [], "user_id": "bbbbbbbb-0000-4000-8000-00000000000b"}') $q$),
          '42501', 'user_id for a user: someone else''s id is 42501');
select ok(fred_test.rpc1('authenticated', :alice, 'fred_persist_transcript',
            jsonb_build_object('room_name', 'adopt-user', 'transcript', '[]'::jsonb, 'user_id', :alice)) is not null,
          'user_id for a user: their own id is accepted');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'adopt-user' and user_id = :alice::uuid), 1,
          'user_id for a user: one session, theirs');
-- The 0.1.0 call shapes still work: named without user_id, and six positional arguments.
select ok(fred_test.rpc1('authenticated', :alice, 'fred_persist_transcript',
            '{"room_name": "adopt-user", "transcript": [{"speaker": "coach", "text": "again"}], "summary": "s"}') is not null,
          'the 0.1.0 named call still works');
select fred_persist_transcript('adopt-positional', '[]', 'sum', '[]', '[]', 'intro') as positional \gset
select is(:'positional', (select id::text from fred.coaching_sessions where room_name = 'adopt-positional' and call_type = 'intro'),
          'the 0.1.0 positional call still works');
select is((select count(*)::int from pg_proc where proname = 'fred_persist_transcript' and pronamespace = 'public'::regnamespace), 1,
          'one fred_persist_transcript in public: no overload to make named calls ambiguous');

-- 2. The write mode.
select is(fred.write_mode(), 'users', 'write mode: users by default');
select ok(not has_function_privilege('authenticated', 'fred.set_write_mode(text)', 'execute')
          and not has_function_privilege('anon', 'fred.set_write_mode(text)', 'execute')
          and not has_function_privilege('fred_syncd', 'fred.set_write_mode(text)', 'execute'),
          'write mode: users, anon and the daemon cannot switch it');
select is(fred_test.query_as('service_role', null, $q$ select fred.set_write_mode('server_only') as m $q$),
          '[{"m": "server_only"}]'::jsonb, 'write mode: service_role switches to server_only in one statement');
select is(fred_test.sqlstate($q$ select fred_test.rpc('authenticated', 'aaaaaaaa-0000-4000-8000-00000000000a', 'fred_upsert_session', '{"room_name": "adopt-user"}') $q$),
          '42501', 'server_only: a user''s fred_upsert_session is 42501');
select is(fred_test.sqlstate($q$ select fred_test.rpc('authenticated', 'aaaaaaaa-0000-4000-8000-00000000000a', 'fred_persist_transcript', '{"room_name": "adopt-user", "transcript": []}') $q$),
          '42501', 'server_only: a user''s fred_persist_transcript is 42501');
select is(jsonb_array_length(fred_test.rpc('authenticated', :alice, 'fred_list_sessions', '{}')), 2,
          'server_only: reads stay: the user lists their own two sessions');
select is(jsonb_array_length(fred_test.rpc('authenticated', :bob, 'fred_list_sessions', '{}')), 1,
          'server_only: reads stay owner-only');
select ok(fred_test.rpc1('service_role', null, 'fred_persist_transcript',
            jsonb_build_object('room_name', 'adopt-user', 'transcript', '[{"role": "assistant", "text": "server"}]'::jsonb, 'user_id', :alice)) is not null,
          'server_only: the server still writes for the user');
select is(fred_test.sqlstate($q$ select fred.set_write_mode('everyone') $q$), '22023', 'write mode: an unknown mode is 22023');
select is(fred.set_write_mode('users'), 'users', 'write mode: back to users');
select ok(fred_test.rpc1('authenticated', :alice, 'fred_upsert_session', '{"room_name": "adopt-user"}') is not null,
          'users: the user writes again');

-- 3. Recording by LiveKit's auto-egress (SYNCD_RECORD=none): the webhooks alone give the same row
--    as when syncd's own record of the recording is mixed in.
select fred.apply_livekit_event(fred_test.retag(body, 'auto')) from fred_test.call_events order by seq;
select fred.apply_livekit_events(jsonb_build_array(jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_started_RM_withsyncd',
         'egress_id', 'EG_demo000000001', 'room', jsonb_build_object('sid', 'RM_withsyncd', 'name', 'room-withsyncd'))));
select fred.apply_livekit_event(fred_test.retag(body, 'withsyncd')) from fred_test.call_events order by seq;
select is(fred_test.outcome(fred_test.session_of('auto')),
          replace(fred_test.outcome(fred_test.session_of('withsyncd'))::text, 'withsyncd', 'auto')::jsonb,
          'auto-egress: the same row with or without syncd starting the egress');
select is((select (recording_status, recording_key is not null) from fred.coaching_sessions where room_sid = 'RM_auto'),
          row('uploaded'::text, true), 'auto-egress: the recording is tracked to uploaded, with its key');

select * from finish();
rollback;
