-- Transcript caps and shape, through fred_persist_transcript.
begin;
select plan(36);

create temp table t as
select jsonb_agg(jsonb_build_object('text', 'line ' || i, 'speaker', case when i % 2 = 0 then 'coach' else 'user' end, 'ts', i)) as t500
  from generate_series(1, 500) i;

select lives_ok($$ select fred_persist_transcript('tx-room', (select t500 from t), 'first summary', '["d1"]', '["n1"]', 'coaching') $$,
                '500 entries pass');
select is((select transcript_entries from fred.coaching_sessions where room_name = 'tx-room'), 500, 'transcript_entries counts them');
select is((select transcript_json -> 499 ->> 'ts' from fred.coaching_sessions where room_name = 'tx-room'), '500', 'other keys are kept');

select throws_ok($$ select fred_persist_transcript('tx-room', (select t500 || '[{"text": "x", "speaker": "y"}]'::jsonb from t)) $$,
                 '22001', null, '501 entries fail with 22001');
select throws_like($$ select fred_persist_transcript('tx-room', (select t500 || '[{"text": "x", "speaker": "y"}]'::jsonb from t)) $$,
                   '%501 entries%cap is 500%', 'the message gives the count and the cap');
select is((select (transcript_entries, summary, decisions) from fred.coaching_sessions where room_name = 'tx-room'),
          row(500, 'first summary'::text, '["d1"]'::jsonb), 'a rejected persist changes nothing stored');

-- The cap follows the setting.
set fred.max_transcript_entries = 10;
select throws_ok($$ select fred_persist_transcript('tx-guc', (select jsonb_path_query_array(t500, '$[0 to 10]') from t)) $$,
                 '22001', null, '11 entries fail when the cap is 10');
select lives_ok($$ select fred_persist_transcript('tx-guc', (select jsonb_path_query_array(t500, '$[0 to 9]') from t)) $$,
                '10 entries pass when the cap is 10');
reset fred.max_transcript_entries;
select lives_ok($$ select fred_persist_transcript('tx-guc', (select t500 from t)) $$, 'after RESET the cap is 500 again');

-- The byte cap measures octet_length(transcript::text), exactly.
set fred.max_transcript_bytes = 1024;
create temp table b as
select n, jsonb_build_array(jsonb_build_object('text', repeat('é', n), 'speaker', 's')) as tr
  from generate_series(400, 600) n;
select ok(exists (select 1 from b where octet_length(tr::text) = 1024), 'a transcript of exactly 1024 bytes exists');
select lives_ok($$ select fred_persist_transcript('tx-bytes', (select tr from b where octet_length(tr::text) = 1024)) $$,
                'exactly at the byte cap passes');
select throws_ok($$ select fred_persist_transcript('tx-bytes', (select tr from b where octet_length(tr::text) = 1026)) $$,
                 '22001', null, 'over the byte cap fails with 22001');
select throws_like($$ select fred_persist_transcript('tx-bytes', (select tr from b where octet_length(tr::text) = 1026)) $$,
                   '%1026 bytes%cap is 1024%', 'the message gives the size and the cap');
reset fred.max_transcript_bytes;

-- Shape: 22023, naming the 0-based index of the first bad entry.
select throws_ok($$ select fred_persist_transcript('tx-shape', '{"text": "x", "speaker": "y"}') $$, '22023', null, 'an object is not a transcript');
select throws_ok($$ select fred_persist_transcript('tx-shape', '"text"') $$, '22023', null, 'a string is not a transcript');
select throws_ok($$ select fred_persist_transcript('tx-shape', null) $$, '22023', null, 'NULL is not a transcript');
select throws_like($$ select fred_persist_transcript('tx-shape', '[{"text": "a", "speaker": "x"}, {"text": "b", "role": "y"}, {"text": 3, "speaker": "z"}, 4]') $$,
                   '%entry 2 %', 'the first bad entry is named by index');
