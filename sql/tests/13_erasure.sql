-- Erasure (issue 14): fred_delete_session by the owner and by service_role, through the emulated
-- PostgREST path; the deletion of an auth.users row; the recording left for syncd's retention job
-- (sql side; syncd/tests/erasure.rs deletes a real object); the tombstone against a redelivered
-- webhook and a late event; a content-free change event.
begin;
select plan(49);

create function pg_temp.rt() returns boolean
language sql stable as $$ select to_regclass('realtime.messages') is not null $$;

-- The payloads sent to a user's topic since the last call (then removed).
create function pg_temp.take(p_owner text) returns jsonb
language plpgsql as $$
declare
  r jsonb;
begin
  if not pg_temp.rt() then
    return null;
  end if;
  execute $q$select coalesce(jsonb_agg(m.payload order by m.payload ->> 'session_id'), '[]')
               from realtime.messages m where m.topic = 'fred:user:' || $1$q$ into r using p_owner;
  execute 'delete from realtime.messages';
  return r;
end
$$;

create function pg_temp.del(p_role text, p_sub text, p_id uuid) returns text
language sql as $$
  select fred_test.rpc1(p_role, p_sub, 'fred_delete_session', jsonb_build_object('session_id', p_id))
$$;

create function pg_temp.exists_(p_id uuid) returns boolean
language sql stable as $$ select exists (select 1 from fred.coaching_sessions where id = p_id) $$;

create function pg_temp.erased(p_id uuid) returns jsonb
language sql immutable as $$
  select jsonb_build_object('session_id', p_id, 'room_name', null, 'status', null, 'recording_status', null,
                            'has_summary', false, 'changed', '["erased"]'::jsonb)
$$;

-- The sample call for user A (7c9e…), recorded, verified and summarised.
create temp table calls (tag text primary key, id uuid);
create function pg_temp.call(p_tag text) returns uuid
language plpgsql as $$
declare
  v uuid;
begin
  -- The app creates the session with metadata, then the room's events bind to it.
  perform fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_upsert_session',
    jsonb_build_object('room_name', 'room-' || p_tag, 'metadata', '{"note": "personal"}'::jsonb));
  perform fred.apply_livekit_event(fred_test.retag(body, p_tag)) from fred_test.call_events order by seq;
  v := fred_test.session_of(p_tag);
  perform fred.record_verification(v, true, 4321);
  perform fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_persist_transcript',
    jsonb_build_object('room_name', 'room-' || p_tag, 'transcript', '[{"role": "user", "text": "my words"}]'::jsonb,
                       'summary', 'my summary', 'decisions', '["d"]'::jsonb));
  if (select metadata from fred.coaching_sessions where id = v) is null then
    raise exception 'the call has no metadata';
  end if;
  insert into calls values (p_tag, v);
  return v;
end
$$;
select pg_temp.call('er1');
select pg_temp.take('7c9e6679-7425-40de-944b-e07fc1f90ae7');

-- 1. The contract.
select is((select proargnames from pg_proc where oid = to_regprocedure('public.fred_delete_session(uuid)')),
          array['session_id'], 'fred_delete_session(session_id uuid)');
select ok(has_function_privilege('authenticated', 'public.fred_delete_session(uuid)', 'execute')
          and has_function_privilege('service_role', 'public.fred_delete_session(uuid)', 'execute'),
          'authenticated and service_role may call it');
select ok(not has_function_privilege('anon', 'public.fred_delete_session(uuid)', 'execute')
          and not has_function_privilege('fred_syncd', 'public.fred_delete_session(uuid)', 'execute')
          and not has_function_privilege('authenticated', 'fred.erase_session(uuid)', 'execute'),
          'anon and fred_syncd may not; nobody calls the erasure itself directly');
select is(fred_test.sqlstate($$ select fred_test.rpc('anon', null, 'fred_delete_session', '{"session_id": "00000000-0000-0000-0000-000000000000"}') $$),
          '42501', 'anon: 42501');

