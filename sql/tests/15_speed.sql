-- Speed without weaker rules (issue 13): the transcript digest on the row, the transcript check on
-- the jsonb's binary form (extension), and fred_persist_transcript's repeat test by digest.
begin;
select plan(31);

\set alice '''aaaaaaaa-0000-4000-8000-00000000000a'''

-- A 600-entry transcript (over 32 entries: jsonb keeps offsets every 32nd child), and variants.
create temp table sp_t as
select jsonb_agg(jsonb_build_object('text', 'line ' || i, 'speaker', case when i % 2 = 0 then 'coach' else 'user' end,
                                    'meta', jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i, null, true))) order by i) as t
  from generate_series(0, 99) i;
set local fred.max_transcript_entries = 1000;

-- 1. The digest on the row.
select fred_test.rpc1('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'speed-1', 'transcript', (select t from sp_t), 'user_id', :alice)) as s1 \gset
select is((select transcript_digest from fred.coaching_sessions where id = :'s1'), fred.transcript_digest((select t from sp_t)),
          'the row keeps the digest of its transcript');
select is(length((select transcript_digest from fred.coaching_sessions where id = :'s1')), 32, 'the digest is 32 bytes (SHA-256)');
select is(fred.transcript_digest((select t from sp_t)), fred.transcript_digest((select t from sp_t)::text::jsonb),
          'the digest depends on the value, not on how it was built');
select isnt(fred.transcript_digest((select t from sp_t)), fred.transcript_digest(jsonb_set((select t from sp_t), '{99,meta,tags,1}', '100')),
          'the digest changes with a change deep inside the transcript');

-- 2. An identical repeat writes nothing; a transcript that differs only deep inside is written.
create temp table sp_before as select ctid::text as c, transcript_digest as d from fred.coaching_sessions where id = :'s1';
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'speed-1', 'transcript', (select t from sp_t)));
select is((select ctid::text from fred.coaching_sessions where id = :'s1'), (select c from sp_before),
          'an identical repeat writes nothing (same row version)');
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'speed-1', 'transcript', jsonb_set((select t from sp_t), '{99,meta,tags,1}', '100')));
select isnt((select ctid::text from fred.coaching_sessions where id = :'s1'), (select c from sp_before),
            'a transcript that differs only deep inside (entry 99, a nested array) is not a repeat: it is written');
select is((select transcript_json #> '{99,meta,tags,1}' from fred.coaching_sessions where id = :'s1'), '100'::jsonb,
          'and the new transcript is stored');
select is((select transcript_digest from fred.coaching_sessions where id = :'s1'),
          fred.transcript_digest(jsonb_set((select t from sp_t), '{99,meta,tags,1}', '100')),
          'and its digest with it');
-- A numeric written with another scale is another text, so another transcript (written).
delete from sp_before;
insert into sp_before select ctid::text, transcript_digest from fred.coaching_sessions where id = :'s1';
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'speed-1', 'transcript', jsonb_set((select t from sp_t), '{99,meta,tags,1}', '100.0')));
select isnt((select transcript_digest from fred.coaching_sessions where id = :'s1'), (select d from sp_before),
            '100.0 and 100 are stored as written: each its own digest');
-- Only the summary changes: written, transcript digest unchanged.
delete from sp_before;
insert into sp_before select ctid::text, transcript_digest from fred.coaching_sessions where id = :'s1';
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
         jsonb_build_object('room_name', 'speed-1', 'transcript', jsonb_set((select t from sp_t), '{99,meta,tags,1}', '100.0'),
                            'summary', 'new'));
select is((select (summary, transcript_digest = (select d from sp_before)) from fred.coaching_sessions where id = :'s1'),
          row('new'::text, true), 'a changed summary with the same transcript is written; the digest stays');

-- An identical repeat writes nothing but still meets today's caps; a NULL transcript is 22023.
select fred_test.rpc('service_role', null, 'fred_persist_transcript',
         '{"room_name": "speed-caps", "transcript": [{"text": "a", "role": "u"}, {"text": "b", "role": "u"}, {"text": "c", "role": "u"}]}');
select is(fred_test.sqlstate($q$ select fred_test.rpc('service_role', null, 'fred_persist_transcript',
            '{"room_name": "speed-caps", "transcript": [{"text": "a", "role": "u"}, {"text": "b", "role": "u"}, {"text": "c", "role": "u"}]}') $q$),
          'ok', 'an identical repeat succeeds');
set local fred.max_transcript_entries = 2;
select is(fred_test.sqlstate($q$ select fred_test.rpc('service_role', null, 'fred_persist_transcript',
            '{"room_name": "speed-caps", "transcript": [{"text": "a", "role": "u"}, {"text": "b", "role": "u"}, {"text": "c", "role": "u"}]}') $q$),
          '22001', 'an identical repeat over a lowered cap is 22001, as a write would be');
