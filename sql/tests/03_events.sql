-- LiveKit events: the recorded call, idempotency, every order, both key styles, bad input.
begin;
select plan(57);

-- The recorded call, in causal order.
select results_eq($$ select fred.apply_livekit_event(body) from fred_test.call_events order by seq $$,
  $$ values ('applied'), ('applied'), ('applied'), ('ignored'), ('applied'), ('applied'), ('applied'), ('applied') $$,
  'each event of the call is applied once; the egress''s own participant is ignored');
select is((select count(*)::int from fred.coaching_sessions where room_sid = 'RM_demo000000001'), 1, 'one session for the call');
select is((select (status, started_at, ended_at, last_event_at, duration_seconds, user_id, room_name)
             from fred.coaching_sessions where room_sid = 'RM_demo000000001'),
          row('ended'::text, to_timestamp(1795510800), to_timestamp(1795511120), to_timestamp(1795511120), 320,
              '7c9e6679-7425-40de-944b-e07fc1f90ae7'::uuid, 'coaching-demo-1'::text),
          'lifecycle, owner from the room metadata, times from the events');
select is((select (egress_id, recording_status, recording_url, recording_bucket, recording_key, recording_bytes, recording_duration_ms, recording_error)
             from fred.coaching_sessions where room_sid = 'RM_demo000000001'),
          row('EG_demo000000001'::text, 'uploaded'::text,
              'https://abcdefghijklmnop.supabase.co/storage/v1/s3/voice-recordings/coaching-demo-1/2026-11-24T101500.ogg'::text,
              'voice-recordings'::text, 'coaching-demo-1/2026-11-24T101500.ogg'::text, 4718592::bigint, 294000::bigint, null::text),
          'the recording: location, bucket, key, size and duration');
select is((select count(*)::int from fred.livekit_events where event_id like 'EV\_%' and room_sid = 'RM_demo000000001'), 8,
          'every applied or ignored event is in the ledger');

-- Duplicates change nothing.
create temp table snap as select to_jsonb(s) as row from fred.coaching_sessions s where room_sid = 'RM_demo000000001';
select results_eq($$ select fred.apply_livekit_event(body) from fred_test.call_events order by seq desc $$,
  $$ select 'duplicate'::text from generate_series(1, 8) $$, 'a replay of the whole call is all duplicates');
select is((select to_jsonb(s) from fred.coaching_sessions s where room_sid = 'RM_demo000000001'), (select row from snap),
          'duplicates leave the row untouched');
-- The same state under a new id: applied, and still no change.
select is(fred.apply_livekit_event(jsonb_set(body, '{id}', '"EV_again000001"')), 'applied', 'a new id for an old state is applied')
  from fred_test.call_events where seq = 7;
select is((select fred_test.outcome(id) from fred.coaching_sessions where room_sid = 'RM_demo000000001'),
          (select row - array['id', 'room_sid', 'created_at', 'updated_at'] from snap), 'an old state under a new id changes nothing');
select is(fred.apply_livekit_event(jsonb_set(body, '{id}', '"EV_again000002"')), 'applied', 'an older status under a new id is applied')
  from fred_test.call_events where seq = 5;
select is((select recording_status from fred.coaching_sessions where room_sid = 'RM_demo000000001'), 'uploaded',
          'egress status never moves backwards');

-- Every order of one call's events gives the same row.
select fred.apply_livekit_event(fred_test.retag(body, 'ref')) from fred_test.call_events where seq in (1, 2, 3, 5, 7, 8) order by seq;
do $perm$
declare
  r record;
  s int;
  n int := 0;
begin
  for r in
    with recursive perm(p) as (
      select array[]::int[]
      union all
      select perm.p || e from perm, unnest(array[1, 2, 3, 5, 7, 8]) e where not e = any(perm.p))
    select p from perm where cardinality(p) = 6
  loop
    n := n + 1;
    foreach s in array r.p loop
      perform fred.apply_livekit_event(fred_test.retag(body, 'p' || n)) from fred_test.call_events where seq = s;
    end loop;
  end loop;
end
$perm$;
create temp table perms as
select replace(fred_test.outcome(id)::text, substr(room_sid, 4), 'T') as outcome
  from fred.coaching_sessions where room_sid like 'RM\_p%';
select is((select count(*)::int from perms), 720, 'all 720 orders of six events were applied');
select is((select count(distinct outcome)::int from perms), 1, 'every order gives the same row');
select is((select distinct outcome from perms),
          (select replace(fred_test.outcome(id)::text, 'ref', 'T') from fred.coaching_sessions where room_sid = 'RM_ref'),
          'and it is the row of the causal order');
select is((select (status, recording_status) from fred.coaching_sessions where room_sid = 'RM_p720'),
          row('ended'::text, 'uploaded'::text), 'the reverse order ends the session with its recording');

