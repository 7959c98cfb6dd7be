-- The recording URL rules and egress status merging.
begin;
select plan(15);

create function pg_temp.egress(p_id text, p_room text, p_info jsonb, p_event text default 'egress_ended') returns text
language sql as $$
  select fred.apply_livekit_event(jsonb_build_object('event', p_event, 'id', p_id, 'createdAt', '1795511101',
           'room', jsonb_build_object('sid', 'RM_' || p_room, 'name', p_room), 'egressInfo', p_info))
$$;
create function pg_temp.s3(p_endpoint text) returns jsonb language sql as $$
  select jsonb_build_object('roomComposite', jsonb_build_object('audioOnly', true, 'fileOutputs',
           jsonb_build_array(jsonb_build_object('fileType', 'OGG', 's3',
             jsonb_build_object('endpoint', p_endpoint, 'bucket', 'voice-recordings', 'forcePathStyle', true)))))
$$;
create function pg_temp.rec(p_room text) returns record language sql as $$
  select (recording_status, recording_url, recording_bucket, recording_key, recording_error)
    from fred.coaching_sessions where room_sid = 'RM_' || p_room
$$;

-- 1. fileResults[0].location wins.
select pg_temp.egress('EV_u1', 'loc', pg_temp.s3('https://s3.example') || '{"egressId": "EG_1", "status": "EGRESS_COMPLETE",
  "fileResults": [{"filename": "loc/a.ogg", "location": "https://cdn.example/x/loc/a.ogg", "size": "10"}]}');
select is(pg_temp.rec('loc'), row('uploaded'::text, 'https://cdn.example/x/loc/a.ogg'::text, 'voice-recordings'::text, 'loc/a.ogg'::text, null::text),
          'location is the URL; bucket and key are stored too');

-- 2. No location: endpoint/bucket/filename, without a doubled slash.
select pg_temp.egress('EV_u2', 'built', pg_temp.s3('https://ref.supabase.co/storage/v1/s3/') || '{"egressId": "EG_2", "status": "EGRESS_COMPLETE",
  "fileResults": [{"filename": "built/b.ogg"}]}');
select is(pg_temp.rec('built'), row('uploaded'::text, 'https://ref.supabase.co/storage/v1/s3/voice-recordings/built/b.ogg'::text,
          'voice-recordings'::text, 'built/b.ogg'::text, null::text), 'the URL is built from the echoed endpoint, bucket and file name');

-- 3. No file name: the key is the room name.
select pg_temp.egress('EV_u3', 'nofile', pg_temp.s3('https://ref.supabase.co/storage/v1/s3') || '{"egressId": "EG_3", "status": "EGRESS_COMPLETE"}');
select is(pg_temp.rec('nofile'), row('uploaded'::text, 'https://ref.supabase.co/storage/v1/s3/voice-recordings/nofile'::text,
          'voice-recordings'::text, 'nofile'::text, null::text), 'without a file name the key is the room name');

-- 4. LIMIT_REACHED leaves a file.
select pg_temp.egress('EV_u4', 'limit', pg_temp.s3('https://s3.example') || '{"egressId": "EG_4", "status": "EGRESS_LIMIT_REACHED",
  "fileResults": [{"filename": "limit/c.ogg"}], "error": "time limit reached", "errorCode": 413}');
select is(pg_temp.rec('limit'), row('uploaded'::text, 'https://s3.example/voice-recordings/limit/c.ogg'::text, 'voice-recordings'::text,
          'limit/c.ogg'::text, 'time limit reached'::text), 'LIMIT_REACHED is uploaded with its URL and reason');

-- 5. FAILED and ABORTED set no URL and keep the error.
select pg_temp.egress('EV_u5', 'failed', pg_temp.s3('https://s3.example') || '{"egressId": "EG_5", "status": "EGRESS_FAILED",
  "fileResults": [{"filename": "failed/d.ogg"}], "error": "upload failed: SignatureDoesNotMatch", "errorCode": 400}');
select is((select (recording_status, recording_url, recording_error) from fred.coaching_sessions where room_sid = 'RM_failed'),
          row('failed'::text, null::text, 'upload failed: SignatureDoesNotMatch'::text), 'FAILED: no URL, the error is kept');
