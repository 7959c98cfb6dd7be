-- README claims that had no test of their own (issue 16, item 7, SQL side). Each description
-- starts with the claim it checks. Runs against both installs, like every file here.
begin;
select plan(42);

-- ---------------------------------------------------------------------------------------------
-- Job SQL functions: each call is checked by reading back the rows it stored or changed.
-- (First in the file, so the whole-table jobs see only this section's sessions.)
insert into fred.coaching_sessions (room_name, room_sid, status, started_at, ended_at, last_event_at,
                                    egress_id, egress_status, recording_status, recording_bucket, recording_key,
                                    recording_url, recording_bytes, recording_duration_ms, recording_verified_at,
                                    transcript_json, summary, decisions, next_actions)
values
  -- reconcile: recording, no news for an hour (candidate)
  ('job-quiet', 'RM_job_quiet', 'active', now() - interval '2 hours', null, now() - interval '1 hour',
   'EG_quiet', 'EGRESS_ACTIVE', 'recording', null, null, null, null, null, null, null, null, null, null),
  -- reconcile: recording, news a minute ago (not yet)
  ('job-fresh', 'RM_job_fresh', 'active', now() - interval '2 minutes', null, now() - interval '1 minute',
   'EG_fresh', 'EGRESS_ACTIVE', 'recording', null, null, null, null, null, null, null, null, null, null),
  -- reconcile: ended an hour ago without a final egress status (candidate)
  ('job-nofinal', 'RM_job_nofinal', 'ended', now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour',
   'EG_nofinal', 'EGRESS_ENDING', 'uploaded', null, null, null, null, null, null, null, null, null, null),
  -- reconcile: ended with a final status (not a candidate); retention: 40 days old, recording and transcript
  ('job-old', 'RM_job_old', 'ended', now() - interval '40 days 1 hour', now() - interval '40 days', now() - interval '40 days',
   'EG_old', 'EGRESS_COMPLETE', 'ready', 'voice-recordings', 'job-old/a.ogg', 'https://s3/voice-recordings/job-old/a.ogg',
   4718592, 294000, now() - interval '39 days', '[{"speaker": "coach", "text": "old"}]', 'old summary', '["d"]', '["n"]'),
  -- retention: 10 days old (kept)
  ('job-young', 'RM_job_young', 'ended', now() - interval '10 days 1 hour', now() - interval '10 days', now() - interval '10 days',
   'EG_young', 'EGRESS_COMPLETE', 'ready', 'voice-recordings', 'job-young/a.ogg', 'https://s3/voice-recordings/job-young/a.ogg',
   1, 1, now(), '[{"speaker": "coach", "text": "young"}]', 'young summary', null, null),
  -- recording switched off (never a reconcile candidate)
  ('job-disabled', 'RM_job_disabled', 'ended', now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour',
   null, null, 'disabled', null, null, null, null, null, null, null, null, null, null);

-- fred.claim_job_tick / fred.finish_job_run
select is(fred.claim_job_tick('stale', timestamptz '2026-12-01 10:00+00', 'runner-a'), true,
          'jobs: claim_job_tick claims a free tick');
select is(fred.claim_job_tick('stale', timestamptz '2026-12-01 10:00+00', 'runner-b'), false,
          'jobs: claim_job_tick refuses a tick another replica claimed (each job runs once per tick)');
select is((select (runner, started_at, finished_at, changed, error) from fred.job_runs
            where job = 'stale' and tick = timestamptz '2026-12-01 10:00+00'),
          row('runner-a'::text, now(), null::timestamptz, null::integer, null::text),
          'jobs: the stored run belongs to the first claimant and is not finished');
select fred.finish_job_run('stale', timestamptz '2026-12-01 10:00+00', 3, repeat('x', 3000));
select is((select (runner, finished_at, changed, length(error)) from fred.job_runs
            where job = 'stale' and tick = timestamptz '2026-12-01 10:00+00'),
          row('runner-a'::text, now(), 3, 2000),
          'jobs: finish_job_run stores the finish time, the count and the error (cut to 2000 characters)');
select is((select count(*)::int from fred.job_runs where job = 'stale' and tick = timestamptz '2026-12-01 10:00+00'), 1, 'jobs: one row per job and tick');

-- fred.reconcile_candidates / fred.mark_egress_lost
select results_eq($$ select room_name from fred.reconcile_candidates(interval '10 minutes') order by room_name $$,
                  $$ values ('job-nofinal'::text), ('job-quiet') $$,
                  'jobs: reconcile_candidates lists recordings quiet for the threshold and ended calls without a final egress status');
select is(fred.mark_egress_lost((select id from fred.coaching_sessions where room_name = 'job-quiet'), 'egress EG_quiet not found'),
          true, 'jobs: mark_egress_lost marks a recording LiveKit no longer knows');
select is((select (recording_status, recording_error, egress_status) from fred.coaching_sessions where room_name = 'job-quiet'),
          row('lost'::text, 'egress EG_quiet not found'::text, 'EGRESS_ACTIVE'::text),
          'jobs: the stored row says lost, and why');
select is(fred.mark_egress_lost((select id from fred.coaching_sessions where room_name = 'job-old'), 'nope'), false,
          'jobs: mark_egress_lost leaves a recording with a final egress status alone');
select is((select (recording_status, recording_error) from fred.coaching_sessions where room_name = 'job-old'),
          row('ready'::text, null::text), 'jobs: the finished recording''s row is unchanged');
select results_eq($$ select room_name from fred.reconcile_candidates(interval '10 minutes') order by room_name $$,
                  $$ values ('job-nofinal'::text) $$, 'jobs: a lost recording is no longer a reconcile candidate');

-- fred.close_stale_sessions
select is(fred.close_stale_sessions(interval '30 minutes'), 1, 'jobs: close_stale_sessions ends the one silent active call');
select is((select (status, end_reason, ended_at) from fred.coaching_sessions where room_name = 'job-quiet'),
          row('ended'::text, 'stale'::text, now() - interval '1 hour'),
          'jobs: a stale call ends at its last activity, with end_reason stale');
select is((select (status, end_reason, ended_at) from fred.coaching_sessions where room_name = 'job-fresh'),
          row('active'::text, null::text, null::timestamptz), 'jobs: a call with recent events stays active');

-- fred.recordings_to_delete / fred.mark_recording_deleted (by age; erased sessions' recordings,
-- due whatever their age, are 13_erasure.sql's)
select results_eq($$ select r.bucket, r.key from fred.recordings_to_delete(30) r
                      where r.session_id not in (select e.session_id from fred.erasures e) $$,
                  $$ values ('voice-recordings'::text, 'job-old/a.ogg'::text) $$,
                  'jobs: recordings_to_delete lists recordings older than the retention, with bucket and key');
select is(fred.mark_recording_deleted((select id from fred.coaching_sessions where room_name = 'job-old')), true,
          'jobs: mark_recording_deleted marks the deleted object');
select is((select (recording_status, recording_url, recording_bucket, recording_key, recording_bytes, recording_duration_ms,
                   recording_verified_at, recording_error, egress_status)
             from fred.coaching_sessions where room_name = 'job-old'),
          row('deleted'::text, null::text, null::text, null::text, null::bigint, null::bigint, null::timestamptz, null::text,
              'EGRESS_COMPLETE'::text),
          'jobs: a deleted recording keeps no location, size or verification');
select is(fred.mark_recording_deleted((select id from fred.coaching_sessions where room_name = 'job-old')), false,
          'jobs: marking it again changes nothing');
select is((select count(*)::int from fred.recordings_to_delete(30) r where r.session_id not in (select e.session_id from fred.erasures e)),
          0, 'jobs: a deleted recording is not listed again');
select is((select (recording_status, recording_key) from fred.coaching_sessions where room_name = 'job-young'),
          row('ready'::text, 'job-young/a.ogg'::text), 'jobs: a young recording is kept');

-- fred.purge_transcripts
select is(fred.purge_transcripts(30), 1, 'jobs: purge_transcripts clears the one session older than the retention');
select is((select (transcript_json, transcript_entries, summary, decisions, next_actions) from fred.coaching_sessions
            where room_name = 'job-old'),
          row(null::jsonb, 0, null::text, null::jsonb, null::jsonb),
          'jobs: a purged session keeps no transcript, summary, decisions or next actions');
select is((select (transcript_entries, summary) from fred.coaching_sessions where room_name = 'job-young'),
          row(1, 'young summary'::text), 'jobs: a young transcript is kept');

-- ---------------------------------------------------------------------------------------------
-- The main flow: the agent persists after room_finished; the transcript lands in the ended session.
select fred.apply_livekit_event(fred_test.retag(body, 'claim_end')) from fred_test.call_events order by seq;
select is(fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_persist_transcript',
                         jsonb_build_object('room_name', 'room-claim_end', 'summary', 'good call',
                                            'transcript', '[{"speaker": "coach", "text": "hi"}, {"role": "user", "text": "bye"}]'::jsonb)),
          fred_test.session_of('claim_end')::text,
          'persisting after the call has ended: the agent''s persist after room_finished returns the ended session');
select is((select (status, ended_at, transcript_entries, summary, user_id) from fred.coaching_sessions
            where id = fred_test.session_of('claim_end')),
          row('ended'::text, to_timestamp(1795511120), 2, 'good call'::text, '7c9e6679-7425-40de-944b-e07fc1f90ae7'::uuid),
          'persisting after the call has ended: the transcript is on the ended session, whose end is unchanged');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'room-claim_end'), 1,
          'persisting after the call has ended: no second session for the room name');