set local fred.max_transcript_entries = 1000;
select is(fred_test.sqlstate($q$ select fred.persist_transcript('speed-caps', null) $q$), '22023', 'a NULL transcript is 22023');

-- 3. The table keeps the digest true for every writer.
update fred.coaching_sessions set transcript_digest = '\x00' where id = :'s1';
select is((select transcript_digest from fred.coaching_sessions where id = :'s1'), fred.transcript_digest((select transcript_json from fred.coaching_sessions where id = :'s1')),
          'a writer cannot set another digest: the table recomputes it');
update fred.coaching_sessions set transcript_json = '[{"text": "x", "role": "user"}]' where id = :'s1';
select is((select (transcript_entries, transcript_digest) from fred.coaching_sessions where id = :'s1'),
          row(1, fred.transcript_digest('[{"text": "x", "role": "user"}]')), 'a direct UPDATE of the transcript sets entries and digest');
update fred.coaching_sessions set transcript_json = null where id = :'s1';
select is((select (transcript_entries, transcript_digest) from fred.coaching_sessions where id = :'s1'),
          row(0, null::bytea), 'no transcript: no entries, no digest');
select is((select count(*)::int from fred.coaching_sessions where transcript_json is not null
             and transcript_digest is distinct from fred.transcript_digest(transcript_json)), 0,
          'every row''s digest is its transcript''s');

-- 4. The check on the binary form: the same answers as on the text, the byte cap exact.
create temp table sp_cases (k int, t jsonb);
insert into sp_cases values
  (1, '[{"text": "tab\tnew\nline \"q\" back\\slash \u0001 é 😀", "speaker": "s", "n": 1.50, "e": 1e-7, "big": 1e300}]'),
  (2, '[{"text": "a", "role": "r", "x": {"y": [1, [2, {}], []], "z": null, "w": false}}]'),
  (3, '[]'), (4, '[{"text": "a", "speaker": 1}]'), (5, '{"text": "a", "speaker": "b"}'), (6, '"a string"'),
  (7, '[{"text": "a", "speaker": "b"}, 3]'), (8, '[{"speaker": "b"}]');
insert into sp_cases select 9, t from sp_t;
create function pg_temp.sp_len(t jsonb) returns text language plpgsql as $$
begin
  perform set_config('fred.max_transcript_bytes', greatest(1024, octet_length(t::text))::text, true);
  return fred.check_transcript(t)::text;
exception when others then return sqlstate;
end $$;
select is((select count(*)::int from sp_cases where pg_temp.sp_len(t) in ('22001')), 0,
          'a transcript exactly at the byte cap passes (the length is the text''s, to the byte)');
create function pg_temp.sp_over(t jsonb) returns text language plpgsql as $$
begin
  perform set_config('fred.max_transcript_bytes', (octet_length(t::text) - 1)::text, true);
  return fred.check_transcript(t)::text;
exception when others then return sqlstate;
end $$;
select is(pg_temp.sp_over(t), '22001', 'one byte over the cap is 22001 (600-entry transcript)') from sp_cases where k = 9;
select is(pg_temp.sp_over(jsonb_build_array(jsonb_build_object('text', repeat(E'\u0001\t"\\é', 200), 'speaker', 'x', 'n', 12.500))),
          '22001', 'one byte over the cap is 22001 (escapes and numerics)');
select results_eq($q$ select k, pg_temp.sp_len(t) from sp_cases order by k $q$,
                  $q$ values (1, '1'), (2, '1'), (3, '0'), (4, '22023'), (5, '22023'), (6, '22023'), (7, '22023'), (8, '22023'), (9, '100') $q$,
                  'entry counts and shape errors');
create function pg_temp.sp_len_text(t jsonb) returns text language plpgsql as $$
begin
  perform set_config('fred.max_transcript_bytes', greatest(1024, octet_length(t::text))::text, true);
  return fred.check_transcript_text(t::text)::text;
exception when others then return sqlstate;
end $$;
select case when fred_test.is_extension()
  then results_eq($q$ select k, pg_temp.sp_len(t) from sp_cases order by k $q$,
                  $q$ select k, pg_temp.sp_len_text(t) from sp_cases order by k $q$,
                  'extension: the binary check answers as the text check (check_transcript_text) does')
  else pass('SQL install: one check') end;