-- 2. Someone else's id behaves as a missing one.
select is(pg_temp.del('authenticated', '00000000-0000-0000-0000-00000000000b', (select id from calls where tag = 'er1')), 'false',
          'user B deleting A''s session: false');
select is(pg_temp.del('authenticated', '00000000-0000-0000-0000-00000000000b', gen_random_uuid()), 'false',
          'a missing id: the same false');
select ok(pg_temp.exists_((select id from calls where tag = 'er1')), 'A''s session is untouched');

-- 3. The owner erases: everything goes at once but the recording object's location.
select is(pg_temp.del('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', (select id from calls where tag = 'er1')), 'true',
          'the owner deletes their session: true');
select ok(not pg_temp.exists_((select id from calls where tag = 'er1')),
          'the row is gone: transcript, summary, decisions, metadata with it');
select is(fred_test.rpc('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_get_session',
            jsonb_build_object('session_id', (select id from calls where tag = 'er1'))) -> 0 ->> 'id',
          null, 'fred_get_session: NULL for the owner');
select is(coalesce(fred_test.rpc('service_role', null, 'fred_list_sessions', '{"max_rows": 1000}'), '[]') @?
            format('$[*] ? (@.room_sid == "%s")', 'RM_er1')::jsonpath, false, 'fred_list_sessions: gone for service_role too');
select is(pg_temp.del('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', (select id from calls where tag = 'er1')), 'false',
          'deleting it again: false');
select is((select to_jsonb(r) - 'erased_at' from fred.erased_rooms r where r.room_sid = 'RM_er1'), '{"room_sid": "RM_er1"}'::jsonb,
          'a tombstone of the room sid, nothing else');
select is((select count(*)::int from fred.livekit_events where room_sid = 'RM_er1' and room_name is not null), 0,
          'the ledger keeps no room name of the erased room');
select is((select bucket || '/' || key from fred.erasures where session_id = (select id from calls where tag = 'er1')),
          'voice-recordings/room-er1/2026-11-24T101500.ogg', 'the recording object waits for the retention job');
select case when pg_temp.rt() then
         is(pg_temp.take('7c9e6679-7425-40de-944b-e07fc1f90ae7'), jsonb_build_array(pg_temp.erased((select id from calls where tag = 'er1'))),
            'one content-free change event to the owner''s topic')
       else skip('no Realtime fixture: the erasure event', 1) end;

-- 4. Retention finishes it: due whatever the retention age, first; then the bookkeeping row goes.
insert into fred.coaching_sessions (room_name, ended_at, recording_status, recording_bucket, recording_key)
values ('er-aged', now() - interval '400 days', 'ready', 'voice-recordings', 'er-aged/old.ogg');
select ok((select bool_or(r.session_id = (select id from calls where tag = 'er1')) from fred.recordings_to_delete(3650, 1000) r),
          'recordings_to_delete returns the erased session, whatever its age');
select is((select count(*)::int from fred.recordings_to_delete(1, (select count(*)::int from fred.erasures)) r
            where r.session_id not in (select e.session_id from fred.erasures e)), 0,
          'erased sessions come first, before recordings due by age');
select ok(fred.mark_recording_deleted((select id from calls where tag = 'er1')), 'marked deleted after DeleteObject');
select is((select count(*)::int from fred.erasures where session_id = (select id from calls where tag = 'er1')), 0,
          'the erasure is finished: no row left');
select ok(not fred.mark_recording_deleted((select id from calls where tag = 'er1')), 'marking again: false');
select is((select count(*)::int from fred.recordings_to_delete(3650) r where r.session_id = (select id from calls where tag = 'er1')), 0,
          'not due again');

-- 5. Neither a redelivered webhook nor a late event brings it back.
select is((select string_agg(distinct fred.apply_livekit_event(fred_test.retag(body, 'er1')), ',') from fred_test.call_events),
          'duplicate', 'the whole call redelivered: duplicates');
