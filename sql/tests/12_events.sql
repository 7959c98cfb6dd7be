-- Change events (issue 14): each state change of the sample call emits exactly the expected
-- event to the owner's private Realtime topic; repeats emit nothing; the payload carries no
-- content; user B cannot read user A's messages; a broken or missing Realtime never fails the
-- write. (NOTIFY fred_sessions is received by a second session: sql/tests/roles/listen.sh.)
-- The Realtime checks need the optional fixture sql/tests/setup/supabase_realtime.sql; without
-- it they are skipped, and the writes must still work.
begin;
select plan(43);

create function pg_temp.rt() returns boolean
language sql stable as $$ select to_regclass('realtime.messages') is not null $$;

-- The messages sent since the last call (then removed), as comparable rows.
create function pg_temp.take() returns jsonb
language plpgsql as $$
declare
  r jsonb;
begin
  if not pg_temp.rt() then
    return null;
  end if;
  execute $q$
    select coalesce(jsonb_agg(jsonb_build_object('topic', m.topic, 'changed', m.payload -> 'changed',
                                                 'status', m.payload ->> 'status',
                                                 'recording_status', m.payload ->> 'recording_status')
                              order by m.payload ->> 'changed', m.payload ->> 'recording_status'), '[]')
      from realtime.messages m$q$ into r;
  execute 'delete from realtime.messages';
  return r;
end
$$;

-- One expected message to the sample call's owner.
create function pg_temp.m(p_changed text[], p_status text, p_rec text,
                          p_owner text default '7c9e6679-7425-40de-944b-e07fc1f90ae7') returns jsonb
language sql immutable as $$
  select jsonb_build_object('topic', 'fred:user:' || p_owner, 'changed', to_jsonb(p_changed),
                            'status', p_status, 'recording_status', p_rec)
$$;

-- is(take(), expected), or a skip where there is no Realtime fixture.
create function pg_temp.sent(p_expected jsonb, p_what text) returns text
language plpgsql as $$
begin
  if not pg_temp.rt() then
    return skip('no Realtime fixture: ' || p_what, 1);
  end if;
  return is(pg_temp.take(), p_expected, p_what);
end
$$;

-- Rows of realtime.messages a request role sees while Realtime authorises `p_topic`.
create function pg_temp.visible(p_sub text, p_topic text) returns bigint
language plpgsql as $$
declare
  r jsonb;
begin
  perform set_config('realtime.topic', coalesce(p_topic, ''), true);
  r := fred_test.query_as(case when p_sub is null then 'anon' else 'authenticated' end, p_sub,
                          'select count(*) as n from realtime.messages');
  return (r -> 0 ->> 'n')::bigint;
end
$$;

create function pg_temp.ev(p_seq integer, p_tag text default 'ev12') returns text
language sql as $$
  select fred.apply_livekit_event(fred_test.retag(body, p_tag)) from fred_test.call_events where seq = p_seq
$$;

select pg_temp.take();  -- start from an empty table

-- 1. The sample call, event by event.
select is(pg_temp.ev(1), 'applied', 'room_started applies');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{created}', 'active', null)),
  'room_started: the session is created with the owner in the room''s metadata: one created event, to their topic');
select is(pg_temp.ev(2), 'applied', 'participant_joined applies');
select pg_temp.sent('[]', 'participant_joined changes nothing watched: no event');
select is(pg_temp.ev(3), 'applied', 'egress_started applies');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{recording_status}', 'active', 'starting')), 'egress_started: recording_status starting');
select is(pg_temp.ev(4), 'ignored', 'the egress participant is ignored');
select pg_temp.sent('[]', 'an ignored event emits nothing');
select is(pg_temp.ev(5), 'applied', 'egress_updated applies');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{recording_status}', 'active', 'recording')), 'egress_updated ACTIVE: recording');
select is(pg_temp.ev(6), 'applied', 'participant_left applies');
select pg_temp.sent('[]', 'participant_left: no event');
select is(pg_temp.ev(7), 'applied', 'egress_ended applies');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{recording_status}', 'active', 'uploaded')), 'egress_ended COMPLETE: uploaded');
select is(pg_temp.ev(8), 'applied', 'room_finished applies');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{status}', 'ended', 'uploaded')), 'room_finished: status ended');
select is(fred.record_verification(fred_test.session_of('ev12'), true, 1234), 'ready', 'syncd confirms the object');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{recording_status}', 'ended', 'ready')),
  'recording_status ready: the moment the app refreshes the recording');

-- 2. The summary: an event that says so, never its text.
select isnt(fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_persist_transcript',
              '{"room_name": "room-ev12", "transcript": [{"role": "user", "text": "private words"}], "summary": "SECRET-SUMMARY"}'),
            null, 'the owner persists the transcript and summary');