-- The whole recorded call, reversed and interleaved, matches too.
select fred.apply_livekit_event(fred_test.retag(body, 'rev')) from fred_test.call_events order by seq desc;
select fred.apply_livekit_event(fred_test.retag(body, 'mix')) from fred_test.call_events order by (seq * 5) % 8;
select fred.apply_livekit_event(fred_test.retag(body, 'fwd')) from fred_test.call_events order by seq;
select is(replace(fred_test.outcome(fred_test.session_of('rev'))::text, 'rev', 'T'),
          replace(fred_test.outcome(fred_test.session_of('fwd'))::text, 'fwd', 'T'), 'the full call reversed gives the same row');
select is(replace(fred_test.outcome(fred_test.session_of('mix'))::text, 'mix', 'T'),
          replace(fred_test.outcome(fred_test.session_of('fwd'))::text, 'fwd', 'T'), 'the full call interleaved gives the same row');

-- snake_case keys and numeric int64 values (the Twirp style) give the same row.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_snake1", "created_at": 1795510800,
            "room": {"sid": "RM_snake", "name": "room-snake", "creation_time": 1795510800,
                     "metadata": "{\"user_id\": \"7c9e6679-7425-40de-944b-e07fc1f90ae7\"}"}}'), 'applied', 'snake_case room_started');
select is(fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_snake2", "created_at": 1795511101,
            "room": {"sid": "RM_snake", "name": "room-snake"},
            "egress_info": {"egress_id": "EG_snake", "room_id": "RM_snake", "room_name": "room-snake", "status": 3,
              "updated_at": 1795511100000000000, "error": "", "error_code": 0,
              "room_composite": {"room_name": "room-snake", "audio_only": true,
                "file_outputs": [{"file_type": "OGG", "filepath": "{room_name}/{time}.ogg",
                  "s3": {"endpoint": "https://abcdefghijklmnop.supabase.co/storage/v1/s3", "bucket": "voice-recordings", "force_path_style": true}}]},
              "file_results": [{"filename": "room-snake/a.ogg", "size": 1000, "duration": 2000000000, "location": ""}]}}'),
          'applied', 'snake_case egress_ended with numeric int64 and enum');
select is((select (user_id, started_at, recording_status, recording_url, recording_bytes, recording_duration_ms)
             from fred.coaching_sessions where room_sid = 'RM_snake'),
          row('7c9e6679-7425-40de-944b-e07fc1f90ae7'::uuid, to_timestamp(1795510800), 'uploaded'::text,
              'https://abcdefghijklmnop.supabase.co/storage/v1/s3/voice-recordings/room-snake/a.ogg'::text, 1000::bigint, 2000::bigint),
          'the Twirp style is read like the webhook style');

-- Numbers beyond a double, and integers with leading zeros, are read the same by both engines.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_big1", "createdAt": "0001795510800", "x": 1e400,
            "room": {"sid": "RM_big", "name": "room-big"}}'), 'applied', 'an unknown huge number and a zero-padded int64');
select is((select last_event_at from fred.coaching_sessions where room_sid = 'RM_big'), to_timestamp(1795510800), 'the padded time is read');
select is(fred.check_transcript('[{"text": "a", "speaker": "b", "n": 1e400}]'), 1, 'a transcript with a huge number is fine');

-- Other event types and the egress participant are recorded and ignored.
select is(fred.apply_livekit_event('{"event": "track_published", "id": "EV_track1", "room": {"sid": "RM_other", "name": "other"}}'),
          'ignored', 'an unhandled event type is ignored');
select is(fred.apply_livekit_event('{"event": "track_published", "id": "EV_track1", "room": {"sid": "RM_other", "name": "other"}}'),
          'duplicate', 'and recorded, so its repeat is a duplicate');
select is(fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_egp", "room": {"sid": "RM_other", "name": "other"},
            "participant": {"identity": "EG_x", "kind": "EGRESS"}}'), 'ignored', 'the egress participant is ignored');
select is((select count(*)::int from fred.coaching_sessions where room_sid = 'RM_other'), 0, 'ignored events create no session');

-- A participant event creates the session and moves last_event_at.
select is(fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_pj1", "createdAt": "1795510900",
            "room": {"sid": "RM_pj", "name": "room-pj"}, "participant": {"identity": "u"}}'), 'applied', 'participant_joined applied');
select is((select (status, last_event_at, started_at) from fred.coaching_sessions where room_sid = 'RM_pj'),
          row('active'::text, to_timestamp(1795510900), to_timestamp(1795510900)), 'it created an active session');

-- A session the app created first is bound to its room when the room starts.
select fred_upsert_session('room-app', '11111111-1111-1111-1111-111111111111', 'intro');
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_app1", "createdAt": "1795510800",
            "room": {"sid": "RM_app", "name": "room-app", "creationTime": "1795510800"}}'), 'applied', 'room_started for an app-created session');