select pg_temp.egress('EV_u6', 'aborted', pg_temp.s3('https://s3.example') || '{"egressId": "EG_6", "status": "EGRESS_ABORTED", "error": "Start signal not received"}');
select is((select (recording_status, recording_url, recording_error) from fred.coaching_sessions where room_sid = 'RM_aborted'),
          row('failed'::text, null::text, 'Start signal not received'::text), 'ABORTED: no URL, the error is kept');

-- 6. No endpoint and no location: no URL, but the key is still stored.
select pg_temp.egress('EV_u7', 'bare', '{"egressId": "EG_7", "status": "EGRESS_COMPLETE", "fileResults": [{"filename": "bare/e.ogg"}]}');
select is(pg_temp.rec('bare'), row('uploaded'::text, null::text, null::text, 'bare/e.ogg'::text, null::text),
          'with nothing to build a URL from, only the key is stored');

-- 7. Status only moves forward; equal ranks are ordered by updatedAt.
select pg_temp.egress('EV_m1', 'mono', '{"egressId": "EG_m", "status": "EGRESS_ACTIVE", "updatedAt": "100"}', 'egress_updated');
select is((select recording_status from fred.coaching_sessions where room_sid = 'RM_mono'), 'recording', 'ACTIVE is recording');
select pg_temp.egress('EV_m2', 'mono', '{"egressId": "EG_m", "updatedAt": "200"}', 'egress_started');
select is((select (recording_status, egress_status) from fred.coaching_sessions where room_sid = 'RM_mono'),
          row('recording'::text, 'EGRESS_ACTIVE'::text), 'a late STARTING does not move ACTIVE back');
select pg_temp.egress('EV_m3', 'mono', '{"egressId": "EG_m", "status": "EGRESS_ENDING", "updatedAt": "150"}', 'egress_updated');
select is((select egress_status from fred.coaching_sessions where room_sid = 'RM_mono'), 'EGRESS_ENDING', 'ENDING outranks ACTIVE');
select pg_temp.egress('EV_m4', 'mono', '{"egressId": "EG_m", "status": "EGRESS_FAILED", "updatedAt": "300", "error": "boom"}');
select pg_temp.egress('EV_m5', 'mono', '{"egressId": "EG_m", "status": "EGRESS_ACTIVE", "updatedAt": "400"}', 'egress_updated');
select is((select (recording_status, egress_status, recording_error) from fred.coaching_sessions where room_sid = 'RM_mono'),
          row('failed'::text, 'EGRESS_FAILED'::text, 'boom'::text), 'nothing moves a final status back');

-- 8. A second egress for the same room does not replace the session's own.
select pg_temp.egress('EV_o1', 'other', '{"egressId": "EG_first", "status": "EGRESS_ACTIVE"}', 'egress_updated');
select is(pg_temp.egress('EV_o2', 'other', '{"egressId": "EG_second", "status": "EGRESS_COMPLETE"}'), 'applied', 'the other egress''s event is applied');
select is((select (egress_id, recording_status) from fred.coaching_sessions where room_sid = 'RM_other'),
          row('EG_first'::text, 'recording'::text), 'and leaves the session''s own egress alone');

-- 9. A recording LiveKit had to put in its backup storage says so.
select pg_temp.egress('EV_bk1', 'backup', pg_temp.s3('https://s3.example') || '{"egressId": "EG_bk", "status": "EGRESS_COMPLETE",
  "backupStorageUsed": true, "fileResults": [{"filename": "backup/f.ogg", "location": "https://backup.example/f.ogg"}]}');
select is((select (recording_status, recording_url, recording_error) from fred.coaching_sessions where room_sid = 'RM_backup'),
          row('uploaded'::text, 'https://backup.example/f.ogg'::text,
              'egress used backup storage; the file is not in the configured bucket'::text),
          'backup_storage_used is recorded on the row');
select throws_ok($$ select pg_temp.egress('EV_bk2', 'backup2', '{"status": "EGRESS_COMPLETE", "backupStorageUsed": "yes"}') $$,
                 '22023', null, 'backupStorageUsed must be a boolean');

select * from finish();
rollback;