select case when pg_temp.rt() then
         is((select count(*)::int from realtime.messages m
              where m.payload::text like '%SECRET%' or m.payload::text like '%private words%'
                 or (select array_agg(k order by k) from jsonb_object_keys(m.payload) k)
                    <> array['changed', 'has_summary', 'recording_status', 'room_name', 'session_id', 'status']),
            0, 'the payload is the session id, room name, status, recording status, has_summary and what changed: no transcript, no summary text')
       else skip('no Realtime fixture: payload content', 1) end;
select case when pg_temp.rt() then
         is((select m.payload -> 'has_summary' from realtime.messages m), 'true'::jsonb, 'has_summary says the summary is there')
       else skip('no Realtime fixture: has_summary', 1) end;
select pg_temp.sent(jsonb_build_array(pg_temp.m('{summary}', 'ended', 'ready')), 'the summary set: one event');

-- 3. Identical repeats emit nothing.
select is((select string_agg(distinct fred.apply_livekit_event(fred_test.retag(body, 'ev12')), ',') from fred_test.call_events),
          'duplicate', 'every webhook redelivered: all duplicates');
select is((select string_agg(distinct fred.apply_livekit_event(
                    jsonb_set(fred_test.retag(body, 'ev12'), '{id}', to_jsonb('EV_again_' || seq))), ',')
             from fred_test.call_events where seq <> 4),
          'applied', 'the same events under new ids apply (and change nothing)');
select fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_persist_transcript',
  '{"room_name": "room-ev12", "transcript": [{"role": "user", "text": "private words"}], "summary": "SECRET-SUMMARY"}');
select fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_persist_transcript',
  '{"room_name": "room-ev12", "transcript": [{"role": "user", "text": "private words"}]}');
select fred.record_verification(fred_test.session_of('ev12'), true, 1234);
select pg_temp.sent('[]', 'duplicates, the same state under new ids, no-op persists and a repeated verification emit nothing');

-- 4. A session the app creates for a user: a created event on their topic; an unowned one: none.
select isnt(fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
              '{"room_name": "ev12-app"}'), null, 'a user creates a session');
select fred_test.rpc1('service_role', null, 'fred_upsert_session', '{"room_name": "ev12-unowned"}');
select pg_temp.sent(jsonb_build_array(pg_temp.m('{created}', 'active', null, '00000000-0000-0000-0000-00000000000a')),
  'created: on the owner''s topic; a session without an owner goes to NOTIFY only');

-- 4b. An egress event that also names the room's owner: the owner, then the recording state,
--     each its own event, on both installs (the extension merges both in one statement otherwise).
select pg_temp.take();
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_o1", "createdAt": "1795511000",
  "room": {"sid": "RM_ev12o", "name": "ev12-owner"}}');
select pg_temp.take();
select is(fred.apply_livekit_event('{"event": "egress_started", "id": "EV_o2", "createdAt": "1795511001",
  "room": {"sid": "RM_ev12o", "name": "ev12-owner", "metadata": "{\"user_id\": \"00000000-0000-0000-0000-00000000000b\"}"},
  "egressInfo": {"egressId": "EG_ev12o", "status": "EGRESS_STARTING", "updatedAt": "5"}}'), 'applied',
  'an egress event with the owner in the room''s metadata applies');
select pg_temp.sent(jsonb_build_array(
    pg_temp.m('{recording_status}', 'active', 'starting', '00000000-0000-0000-0000-00000000000b'),
    pg_temp.m('{user_id}', 'active', null, '00000000-0000-0000-0000-00000000000b')),
  'the owner and the recording state change in two steps: two events, the first without the recording state');

-- 5. Privacy: Realtime lets a user join only their own topic (the policy on realtime.messages,
--    checked as Realtime checks it: the request's role and JWT claims, realtime.topic set).
select case when pg_temp.rt() then
         policies_are('realtime'::name, 'messages'::name, array['fred_user_topic_receive']::name[],
                      'the topic policy is on realtime.messages')
       else skip('no Realtime fixture: the policy', 1) end;
select fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
  '{"room_name": "ev12-app", "transcript": [], "summary": "for A"}');
select case when pg_temp.rt() then
         is(array[pg_temp.visible('00000000-0000-0000-0000-00000000000a', 'fred:user:00000000-0000-0000-0000-00000000000a'),
                  pg_temp.visible('00000000-0000-0000-0000-00000000000a', null)],
            array[1, 0]::bigint[], 'user A receives their own topic''s message (and nothing outside a topic check)')
       else skip('no Realtime fixture: A reads A', 1) end;