-- ---------------------------------------------------------------------------------------------
-- "A later room_finished still sets the real end" after the stale job closed the call.
-- The last event seen is stamped after the room's real end (an egress or a participant can be
-- reported late), so the stale job's end is later than room_finished's createdAt.
select fred.apply_livekit_event(fred_test.retag(body, 'claim_stale')) from fred_test.call_events where seq in (1, 2);
select fred.apply_livekit_event(fred_test.retag(body, 'claim_stale') || '{"createdAt": "1795511200"}')
  from fred_test.call_events where seq = 6;
select fred.close_stale_sessions(interval '1 hour');
select is((select (status, end_reason, ended_at) from fred.coaching_sessions where id = fred_test.session_of('claim_stale')),
          row('ended'::text, 'stale'::text, to_timestamp(1795511200)),
          'a later room_finished still sets the real end: first the stale job ends the silent call at its last event');
select fred.apply_livekit_event(fred_test.retag(body, 'claim_stale')) from fred_test.call_events where seq = 8;
select is((select (status, end_reason, ended_at, duration_seconds) from fred.coaching_sessions where id = fred_test.session_of('claim_stale')),
          row('ended'::text, null::text, to_timestamp(1795511120), 320),
          'a later room_finished still sets the real end: room_finished''s createdAt replaces the (later) stale end, end_reason cleared');