select case when fred_test.is_extension()
  then is((select l.lanname from pg_proc p join pg_language l on l.oid = p.prolang where p.oid = 'fred.transcript_digest(jsonb)'::regprocedure),
          'c', 'extension: the digest is Rust (SHA-256 of the binary form)')
  else is((select l.lanname from pg_proc p join pg_language l on l.oid = p.prolang where p.oid = 'fred.transcript_digest(jsonb)'::regprocedure),
          'plpgsql', 'SQL install: the digest is SHA-256 of the text form') end;

select is((select l.lanname || ' ' || (p.prosecdef)::text || ' ' || array_to_string(p.proconfig, ',')
             from pg_proc p join pg_language l on l.oid = p.prolang
            where p.oid = 'fred.coaching_sessions_events()'::regprocedure),
          case when fred_test.is_extension() then 'c' else 'plpgsql' end || ' true search_path=pg_catalog, pg_temp',
          'the change-event trigger: Rust in the extension, PL/pgSQL in the SQL install; SECURITY DEFINER, fixed search_path');
select is((select l.lanname || ' ' || (p.prosecdef)::text || ' ' || array_to_string(p.proconfig, ',')
             from pg_proc p join pg_language l on l.oid = p.prolang
            where p.oid = 'fred.livekit_events_tombstone()'::regprocedure),
          case when fred_test.is_extension() then 'c' else 'plpgsql' end || ' true search_path=pg_catalog, pg_temp',
          'the ledger''s tombstone trigger: Rust in the extension, PL/pgSQL in the SQL install; SECURITY DEFINER, fixed search_path');
select is((select l.lanname || ' ' || (p.prosecdef)::text || ' ' || array_to_string(p.proconfig, ',')
             from pg_proc p join pg_language l on l.oid = p.prolang
            where p.oid = 'fred.coaching_sessions_tombstone()'::regprocedure),
          case when fred_test.is_extension() then 'c' else 'plpgsql' end || ' true search_path=pg_catalog, pg_temp',
          'the table''s tombstone trigger: Rust in the extension, PL/pgSQL in the SQL install; SECURITY DEFINER, fixed search_path');

-- The room lock: the extension takes fred.lock_room's advisory lock without a statement; it must
-- be the same lock, or an event and the app's fred_upsert_session could bind two sessions.
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_lock15", "createdAt": "1795511000",
  "room": {"sid": "RM_lock15", "name": "lock-15"}}');
create temp table lock15 as
  select count(*) as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid();
select fred.lock_room('lock-15');
select is((select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()),
          (select n from lock15), 'a new room''s first event holds fred.lock_room''s lock: taking it again adds none');
select fred.lock_room('lock-15-other');
select is((select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()),
          (select n + 1 from lock15), 'another room''s lock is another lock');

-- A room's first event, by each path the extension takes (one statement for a room_started;
-- a participant_joined before it; the app's unbound session of that name): the same row as the
-- SQL install, merged and owned.
select fred_test.rpc('service_role', null, 'fred_upsert_session',
                     jsonb_build_object('room_name', 'bind-15', 'user_id', '00000000-0000-0000-0000-0000000000b5'));
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_bind15", "createdAt": "1795511100",
  "room": {"sid": "RM_bind15", "name": "bind-15", "creationTime": "1795511090"}}');
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_new15", "createdAt": "1795511200",
  "room": {"sid": "RM_new15", "name": "new-15", "creationTime": "1795511190",
           "metadata": "{\"user_id\": \"00000000-0000-0000-0000-0000000000b6\"}"}}');
select fred.apply_livekit_event('{"event": "participant_joined", "id": "EV_pj15", "createdAt": "1795511305",
  "room": {"sid": "RM_pj15", "name": "pj-15"}, "participant": {"sid": "PA_15", "identity": "u"}}');
create temp table first15 as
  select room_name, count(*)::int || ' ' || string_agg(concat_ws(' ', room_sid, user_id, status,
           extract(epoch from started_at)::bigint, extract(epoch from last_event_at)::bigint), ',') as r
    from fred.coaching_sessions where room_name in ('bind-15', 'new-15', 'pj-15') group by room_name;
select is((select r from first15 where room_name = 'bind-15'),
          '1 RM_bind15 00000000-0000-0000-0000-0000000000b5 active 1795511090 1795511100',
          'room_started binds the app''s unbound session of that name and merges it: one session');
select is((select r from first15 where room_name = 'new-15'),
          '1 RM_new15 00000000-0000-0000-0000-0000000000b6 active 1795511190 1795511200',
          'room_started of a new room: one session, owned from the metadata, its times merged');
select is((select r from first15 where room_name = 'pj-15'),
          '1 RM_pj15 active 1795511305 1795511305',
          'a participant_joined before its room_started: one session, its times merged');

select * from finish();
rollback;
