-- Caps on every writable field (issue 11 §3), held by the table for every writer; the maintenance
-- functions' argument limits (§4); syncd's own events validated like LiveKit's (issue 12).
begin;
select plan(83);

create temp table ids (k text primary key, id uuid);
insert into ids select 'a', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "cap-a"}')::uuid;
create function pg_temp.persist(p_body jsonb) returns text language sql as $$
  select fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                        jsonb_build_object('room_name', 'cap-a', 'transcript', '[]'::jsonb) || p_body)
$$;
-- The SQLSTATE and message of a statement.
create function pg_temp.err(p_sql text) returns text language plpgsql as $$
begin
  execute p_sql;
  return 'ok';
exception when others then
  return sqlstate || ' ' || sqlerrm;
end
$$;
-- A JSON array of n strings whose text is exactly `bytes` bytes long (n >= 1, bytes large enough).
create function pg_temp.arr(n int, bytes int) returns jsonb language plpgsql as $$
declare
  v jsonb := (select jsonb_agg('x'::text) from generate_series(1, n));
begin
  -- ["x", "x", ...]: pad the first string to reach the size.
  return jsonb_set(v, '{0}', to_jsonb(repeat('x', 1 + bytes - octet_length(v::text))));
end
$$;
select is(octet_length(pg_temp.arr(200, 65536)::text), 65536, 'helper: a 200-entry array of exactly 64 KiB');

-- call_type: 64 characters.
select is(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('call_type', repeat('é', 64))) $$), 'ok', 'call_type of 64 characters passes');
select is(left(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('call_type', repeat('é', 65))) $$), 5), '22001', 'call_type of 65 characters is 22001');
select matches(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('call_type', repeat('é', 65))) $$), 'call_type', 'the message names call_type');
select is(left(pg_temp.err($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
             jsonb_build_object('room_name', 'cap-a', 'call_type', repeat('c', 65))) $$), 5), '22001', 'fred_upsert_session: call_type over the cap is 22001');
-- summary: 64 KiB.
select is(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('summary', repeat('s', 65536))) $$), 'ok', 'a summary of 64 KiB passes');
select is(left(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('summary', repeat('s', 65535) || 'é')) $$), 5), '22001',
          'a summary of 64 KiB + 1 byte is 22001');
select matches(pg_temp.err($$ select pg_temp.persist(jsonb_build_object('summary', repeat('s', 65537))) $$), 'summary', 'the message names summary');
-- decisions and next_actions: 200 entries, 64 KiB each.
select is(pg_temp.err(format($$ select pg_temp.persist(jsonb_build_object(%L, pg_temp.arr(200, 65536))) $$, f)), 'ok',
          f || ': 200 entries and 64 KiB pass') from unnest(array['decisions', 'next_actions']) f;
select is(left(pg_temp.err(format($$ select pg_temp.persist(jsonb_build_object(%L, pg_temp.arr(201, 2000))) $$, f)), 5), '22001',
          f || ': 201 entries is 22001') from unnest(array['decisions', 'next_actions']) f;
select is(left(pg_temp.err(format($$ select pg_temp.persist(jsonb_build_object(%L, pg_temp.arr(10, 65537))) $$, f)), 5), '22001',
          f || ': 64 KiB + 1 byte is 22001') from unnest(array['decisions', 'next_actions']) f;
select matches(pg_temp.err(format($$ select pg_temp.persist(jsonb_build_object(%L, pg_temp.arr(201, 2000))) $$, f)), f,
               'the message names ' || f) from unnest(array['decisions', 'next_actions']) f;
select is(left(pg_temp.err(format($$ select pg_temp.persist(jsonb_build_object(%L, '{"a": 1}'::jsonb)) $$, f)), 5), '22023',
          f || ': an object is 22023') from unnest(array['decisions', 'next_actions']) f;
-- metadata: 16 KiB.
select is(pg_temp.err(format($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
             jsonb_build_object('room_name', 'cap-a', 'metadata', jsonb_build_object('k', repeat('m', %s)))) $$,
             16384 - octet_length('{"k": ""}'))), 'ok', 'metadata of 16 KiB passes');
select is(left(pg_temp.err(format($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session',
             jsonb_build_object('room_name', 'cap-a', 'metadata', jsonb_build_object('k', repeat('m', %s)))) $$,
             16385 - octet_length('{"k": ""}'))), 5), '22001', 'metadata of 16 KiB + 1 byte is 22001');
select matches(pg_temp.err($$ select fred_upsert_session('cap-a', metadata => jsonb_build_object('k', repeat('m', 20000))) $$),
               'metadata', 'the message names metadata');
select is(left(pg_temp.err($$ select fred_upsert_session('cap-a', metadata => '[1]') $$), 5), '22023', 'metadata that is no object is 22023');
select is((select (octet_length(summary), jsonb_array_length(decisions), char_length(call_type)) from fred.coaching_sessions
            where id = (select id from ids where k = 'a')), row(65536, 200, 64), 'the values at the caps were stored; nothing over them');

