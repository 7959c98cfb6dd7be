-- A realistic history for the upgrade and backup tests: sessions in every status and recording
-- status, the event ledger, job runs and egress claims. Uses only the API of release 0.1.0, and
-- room names of its own (fill-*), so the pgTAP suite can run on the same database afterwards.
-- Needs sql/tests/setup/helpers.sql. Run as a superuser with psql -v ON_ERROR_STOP=1.
\set QUIET on

-- Five whole calls of the sample, each in its own room: owned, ended, recording uploaded.
select count(fred.apply_livekit_event(fred_test.retag(e.body, 'fill' || t)))
  from generate_series(1, 5) t, fred_test.call_events e;
-- ... and one whose webhooks arrive twice and in reverse.
select count(fred.apply_livekit_event(fred_test.retag(e.body, 'fill6')))
  from (select body from fred_test.call_events order by seq desc) e, generate_series(1, 2);

-- Recording outcomes: ready (HeadObject saw it), missing, deleted by retention, lost.
select fred.record_verification(fred_test.session_of('fill1'), true, 48213);
select fred.record_verification(fred_test.session_of('fill2'), false);
select fred.mark_recording_deleted(fred_test.session_of('fill3'));
select count(*) from fred.apply_livekit_events(jsonb_build_array(
  jsonb_build_object('event', 'room_started', 'id', 'EV_fill_lost_1', 'createdAt', '1795510800',
                     'room', jsonb_build_object('sid', 'RM_filllost', 'name', 'fill-lost', 'creationTime', '1795510800')),
  jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_started_RM_filllost', 'egress_id', 'EG_filllost',
                     'room', jsonb_build_object('sid', 'RM_filllost', 'name', 'fill-lost'))));
select fred.mark_egress_lost(fred_test.session_of('filllost'), 'ListEgress does not know EG_filllost');

-- A failed egress, a start that failed (unavailable), recording switched off, one still starting.
select count(*) from fred.apply_livekit_events(jsonb_build_array(
  jsonb_build_object('event', 'room_started', 'id', 'EV_fill_failed_1', 'createdAt', '1795510900',
                     'room', jsonb_build_object('sid', 'RM_fillfailed', 'name', 'fill-failed', 'creationTime', '1795510900')),
  jsonb_build_object('event', 'egress_ended', 'id', 'EV_fill_failed_2', 'createdAt', '1795511000',
                     'room', jsonb_build_object('sid', 'RM_fillfailed', 'name', 'fill-failed'),
                     'egressInfo', jsonb_build_object('egressId', 'EG_fillfailed', 'status', 'EGRESS_FAILED',
                                                      'error', 'upload refused', 'updatedAt', '1795511000000000000')),
  jsonb_build_object('event', 'syncd_egress_failed', 'id', 'SY_failed_RM_fillunav', 'error', 'egress API 503: unavailable',
                     'room', jsonb_build_object('sid', 'RM_fillunav', 'name', 'fill-unavailable')),
  jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_disabled_RM_filloff',
                     'room', jsonb_build_object('sid', 'RM_filloff', 'name', 'fill-off')),
  jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_started_RM_fillstart', 'egress_id', 'EG_fillstart',
                     'room', jsonb_build_object('sid', 'RM_fillstart', 'name', 'fill-starting'))));

-- A silent call closed by the stale job.
select fred.apply_livekit_event(jsonb_build_object('event', 'room_started', 'id', 'EV_fill_stale', 'createdAt', '1795000000',
         'room', jsonb_build_object('sid', 'RM_fillstale', 'name', 'fill-stale', 'creationTime', '1795000000')));
select fred.close_stale_sessions('1 day');

-- The app's path, as PostgREST runs it: a user's session, then the agent's transcript and outcome.
select fred_test.rpc('authenticated', '11111111-1111-4111-8111-111111111111', 'fred_upsert_session',
                     '{"room_name": "fill-app", "call_type": "coaching", "metadata": {"plan": "pro"}}');
select fred_test.rpc('authenticated', '11111111-1111-4111-8111-111111111111', 'fred_persist_transcript',
                     jsonb_build_object('room_name', 'fill-app',
                       'transcript', (select jsonb_agg(jsonb_build_object('speaker', case when i % 2 = 0 then 'coach' else 'user' end,
                                                                          'text', 'line ' || i || ' — übung', 'ts', i))
                                        from generate_series(1, 40) i),
                       'summary', 'Worked on the pitch.', 'decisions', '["practise daily"]'::jsonb,
                       'next_actions', '[{"what": "record a take", "due": "2026-12-02"}]'::jsonb));
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
                     '{"room_name": "fill-server", "transcript": [{"role": "assistant", "text": "hello"}], "summary": "server-side"}');
select fred_test.rpc('authenticated', '22222222-2222-4222-8222-222222222222', 'fred_upsert_session', '{"room_name": "fill-active"}');

-- The daemon's bookkeeping: egress claims and job runs (one finished, one failed, one running).
select fred.claim_egress_start('RM_fill1', 'room-fill1', 'syncd-a');
select fred.claim_egress_start('RM_fillstart', 'fill-starting', 'syncd-b');
select fred.claim_job_tick('reconcile', '2026-11-30 10:00:00+00', 'syncd-a');
select fred.finish_job_run('reconcile', '2026-11-30 10:00:00+00', 3);
select fred.claim_job_tick('retention', '2026-11-30 03:00:00+00', 'syncd-b');
select fred.finish_job_run('retention', '2026-11-30 03:00:00+00', 0, 'S3 DeleteObject: timeout');
select fred.claim_job_tick('stale', '2026-11-30 10:05:00+00', 'syncd-a');

-- From 0.2.0: an erased session (its tombstone, its recording waiting for retention, a ledger
-- without its room name), so a restore must keep those rows exactly, applied ledger rows of the
-- erased room included.
do $erase$
begin
  if to_regprocedure('fred.delete_session(uuid)') is not null then
    perform fred.delete_session(fred_test.session_of('fill5'));
  end if;
end
$erase$;