select throws_like($$ select fred_persist_transcript('tx-shape', '[{"text": "a", "speaker": "x"}, 7]') $$, '%entry 1 %', 'a number is not an entry');
select throws_like($$ select fred_persist_transcript('tx-shape', '[{"speaker": "x"}]') $$, '%entry 0 %', 'text is required');
select throws_like($$ select fred_persist_transcript('tx-shape', '[{"text": "a"}]') $$, '%entry 0 %', 'speaker or role is required');
select throws_like($$ select fred_persist_transcript('tx-shape', '[{"text": "a", "speaker": 1}]') $$, '%entry 0 %', 'speaker must be a string');
select throws_ok($$ select fred_persist_transcript('tx-shape', '[{"text": "a", "speaker": null}]') $$, '22023', null, 'a null speaker is no speaker');
select lives_ok($$ select fred_persist_transcript('tx-shape', '[{"text": "a", "speaker": 1, "role": "user"}]') $$, 'a string role is enough');
select lives_ok($$ select fred_persist_transcript('tx-empty', '[]') $$, 'an empty transcript is allowed');
select throws_ok($$ select fred_persist_transcript('tx-shape', '[]', decisions => '{"a": 1}') $$, '22023', null, 'decisions must be an array');
select throws_ok($$ select fred_persist_transcript('tx-shape', '[]', next_actions => '"call back"') $$, '22023', null, 'next_actions must be an array');
select throws_ok($$ select fred_persist_transcript('', '[]') $$, '22023', null, 'an empty room_name is refused');
select throws_ok($$ select fred_persist_transcript(null, '[]') $$, '22023', null, 'a NULL room_name is refused');
select throws_ok($$ select fred_persist_transcript(repeat('r', 257), '[]') $$, '22023', null, 'an over-long room_name is refused');

-- Repeats: the transcript is replaced; optional values left NULL keep what is stored.
select is(fred_persist_transcript('tx-room', '[{"text": "only", "speaker": "coach"}]'),
          (select id from fred.coaching_sessions where room_name = 'tx-room'), 'a repeat persist returns the same session');
select is((select (transcript_entries, summary, decisions, next_actions, call_type) from fred.coaching_sessions where room_name = 'tx-room'),
          row(1, 'first summary'::text, '["d1"]'::jsonb, '["n1"]'::jsonb, 'coaching'::text),
          'the transcript is replaced and NULL optionals keep the stored values');
select fred_persist_transcript('tx-room', '[{"text": "only", "speaker": "coach"}]', summary => 'second', call_type => 'review');
select is((select (summary, call_type, decisions) from fred.coaching_sessions where room_name = 'tx-room'),
          row('second'::text, 'review'::text, '["d1"]'::jsonb), 'passed values replace, omitted ones stay');
-- now() does not move inside this transaction, so age updated_at first: a repeat that wrote the
-- row would set it to now(). The row's ctid shows that no new version was written at all.
update fred.coaching_sessions set updated_at = timestamptz '2000-01-01 00:00+00' where room_name = 'tx-room';
create temp table before_repeat as
  select to_jsonb(s) as row, s.ctid as row_ctid from fred.coaching_sessions s where room_name = 'tx-room';
select fred_persist_transcript('tx-room', '[{"text": "only", "speaker": "coach"}]', summary => 'second', call_type => 'review');
select is((select to_jsonb(s) from fred.coaching_sessions s where room_name = 'tx-room'), (select row from before_repeat),
          'a repeat of the same call leaves the same row, updated_at included');
select is((select s.ctid from fred.coaching_sessions s where room_name = 'tx-room'), (select row_ctid from before_repeat),
          'a repeat of the same call writes no new row version');
select fred_persist_transcript('tx-room', '[{"text": "changed", "speaker": "coach"}]');
select isnt((select updated_at from fred.coaching_sessions where room_name = 'tx-room'), timestamptz '2000-01-01 00:00+00',
            'a persist that changes the transcript moves updated_at');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'tx-room'), 1, 'still one session for the room');

select * from finish();
rollback;
