-- The daemon's bookkeeping functions: egress claims, syncd events, upload verification.
begin;
select plan(28);

-- One egress start per room instance.
select is(fred.claim_egress_start('RM_claim', 'room-claim', 'node-a'), true, 'the first claim wins');
select is(fred.claim_egress_start('RM_claim', 'room-claim', 'node-b'), false, 'a second claim loses');

-- syncd events fill in recording state only while LiveKit has said nothing.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_d1", "room": {"sid": "RM_d", "name": "room-d"}}'),
          'applied', 'room_started of room-d is applied');
select results_eq($$ select result from fred.apply_livekit_events('[{"event": "syncd_egress_started", "id": "SY_started_RM_d", "room": {"sid": "RM_d", "name": "room-d"}, "egress_id": "EG_d"},
                                                                   {"event": "syncd_egress_started", "id": "SY_started_RM_d", "room": {"sid": "RM_d", "name": "room-d"}, "egress_id": "EG_d"}]') order by idx $$,
                  $$ values ('applied'::text), ('duplicate') $$, 'a syncd event is applied once');
select is((select (egress_id, recording_status) from fred.coaching_sessions where room_sid = 'RM_d'),
          row('EG_d'::text, 'starting'::text), 'the started egress is on the row');
select is(fred.apply_livekit_event('{"event": "egress_updated", "id": "EV_d2", "room": {"sid": "RM_d", "name": "room-d"}, "egressInfo": {"egressId": "EG_d", "status": "EGRESS_ACTIVE"}}'),
          'applied', 'the egress update is applied');
select results_eq($$ select idx, result, error_code from fred.apply_livekit_events('[{"event": "syncd_egress_failed", "id": "SY_failed_RM_d", "room": {"sid": "RM_d"}, "error": "late failure"},
                                          {"event": "syncd_recording_disabled", "id": "SY_disabled_RM_d", "room": {"sid": "RM_d"}}]') order by idx $$,
                  $$ values (0, 'applied'::text, null::text), (1, 'applied', null) $$, 'late syncd events are recorded in the ledger');
select is((select (recording_status, recording_error) from fred.coaching_sessions where room_sid = 'RM_d'),
          row('recording'::text, null::text), 'syncd events never replace what egress events set');

select results_eq($$ select result from fred.apply_livekit_events('[{"event": "syncd_egress_failed", "id": "SY_failed_RM_f", "room": {"sid": "RM_f", "name": "room-f"}, "error": "egress API 500 internal: egress not connected (redis required)"}]') $$,
                  $$ values ('applied'::text) $$, 'a failed start is applied');
select is((select (recording_status, recording_error) from fred.coaching_sessions where room_sid = 'RM_f'),
          row('unavailable'::text, 'egress API 500 internal: egress not connected (redis required)'::text), 'a failed start is unavailable, with the reason');
select is(fred.apply_livekit_event('{"event": "egress_ended", "id": "EV_f2", "room": {"sid": "RM_f", "name": "room-f"}, "egressInfo": {"egressId": "EG_f", "status": "EGRESS_COMPLETE", "fileResults": [{"filename": "f.ogg"}]}}'),
          'applied', 'the egress end is applied');
select is((select (recording_status, recording_error) from fred.coaching_sessions where room_sid = 'RM_f'),
          row('uploaded'::text, null::text), 'a later egress event overrides unavailable');
select results_eq($$ select result, error_code from fred.apply_livekit_events('[{"event": "syncd_bogus", "id": "SY_x", "room": {"sid": "RM_x"}}]') $$,
                  $$ values ('rejected'::text, '22023'::text) $$, 'an unknown syncd event is poison');

-- A syncd event finds the app's session by name, as LiveKit events do.
select fred_upsert_session('room-app-syncd', '22222222-2222-2222-2222-222222222222');
select results_eq($$ select result from fred.apply_livekit_events('[{"event": "syncd_recording_disabled", "id": "SY_disabled_RM_appsy", "room": {"sid": "RM_appsy", "name": "room-app-syncd"}}]') $$,
                  $$ values ('applied'::text) $$, 'recording switched off is applied');
select is((select (count(*), min(room_sid), min(recording_status)) from fred.coaching_sessions where room_name = 'room-app-syncd'),
          row(1::bigint, 'RM_appsy'::text, 'disabled'::text), 'a syncd event binds the app-created session instead of adding one');

-- Verification: uploaded → ready with the real size, or missing.
select ok(exists (select 1 from fred.recordings_to_verify(1000) where key = 'f.ogg'), 'an uploaded recording waits for its check');
select is(fred.record_verification((select id from fred.coaching_sessions where room_sid = 'RM_f'), true, 1234), 'ready', 'found: ready');
select is((select (recording_bytes, recording_verified_at is not null) from fred.coaching_sessions where room_sid = 'RM_f'),
          row(1234::bigint, true), 'with the size HeadObject saw');
select ok(not exists (select 1 from fred.recordings_to_verify(1000) where key = 'f.ogg'), 'and is not checked again');
select is(fred.record_verification((select id from fred.coaching_sessions where room_sid = 'RM_d'), true, 1), null,
          'a session that is not waiting for a check is left alone');
select is(fred.record_verification((select id from fred.coaching_sessions where room_sid = 'RM_f'), false), 'missing', 'not found: missing');
select is((select (bucket, key, status) from fred.recording_location((select id from fred.coaching_sessions where room_sid = 'RM_f'))),
          row(null::text, 'f.ogg'::text, 'missing'::text), 'recording_location gives bucket, key and status');

-- The daemon's role can run these and read nothing else.
select ok(has_function_privilege('fred_syncd', 'fred.claim_egress_start(text, text, text)', 'execute'), 'fred_syncd may claim');
select ok(has_function_privilege('fred_syncd', 'fred.record_verification(uuid, boolean, bigint)', 'execute'), 'fred_syncd may verify');
select ok(not has_function_privilege('authenticated', 'fred.record_verification(uuid, boolean, bigint)', 'execute'), 'users may not');
select ok(not has_function_privilege('authenticated', 'fred.apply_syncd_event(jsonb)', 'execute'), 'users may not apply syncd events');
select is(fred_test.query_as('fred_syncd', null, $q$ select result from fred.apply_livekit_events('[
            {"event": "room_started", "id": "EV_role1", "room": {"sid": "RM_role", "name": "room-role"}},
            {"event": "syncd_recording_disabled", "id": "SY_disabled_RM_role", "room": {"sid": "RM_role", "name": "room-role"}}]') $q$),
          '[{"result": "applied"}, {"result": "applied"}]'::jsonb, 'fred_syncd can apply a batch with LiveKit and syncd events');
select is(fred_test.query_as('fred_syncd', null, $q$ select fred.close_stale_sessions('100 years') as n $q$),
          '[{"n": 0}]'::jsonb, 'fred_syncd can run the job functions');

select * from finish();
rollback;