select is((select (room_sid, user_id, call_type) from fred.coaching_sessions where room_name = 'room-app'),
          row('RM_app'::text, '11111111-1111-1111-1111-111111111111'::uuid, 'intro'::text), 'the app''s session got the room sid');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'room-app'), 1, 'and no second session');

-- Bad input: 22023, and nothing stored changes.
create temp table ledger_before as select count(*) as n from fred.livekit_events;
select throws_ok($$ select fred.apply_livekit_event('[]') $$, '22023', null, 'an array is not an event');
select throws_ok($$ select fred.apply_livekit_event('"room_started"') $$, '22023', null, 'a string is not an event');
select throws_ok($$ select fred.apply_livekit_event(null) $$, '22023', null, 'NULL is not an event');
select throws_ok($$ select fred.apply_livekit_event('{"id": "EV_bad1", "room": {"sid": "RM_x"}}') $$, '22023', null, 'no event type');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "room": {"sid": "RM_x"}}') $$, '22023', null, 'no id');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": 12, "room": {"sid": "RM_x"}}') $$, '22023', null, 'a numeric id');
select throws_ok($$ select fred.apply_livekit_event('{"event": 1, "id": "EV_bad2", "room": {"sid": "RM_x"}}') $$, '22023', null, 'a numeric event');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad3", "createdAt": "soon", "room": {"sid": "RM_x"}}') $$,
                 '22023', null, 'a createdAt that is not a number');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad4", "createdAt": 1.5, "room": {"sid": "RM_x"}}') $$,
                 '22023', null, 'a fractional createdAt');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad5", "createdAt": true, "room": {"sid": "RM_x"}}') $$,
                 '22023', null, 'a boolean createdAt');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad6", "room": "RM_x"}') $$, '22023', null, 'a room that is not an object');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad7", "room": {"sid": 5}}') $$, '22023', null, 'a numeric room sid');
select throws_ok($$ select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bad8"}') $$, '22023', null, 'a room event without a room');
select throws_ok($$ select fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_bad9", "room": {"sid": "RM_demo000000001"}}') $$,
                 '22023', null, 'an egress event without egressInfo');
select throws_ok($$ select fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_bad10", "room": {"sid": "RM_demo000000001"}, "egressInfo": {"status": "EGRESS_DONE"}}') $$,
                 '22023', null, 'an unknown egress status');
select throws_ok($$ select fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_bad11", "room": {"sid": "RM_demo000000001"}, "egressInfo": {"status": 3, "fileResults": {}}}') $$,
                 '22023', null, 'fileResults that is not an array');
select throws_ok($$ select fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_bad12", "room": {"sid": "RM_demo000000001"}, "egressInfo": {"status": 3, "fileResults": [{"size": "big"}]}}') $$,
                 '22023', null, 'a size that is not an integer');
select throws_ok($$ select fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_bad13", "participant": {"identity": "u"}}') $$,
                 '22023', null, 'a participant event without a room');
select throws_ok($$ select fred.apply_livekit_event(jsonb_build_object('event', 'room_started', 'id', 'EV_bad14', 'room', jsonb_build_object('sid', 'RM_long', 'name', repeat('n', 257)))) $$,
                 '22023', null, 'a room name over 256 characters');
select throws_ok($$ select fred.apply_livekit_event('{"event": "egress_updated", "id": "EV_bad15", "room": {"sid": "RM_x"}, "egressInfo": {"status": "EGRESS_ACTIVE", "details": 7}}') $$,
                 '22023', null, 'a details that is not a string');
select is((select count(*) from fred.livekit_events), (select n from ledger_before), 'rejected events are not recorded');
select is((select recording_status from fred.coaching_sessions where room_sid = 'RM_demo000000001'), 'uploaded',
          'the call''s row is unchanged by rejected events');

-- The batch variant reports a poison event in its row and applies its neighbours.
select results_eq($$ select result, error_code from fred.apply_livekit_events(
    '[{"event": "room_started", "id": "EV_b1", "room": {"sid": "RM_batch", "name": "room-batch"}},
      {"event": "room_started", "id": "EV_b2", "createdAt": "nope", "room": {"sid": "RM_batch"}},
      {"event": "room_finished", "id": "EV_b3", "createdAt": "1795511000", "room": {"sid": "RM_batch", "name": "room-batch"}}]') order by idx $$,
  $$ values ('applied'::text, null::text), ('rejected', '22023'), ('applied', null) $$, 'a batch sets aside only its poison event');
select is((select status from fred.coaching_sessions where room_sid = 'RM_batch'), 'ended', 'the batch''s good events landed');
select throws_ok($$ select * from fred.apply_livekit_events('{}') $$, '22023', null, 'a batch must be an array');

select * from finish();
rollback;