select case when pg_temp.rt() then
         is(array[pg_temp.visible('00000000-0000-0000-0000-00000000000b', 'fred:user:00000000-0000-0000-0000-00000000000a'),
                  pg_temp.visible('00000000-0000-0000-0000-00000000000b', 'fred:user:00000000-0000-0000-0000-00000000000b'),
                  pg_temp.visible(null, 'fred:user:00000000-0000-0000-0000-00000000000a')],
            array[0, 0, 0]::bigint[], 'user B cannot receive A''s topic, B''s own topic holds nothing of A''s, anon nothing')
       else skip('no Realtime fixture: B reads A', 1) end;
select set_config('realtime.topic', '', true);
select pg_temp.take();

-- 6. A broken Realtime does not fail the write: the row is stored, nothing is sent.
select case when pg_temp.rt() then
         lives_ok($$ create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
                     returns void language plpgsql as $f$ begin raise exception 'realtime is down' using errcode = '58000'; end $f$ $$,
                  'realtime.send replaced by one that fails')
       else skip('no Realtime fixture: a failing realtime.send', 1) end;
select is(pg_temp.ev(1, 'ev12down'), 'applied', 'with realtime.send failing, room_started applies');
select is((select user_id::text || ' ' || status from fred.coaching_sessions where room_sid = 'RM_ev12down'),
          '7c9e6679-7425-40de-944b-e07fc1f90ae7 active', 'and the session is stored');
select pg_temp.sent('[]', 'nothing was sent');

-- 6b. A planted Realtime: where Realtime is not installed, a role that may create a schema makes
--     its own realtime.send. fred calls it with its owner's rights, so only a realtime.send owned
--     by a superuser or by fred's owner is called; the write is stored either way.
--     `p_owner`: who owns the planted function ('planter', or 'fred' for fred's owner). Returns
--     whose rights the function ran with, as it recorded them ('' when it did not run).
create function pg_temp.plant(p_owner text, p_seq integer) returns text
language plpgsql as $$
declare
  fred_owner text := (select p.proowner::regrole::text from pg_proc p
                       where p.oid = 'fred.realtime_send(uuid, jsonb)'::regprocedure);
begin
  perform set_config('fred_test.planted', '', true);
  if to_regnamespace('realtime_kept') is null then
    alter schema realtime rename to realtime_kept;
    if not exists (select 1 from pg_roles where rolname = 'fred_test_planter') then
      create role fred_test_planter nologin;
    end if;
    create schema realtime;
    grant usage on schema realtime to public;
    create function realtime.send(payload jsonb, event text, topic text, private boolean default true)
    returns void language plpgsql as $f$
    begin
      perform pg_catalog.set_config('fred_test.planted', current_user::text, true);
    end $f$;
    grant execute on function realtime.send(jsonb, text, text, boolean) to public;
    alter schema realtime owner to fred_test_planter;
  end if;
  execute format('alter function realtime.send(jsonb, text, text, boolean) owner to %s',
                 case p_owner when 'fred' then fred_owner else 'fred_test_planter' end);
  perform pg_temp.ev(p_seq, 'ev12plant');
  return coalesce(current_setting('fred_test.planted', true), '');
end
$$;
select case when pg_temp.rt() then
         is(pg_temp.plant('planter', 1), '', 'a realtime.send planted by a role that is neither a superuser nor fred''s owner is not called')
       else skip('no Realtime fixture: a planted realtime.send', 1) end;
select is((select user_id::text || ' ' || status from fred.coaching_sessions where room_sid = 'RM_ev12plant'),
          '7c9e6679-7425-40de-944b-e07fc1f90ae7 active', 'and the planted Realtime does not stop the write');
select case when pg_temp.rt() then
         is(pg_temp.plant('fred', 8),
            (select p.proowner::regrole::text from pg_proc p where p.oid = 'fred.realtime_send(uuid, jsonb)'::regprocedure),
            'a realtime.send owned by fred''s owner is called, with fred''s owner''s rights')
       else skip('no Realtime fixture: realtime.send owned by fred''s owner', 1) end;
select lives_ok($$ do $d$ begin
                  if to_regnamespace('realtime_kept') is not null then
                    drop schema realtime cascade;
                    alter schema realtime_kept rename to realtime;
                  end if;
                end $d$ $$, 'the planted Realtime removed, the fixture''s back');

-- 7. No Realtime at all (as on plain Postgres): writes work, NOTIFY only.
select lives_ok($$ do $d$ begin if to_regnamespace('realtime') is not null then alter schema realtime rename to realtime_absent; end if; end $d$ $$,
                'Realtime taken away');
select is(pg_temp.ev(8, 'ev12down'), 'applied', 'without Realtime, room_finished applies');
select is((select status from fred.coaching_sessions where room_sid = 'RM_ev12down'), 'ended', 'and the session is ended');

select * from finish();
rollback;