select fred.apply_livekit_event(jsonb_set(fred_test.retag(body, 'claim_stale'), '{id}', '"EV_claim_stale_again"')
                                || '{"createdAt": "1795511000"}')
  from fred_test.call_events where seq = 8;
select is((select (end_reason, ended_at) from fred.coaching_sessions where id = fred_test.session_of('claim_stale')),
          row(null::text, to_timestamp(1795511120)),
          'a later room_finished still sets the real end: an earlier restated room_finished does not move it back');

-- ---------------------------------------------------------------------------------------------
-- Egress ties by updatedAt: within one rank, the higher updatedAt wins; an equal one changes nothing.
create temp table egress_ev (room text, n integer, status text, updated text, body jsonb);
insert into egress_ev (room, n, status, updated)
values ('tie-a', 1, 'EGRESS_COMPLETE', '1795511101000000000'),
       ('tie-a', 2, 'EGRESS_FAILED', '1795511101000000000'),
       ('tie-a', 3, 'EGRESS_ABORTED', '1795511101000000001'),
       ('tie-a', 4, 'EGRESS_ACTIVE', '1795511109000000000'),
       ('tie-b', 3, 'EGRESS_ABORTED', '1795511101000000001'),
       ('tie-b', 2, 'EGRESS_FAILED', '1795511101000000000'),
       ('tie-b', 1, 'EGRESS_COMPLETE', '1795511101000000000');