-- The table holds every writer: a superuser's direct UPDATE or INSERT meets the same caps and SQLSTATEs.
create temp table over_cap (c text, v text, s text);
insert into over_cap values ('call_type', 'repeat(''c'', 65)', '22001'),
                            ('summary', 'repeat(''s'', 65537)', '22001'),
                            ('decisions', 'pg_temp.arr(201, 1000)', '22001'),
                            ('next_actions', 'pg_temp.arr(5, 70000)', '22001'),
                            ('decisions', '''{}''::jsonb', '22023'),
                            ('next_actions', '''{}''::jsonb', '22023'),
                            ('metadata', 'jsonb_build_object(''k'', repeat(''m'', 17000))', '22001'),
                            ('metadata', '''"text"''::jsonb', '22023'),
                            ('room_name', 'repeat(''r'', 257)', '22023'),
                            ('room_name', '''''', '22023');
select is(left(pg_temp.err(format($$ update fred.coaching_sessions set %I = %s where id = %L $$, c, v, (select id from ids where k = 'a'))), 5), s,
          'direct UPDATE of ' || c || ': ' || s)
  from over_cap;
select is(left(pg_temp.err(format($$ insert into fred.coaching_sessions (room_name, %I) values (%L, %s) $$, c, 'cap-ins-' || c, v)), 5), s,
          'direct INSERT of ' || c || ': ' || s)
  from over_cap where c <> 'room_name';
select is((select count(*)::int from fred.coaching_sessions where room_name like 'cap-ins-%'), 0, 'none of those INSERTs stored a row');
create temp table t501 as
select jsonb_agg(jsonb_build_object('text', 'line ' || i, 'speaker', 'coach')) as t from generate_series(1, 501) i;
select is(left(pg_temp.err(format($$ update fred.coaching_sessions set transcript_json = (select t from t501) where id = %L $$,
                                  (select id from ids where k = 'a'))), 5), '22001',
          'a superuser''s direct UPDATE of a transcript over the entry cap is 22001');
select is(left(pg_temp.err(format($$ update fred.coaching_sessions set transcript_json = %L::jsonb where id = %L $$,
                                  jsonb_build_array(jsonb_build_object('text', repeat('t', 1048576), 'speaker', 'coach')),
                                  (select id from ids where k = 'a'))), 5), '22001',
          'a superuser''s direct UPDATE of a transcript over the byte cap is 22001');
select is(left(pg_temp.err(format($$ update fred.coaching_sessions set transcript_json = '[{"text": 1}]' where id = %L $$,
                                  (select id from ids where k = 'a'))), 5), '22023',
          'a superuser''s direct UPDATE of a badly shaped transcript is 22023');
select is(left(pg_temp.err($$ insert into fred.coaching_sessions (room_name, transcript_json) values ('cap-ins', (select t from t501)) $$), 5), '22001',
          'a direct INSERT over the transcript cap is 22001');
select is(left(pg_temp.err($$ insert into fred.coaching_sessions (room_name) values (repeat('r', 257)) $$), 5), '22023',
          'a direct INSERT of an over-long room name is 22023, not a constraint violation');
update fred.coaching_sessions set transcript_json = '[{"text": "a", "speaker": "x"}, {"text": "b", "role": "y"}]', transcript_entries = 99
 where id = (select id from ids where k = 'a');
select is((select transcript_entries from fred.coaching_sessions where id = (select id from ids where k = 'a')), 2,
          'transcript_entries always counts the stored transcript');
update fred.coaching_sessions set transcript_json = null where id = (select id from ids where k = 'a');
select is((select transcript_entries from fred.coaching_sessions where id = (select id from ids where k = 'a')), 0, 'no transcript, no entries');
-- The trigger's transcript check is the engine's: Rust (fred.check_transcript) in the extension.
select alike((select prosrc from pg_proc where oid = 'fred.coaching_sessions_transcript()'::regprocedure), '%fred.check_transcript(new.transcript_json)%',
            'the trigger checks the transcript with fred.check_transcript');
select case when fred_test.is_extension()
  then is((select l.lanname || ' ' || p.prosrc from pg_proc p join pg_language l on l.oid = p.prolang
            where p.oid = 'fred.check_transcript(jsonb)'::regprocedure), 'c check_transcript_wrapper',
          'extension: fred.check_transcript is the Rust engine (on the jsonb binary form)')
  else is((select l.lanname from pg_proc p join pg_language l on l.oid = p.prolang where p.oid = 'fred.check_transcript(jsonb)'::regprocedure),
          'plpgsql', 'SQL install: fred.check_transcript is the PL/pgSQL engine') end;
select case when fred_test.is_extension()
  then is((select l.lanname from pg_proc p join pg_language l on l.oid = p.prolang where p.oid = to_regprocedure('fred.check_transcript_text(text)')),
          'c', 'extension: check_transcript_text is compiled code')
  else pass('SQL install: no compiled engine') end;
-- The engines' own updates do not fire the trigger's checks on fields they do not write.
select is(fred.apply_livekit_event('{"event": "room_started", "id": "EV_cap_1", "room": {"sid": "RM_cap", "name": "cap-ev"}}'), 'applied',
          'the engine still creates sessions');

-- Maintenance arguments: retention >= 1 day, stale and reconcile thresholds >= 1 minute; else 22023, nothing changes.
insert into fred.coaching_sessions (room_name, status, started_at, last_event_at, transcript_json, summary,
                                    recording_key, recording_bucket, recording_status, egress_id, created_at)
values ('cap-old', 'active', now() - interval '10 seconds', now() - interval '10 seconds',
        '[{"text": "keep", "speaker": "user"}]', 'keep', 'old.ogg', 'voice-recordings', 'recording', 'EG_cap_old', now() - interval '10 seconds');
create temp table before_maint as select to_jsonb(s) as r from fred.coaching_sessions s where room_name = 'cap-old';
select is(left(pg_temp.err(q), 5), '22023', q || ' is 22023')
  from unnest(array['select fred.purge_transcripts(0)', 'select fred.purge_transcripts(-1)', 'select fred.purge_transcripts(null)',
                    'select * from fred.recordings_to_delete(0)', 'select * from fred.recordings_to_delete(-1, 10)',
                    'select * from fred.recordings_to_delete(null)',
                    'select fred.close_stale_sessions(''59 seconds'')', 'select fred.close_stale_sessions(''-1 day'')',
                    'select fred.close_stale_sessions(''0'')', 'select fred.close_stale_sessions(null)',
                    'select * from fred.reconcile_candidates(''59 seconds'')', 'select * from fred.reconcile_candidates(''-1 day'', 10)',
                    'select * from fred.reconcile_candidates(null)']) q;
select is((select to_jsonb(s) from fred.coaching_sessions s where room_name = 'cap-old'), (select r from before_maint),
          'the refused calls changed nothing');
select is(pg_temp.err(q), 'ok', q || ' is allowed')
  from unnest(array['select fred.purge_transcripts(1)', 'select * from fred.recordings_to_delete(1)',
                    'select fred.close_stale_sessions(''1 minute'')', 'select * from fred.reconcile_candidates(''1 minute'')']) q;
select is((select (status, summary) from fred.coaching_sessions where room_name = 'cap-old'), row('active'::text, 'keep'::text),
          'the smallest allowed values leave a 10-second-old call alone');
select is(fred.close_stale_sessions('1 minute') >= 0, true, 'close_stale_sessions at 1 minute returns a count');

-- Issue 12: syncd's own events are validated like LiveKit's: 22023, never a constraint violation.
select is((select (result, error_code) from fred.apply_livekit_events(jsonb_build_array(e))),
          row('rejected'::text, '22023'::text), d)
  from (values
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_long_name', 'room', jsonb_build_object('sid', 'RM_x1', 'name', repeat('r', 257))),
     'a syncd event with an over-long room name is poison with 22023'),
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_long_sid', 'room', jsonb_build_object('sid', repeat('S', 257))),
     'a syncd event with an over-long room sid is 22023'),
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', repeat('i', 257), 'room', jsonb_build_object('sid', 'RM_x2')),
     'a syncd event with an over-long id is 22023'),
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_num_sid', 'room', jsonb_build_object('sid', 5)),
     'a room sid that is not a string is 22023'),
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_no_room'), 'a syncd event without a room is 22023'),
    (jsonb_build_object('event', 'syncd_recording_disabled', 'id', 7, 'room', jsonb_build_object('sid', 'RM_x3')), 'a numeric id is 22023'),
    (jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_eg_long', 'room', jsonb_build_object('sid', 'RM_x4'), 'egress_id', repeat('E', 300)),
     'an over-long egress_id is 22023'),
    (jsonb_build_object('event', 'syncd_egress_failed', 'id', 'SY_err_obj', 'room', jsonb_build_object('sid', 'RM_x5'), 'error', jsonb_build_object('a', 1)),
     'an error that is not a string is 22023')) v(e, d);
select is((select count(*)::int from fred.livekit_events where event_id like 'SY\_%' and room_sid like 'RM\_x%'), 0,
          'rejected syncd events leave no trace in the ledger');
select is((select result from fred.apply_livekit_events(
            '[{"event": "syncd_recording_disabled", "id": "SY_after_poison", "room": {"sid": "RM_cap_ok", "name": "cap-ok"}}]')),
          'applied', 'a valid syncd event after them applies');

select * from finish();
rollback;