select is((select string_agg(distinct r.result || coalesce(' ' || r.error_code, ''), ',')
             from fred_test.call_events e,
                  lateral fred.apply_livekit_events(
                    jsonb_build_array(jsonb_set(fred_test.retag(e.body, 'er1'), '{id}', to_jsonb('EV_late_' || e.seq)))) r
            where e.seq in (5, 7, 8)),
          'duplicate', 'late events (new ids, the same room) through the batch API: duplicate, never an error');
select is(fred.apply_syncd_event('{"event": "syncd_egress_started", "id": "SY_late_er1", "room": {"sid": "RM_er1", "name": "room-er1"}, "egress_id": "EG_x"}'),
          'duplicate', 'a late syncd event: duplicate');
select is((select count(*)::int from fred.coaching_sessions where room_sid = 'RM_er1' or room_name = 'room-er1'), 0,
          'no session came back');
select is((select string_agg(outcome || ':' || coalesce(room_name, '-'), ',') from fred.livekit_events where event_id like 'EV_late_%' or event_id = 'SY_late_er1'),
          'ignored:-,ignored:-,ignored:-,ignored:-', 'the late events are in the ledger as ignored, without a room name');
select is((select count(*)::int from fred.livekit_events l join fred_test.call_events e on l.event_id = 'EV_late_' || e.seq
            where l.created_at is not distinct from timestamptz 'epoch' + (e.body ->> 'createdAt')::bigint * interval '1 second'
              and l.room_sid = 'RM_er1' and l.event_type = e.body ->> 'event'),
          3, 'each keeps its id, type, room sid and time');
select is(fred_test.sqlstate($$ insert into fred.coaching_sessions (room_name, room_sid) values ('x', 'RM_er1') $$), '40001',
          'no writer may give a session an erased room''s sid (a writer racing the erasure retries, then stops at the ledger)');
-- Any writer's ledger row meets the tombstone, not only the engines'.
insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
values ('EV_direct_er1', 'participant_left', 'RM_er1', 'room-er1', now(), 'applied');
select is((select outcome || ':' || coalesce(room_name, '-') from fred.livekit_events where event_id = 'EV_direct_er1'),
          'ignored:-', 'a direct ledger insert of an erased room''s event: ignored, without its room name');
-- The lookup compares the sid exactly, under the column's collation (the extension probes the
-- primary key's index itself): a sid that differs only in case or accent is another room.
insert into fred.erased_rooms (room_sid) values ('RM_Ünï_er');
select is(fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_uni_er1", "room": {"sid": "RM_Ünï_er", "name": "room-uni"}}'),
          'duplicate', 'an event of an erased room whose sid is not ASCII: duplicate');
select is(fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_uni_er2", "room": {"sid": "RM_ünï_er", "name": "room-uni"}}'),
          'applied', 'a sid that differs from an erased one only in case is another room: applied');
-- The room name itself is free again: a new call of the same name is a new session.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_er1_new", "room": {"sid": "RM_er1_new", "name": "room-er1"}}'),
          'applied', 'a new room of the same name applies');
select throws_ok($$ update fred.coaching_sessions set room_sid = 'RM_er1' where room_sid = 'RM_er1_new' $$, '40001',
                 'fred: room RM_er1 was erased', 'nor move a session onto it, with the same error from both installs');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'room-er1'), 1, 'and is a new session');

-- 6. service_role erases any session, owned or not; a user cannot erase an unowned one.
select pg_temp.call('er2');
select is(pg_temp.del('service_role', null, (select id from calls where tag = 'er2')), 'true', 'service_role deletes A''s session');
select ok(not pg_temp.exists_((select id from calls where tag = 'er2')) and exists (select 1 from fred.erased_rooms where room_sid = 'RM_er2'),
          'gone, with its tombstone');