update egress_ev set body = jsonb_build_object(
  'event', case when status = 'EGRESS_ACTIVE' then 'egress_updated' else 'egress_ended' end,
  'id', 'EV_' || room || '_' || n, 'createdAt', '1795511101',
  'room', jsonb_build_object('sid', 'RM_' || room, 'name', room),
  'egressInfo', jsonb_build_object('egressId', 'EG_' || room, 'status', status, 'updatedAt', updated,
                                   'error', 'reason ' || n,
                                   'fileResults', jsonb_build_array(jsonb_build_object('filename', room || '/' || n || '.ogg',
                                                                                       'location', 'https://s3/' || room || '/' || n || '.ogg'))));
select fred.apply_livekit_event(body) from egress_ev where room = 'tie-a' and n <= 2 order by n;
select is((select (egress_status, egress_updated_ns, recording_status, recording_key, recording_url) from fred.coaching_sessions
            where room_sid = 'RM_tie-a'),
          row('EGRESS_COMPLETE'::text, 1795511101000000000::bigint, 'uploaded'::text, 'tie-a/1.ogg'::text, 'https://s3/tie-a/1.ogg'::text),
          'egress ties by updatedAt: a final status at an equal updatedAt does not replace the one applied');
select fred.apply_livekit_event(body) from egress_ev where room = 'tie-a' and n = 3;
select is((select (egress_status, egress_updated_ns, recording_status, recording_key, recording_url, recording_error)
             from fred.coaching_sessions where room_sid = 'RM_tie-a'),
          row('EGRESS_ABORTED'::text, 1795511101000000001::bigint, 'failed'::text, 'tie-a/3.ogg'::text, null::text, 'reason 3'::text),
          'egress ties by updatedAt: a final status with a higher updatedAt (by 1 ns) replaces it');
select fred.apply_livekit_event(body) from egress_ev where room = 'tie-a' and n = 4;
select is((select egress_status from fred.coaching_sessions where room_sid = 'RM_tie-a'), 'EGRESS_ABORTED',
          'egress ties by updatedAt: a lower rank never wins, whatever its updatedAt');
select fred.apply_livekit_event(body) from egress_ev where room = 'tie-b' order by n desc;
select is((select (egress_status, egress_updated_ns, recording_status, recording_key, recording_url, recording_error)
             from fred.coaching_sessions where room_sid = 'RM_tie-b'),
          row('EGRESS_ABORTED'::text, 1795511101000000001::bigint, 'failed'::text, 'tie-b/3.ogg'::text, null::text, 'reason 3'::text),
          'egress ties by updatedAt: the reverse order gives the same recording');

-- ---------------------------------------------------------------------------------------------
-- Clamping of the cap settings. The SQL install reads fred.max_transcript_entries and
-- fred.max_transcript_bytes as placeholder settings and clamps them to the extension's ranges
-- (entries 1..100000, bytes 1024..1073741823; anything that is not an integer gives the default);
-- the extension's GUCs refuse values out of range (22023). Returns the SQLSTATE of setting the
-- value and then checking the transcript.
create function pg_temp.with_cap(p_name text, p_value text, p_transcript jsonb) returns text
language plpgsql as $$
declare
  r     text;
  v_old text;
begin
  perform fred.check_transcript('[]');  -- loads the extension's library, so its GUCs exist
  v_old := coalesce(current_setting(p_name, true), '');
  begin
    perform set_config(p_name, p_value, true);
    perform fred.check_transcript(p_transcript);
    r := 'ok';
  exception when others then
    r := sqlstate;
  end;
  perform set_config(p_name, v_old, true);
  return r;
end
$$;
create function pg_temp.two_entries() returns jsonb language sql as $$
  select '[{"speaker": "a", "text": "x"}, {"speaker": "b", "text": "y"}]'::jsonb $$;
create function pg_temp.bytes(n integer) returns jsonb language sql as $$
  select jsonb_build_array(jsonb_build_object('speaker', 'a', 'text', repeat('x', n - 30))) $$;

select is(pg_temp.with_cap('fred.max_transcript_entries', '0', pg_temp.two_entries()),
          case when fred_test.is_extension() then '22023' else '22001' end,
          'clamping of the cap settings: max_transcript_entries 0 counts as 1 in the SQL install (extension: refused)');
select is(pg_temp.with_cap('fred.max_transcript_entries', '-5', '[{"speaker": "a", "text": "x"}]'),
          case when fred_test.is_extension() then '22023' else 'ok' end,
          'clamping of the cap settings: a negative max_transcript_entries still allows one entry in the SQL install');
select is(pg_temp.with_cap('fred.max_transcript_entries', '100000000000000000000000000000', pg_temp.two_entries()),
          case when fred_test.is_extension() then '22023' else 'ok' end,
          'clamping of the cap settings: a 30-digit max_transcript_entries is clamped to 100000, not an overflow');
select is(pg_temp.with_cap('fred.max_transcript_bytes', '10', pg_temp.bytes(1000)),
          case when fred_test.is_extension() then '22023' else 'ok' end,
          'clamping of the cap settings: max_transcript_bytes 10 counts as 1024 in the SQL install, so 1000 bytes pass');
select is(pg_temp.with_cap('fred.max_transcript_bytes', '10', pg_temp.bytes(1100)),
          case when fred_test.is_extension() then '22023' else '22001' end,
          'clamping of the cap settings: ... and 1100 bytes are over the clamped cap');
select is(pg_temp.with_cap('fred.max_transcript_entries', '1', pg_temp.two_entries()), '22001',
          'clamping of the cap settings: an in-range value (1) is used as is, in both installs');
select is(pg_temp.with_cap('fred.max_transcript_bytes', '2000', pg_temp.bytes(1900)), 'ok',
          'clamping of the cap settings: an in-range byte cap (2000) lets 1900 bytes pass, in both installs');
select is(pg_temp.with_cap('fred.max_transcript_bytes', '2000', pg_temp.bytes(2100)), '22001',
          'clamping of the cap settings: ... and refuses 2100 bytes');

-- ---------------------------------------------------------------------------------------------
-- The exact function set fred_syncd may execute: its batch apply and syncd events, the recording
-- bookkeeping, the jobs, and fred.version(); nothing of the app's API, no helper.
select is(
  (select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text)
     from pg_proc p
    where (p.pronamespace = 'fred'::regnamespace
           or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%')
           or exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid and e.extname = 'fred'
                       where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'))
      and has_function_privilege('fred_syncd', p.oid, 'execute')),
  array['fred.apply_event_batch(jsonb)',
        'fred.apply_livekit_event(jsonb)',
        'fred.apply_livekit_events(jsonb)',
        'fred.apply_one_event(jsonb)',
        'fred.apply_syncd_event(jsonb)',
        'fred.claim_egress_start(text,text,text)',
        'fred.claim_job_tick(text,timestamp with time zone,text)',
        'fred.close_stale_sessions(interval)',
        'fred.finish_job_run(text,timestamp with time zone,integer,text)',
        'fred.mark_egress_lost(uuid,text)',
        'fred.mark_recording_deleted(uuid)',
        'fred.purge_transcripts(integer)',
        'fred.reconcile_candidates(interval,integer)',
        'fred.record_verification(uuid,boolean,bigint)',
        'fred.recording_location(uuid)',
        'fred.recordings_to_delete(integer,integer)',
        'fred.recordings_to_verify(integer)',
        'fred.version()'],
  'the exact function set fred_syncd may execute (every function of ours, compared as a full list)');

select * from finish();
rollback;