select is(fred.apply_livekit_event(fred_test.retag((select body from fred_test.call_events where seq = 8), 'er2')), 'duplicate',
          'its room_finished redelivered: duplicate');
select fred_test.rpc1('service_role', null, 'fred_upsert_session', '{"room_name": "er-unowned"}');
select is(pg_temp.del('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7',
                      (select id from fred.coaching_sessions where room_name = 'er-unowned')), 'false',
          'a user cannot erase a session without an owner');
select is(pg_temp.del('service_role', null, (select id from fred.coaching_sessions where room_name = 'er-unowned')), 'true',
          'service_role can');
select ok(exists (select 1 from fred.erasures e where e.session_id = (select id from calls where tag = 'er2')),
          'the recording of the service_role erasure waits for retention too');

-- 7. Deleting the Supabase user erases their sessions the same way.
select pg_temp.take('7c9e6679-7425-40de-944b-e07fc1f90ae7');
create function pg_temp.has_auth_trigger() returns boolean
language sql stable as $$
  select to_regclass('auth.users') is not null
     and exists (select 1 from pg_trigger where tgrelid = to_regclass('auth.users') and tgname = 'fred_erase_user_sessions')
$$;
select case when to_regclass('auth.users') is not null then
         ok(pg_temp.has_auth_trigger(), 'the erasure trigger is on auth.users')
       else skip('no auth.users: the trigger is skipped with a NOTICE', 1) end;
do $auth$ begin
  if pg_temp.has_auth_trigger() then
    execute $q$insert into auth.users (id, email) values ('7c9e6679-7425-40de-944b-e07fc1f90ae7', 'a@example.com'),
                                                         ('00000000-0000-0000-0000-00000000000b', 'b@example.com')$q$;
  end if;
end $auth$;
select pg_temp.call('er3');
select fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_upsert_session', '{"room_name": "er3-second"}');
select fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "er3-b"}');
select pg_temp.take('7c9e6679-7425-40de-944b-e07fc1f90ae7');
create temp table before_a as select id from fred.coaching_sessions where user_id = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
select cmp_ok((select count(*)::int from before_a), '>=', 2, 'user A has sessions (the sample call and one more)');
select case when pg_temp.has_auth_trigger() then
         lives_ok($$ delete from auth.users where id = '7c9e6679-7425-40de-944b-e07fc1f90ae7' $$, 'the auth user A is deleted')
       else skip('no auth.users trigger', 1) end;
select case when pg_temp.has_auth_trigger() then
         is((select count(*)::int from fred.coaching_sessions where user_id = '7c9e6679-7425-40de-944b-e07fc1f90ae7'), 0,
            'all of A''s sessions are erased')
       else skip('no auth.users trigger', 1) end;
select case when pg_temp.has_auth_trigger() then
         ok(exists (select 1 from fred.erased_rooms where room_sid = 'RM_er3')
            and exists (select 1 from fred.erasures e join calls c on c.id = e.session_id where c.tag = 'er3'),
            'with tombstones, and the recording left for retention')
       else skip('no auth.users trigger', 1) end;
select case when pg_temp.has_auth_trigger() then
         is(fred.apply_livekit_event(jsonb_set(fred_test.retag((select body from fred_test.call_events where seq = 8), 'er3'), '{id}', '"EV_er3_late"')),
            'duplicate', 'a late event of the erased user''s call: duplicate')
       else skip('no auth.users trigger', 1) end;
select case when pg_temp.has_auth_trigger() and pg_temp.rt() then
         is(pg_temp.take('7c9e6679-7425-40de-944b-e07fc1f90ae7'),
            (select jsonb_agg(pg_temp.erased(id) order by id::text) from before_a),
            'one content-free event per erased session')
       else skip('no auth.users trigger or no Realtime', 1) end;
select is((select count(*)::int from fred.coaching_sessions where room_name = 'er3-b'), 1, 'user B''s session stays');

select * from finish();
rollback;
