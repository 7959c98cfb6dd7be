-- A batch (fred.apply_livekit_events, the daemon's call) gives the same results, session rows,
-- ledger rows and change events as its events applied one by one, in order (issue 13: the
-- extension applies a batch in a few statements; the SQL install one event at a time).
--
-- One history is written twice, as set qq1 (one by one, fred.apply_livekit_event) and set qq2
-- (one batch). The sets differ only in a tag inside every sid, room name and event id, which the
-- comparisons take out again.
begin;
select plan(12);

\set u1 '''11111111-0000-4000-8000-000000000001'''
\set u2 '''22222222-0000-4000-8000-000000000002'''
\set u3 '''33333333-0000-4000-8000-000000000003'''

create function pg_temp.ev(tag text, typ text, room text, id text, at bigint, owner uuid default null, extra jsonb default '{}')
returns jsonb language sql as $$
  with base as (
    select jsonb_strip_nulls(jsonb_build_object(
             'event', typ, 'id', 'EV_' || tag || '_' || id,
             'createdAt', at::text,
             'room', jsonb_build_object('sid', 'RM_' || tag || '_' || room, 'name', 'batch-' || tag || '-' || room,
                                        'metadata', case when owner is not null then jsonb_build_object('user_id', owner)::text end))) as b)
  -- extra's room fields go into the room object; its other keys beside it.
  select b || (extra - 'room') || jsonb_build_object('room', (b -> 'room') || coalesce(extra -> 'room', '{}'))
    from base
$$;

-- Before the batch: sessions for rooms 1, 2 and 4 (2 owned by u2), and one event already in the ledger.
create function pg_temp.before(tag text) returns setof text language sql as $$
  select fred.apply_livekit_event(pg_temp.ev(tag, 'room_started', 'r1', 'r1s', 1000));
  select fred.apply_livekit_event(pg_temp.ev(tag, 'room_started', 'r2', 'r2s', 1000, '22222222-0000-4000-8000-000000000002'));
  select fred.apply_livekit_event(pg_temp.ev(tag, 'room_started', 'r4', 'r4s', 1000));
  select fred.apply_livekit_event(pg_temp.ev(tag, 'participant_joined', 'r1', 'r1old', 1001));
$$;

-- The batch, in order: room 1 (no owner yet) gets joins, a repeat of an id in the batch and of
-- one already applied, an event without createdAt, an owner, then two room_finished; room 2
-- changes owner twice; room 3 has no session yet; room 4 has an egress event; ignored events
-- (the egress participant, an unknown type) in between; room 1's start time moves earlier.
create function pg_temp.batch(tag text) returns jsonb language sql as $$
  select jsonb_build_array(
    pg_temp.ev(tag, 'participant_joined', 'r1', 'a1', 1010),
    pg_temp.ev(tag, 'participant_joined', 'r2', 'b1', 1011, '33333333-0000-4000-8000-000000000003'),
    pg_temp.ev(tag, 'participant_joined', 'r1', 'a1', 1012),
    pg_temp.ev(tag, 'participant_joined', 'r1', 'r1old', 1013),
    pg_temp.ev(tag, 'participant_joined', 'r1', 'a2', 1014, null,
               '{"participant": {"sid": "PA_eg", "identity": "EG_x", "kind": "EGRESS"}}'),
    pg_temp.ev(tag, 'track_published', 'r5', 'x1', 1015),
    pg_temp.ev(tag, 'room_started', 'r3', 'c1', 1016, '11111111-0000-4000-8000-000000000001'),
    pg_temp.ev(tag, 'participant_left', 'r1', 'a3', 1017) - 'createdAt',
    pg_temp.ev(tag, 'participant_joined', 'r3', 'c2', 1018),
    pg_temp.ev(tag, 'participant_joined', 'r1', 'a4', 1019, '11111111-0000-4000-8000-000000000001',
               '{"room": {"creationTime": "900"}}'),
    pg_temp.ev(tag, 'participant_joined', 'r2', 'b2', 1020, '22222222-0000-4000-8000-000000000002'),
    pg_temp.ev(tag, 'egress_started', 'r4', 'd1', 1021, null,
               jsonb_build_object('egressInfo', jsonb_build_object('egressId', 'EG_' || tag, 'roomId', 'RM_' || tag || '_r4',
                                                                  'status', 'EGRESS_STARTING', 'updatedAt', '1021000000000'))),
    pg_temp.ev(tag, 'participant_joined', 'r4', 'd2', 1022),
    pg_temp.ev(tag, 'room_finished', 'r1', 'a5', 1030),
    pg_temp.ev(tag, 'participant_left', 'r1', 'a6', 1031),
    pg_temp.ev(tag, 'room_finished', 'r1', 'a7', 1040),
    pg_temp.ev(tag, 'room_finished', 'r2', 'b3', 1041));
$$;

-- What a set leaves behind, with its tag taken out.
create function pg_temp.sessions(tag text) returns setof text language sql as $$
  select replace(format('%s %s %s %s %s %s %s %s %s %s %s', s.room_sid, s.room_name, s.user_id, s.status, s.started_at,
                        s.last_event_at, s.ended_at, s.end_reason, s.egress_id, s.egress_status, s.recording_status),
                 tag, 'T')
    from fred.coaching_sessions s where s.room_sid like 'RM\_' || tag || '\_%' order by s.room_sid
$$;
create function pg_temp.ledger(tag text) returns setof text language sql as $$
  select replace(format('%s %s %s %s %s %s', l.event_id, l.event_type, l.room_sid, l.room_name, l.created_at, l.outcome), tag, 'T')
    from fred.livekit_events l where l.event_id like 'EV\_' || tag || '\_%' order by l.event_id
$$;
create function pg_temp.messages(tag text) returns setof text language sql as $$
  select replace(format('%s %s %s', m.topic, m.event, m.payload - 'session_id'), tag, 'T')
    from realtime.messages m where m.payload ->> 'room_name' like 'batch-' || tag || '-%' order by 1
$$;

select pg_temp.before('qq1');
select pg_temp.before('qq2');
delete from realtime.messages;
create temp table one_by_one as
select (e.i - 1)::integer as idx, fred.apply_livekit_event(e.j) as result
  from jsonb_array_elements(pg_temp.batch('qq1')) with ordinality e(j, i) order by e.i;
create temp table batched as select idx, result, error_code from fred.apply_livekit_events(pg_temp.batch('qq2'));

select results_eq($$ select idx, result from batched order by idx $$, $$ select idx, result from one_by_one order by idx $$,
                  'a batch answers each event as applying it alone, in order, does');
select is((select string_agg(result, ' ' order by idx) from batched),
          'applied applied duplicate duplicate ignored ignored applied applied applied applied applied applied applied applied applied applied applied',
          'the answers: repeats are duplicates, the egress participant and an unknown type are ignored');
select is((select count(*)::integer from batched where error_code is not null), 0, 'nothing in it is rejected');
select results_eq($$ select pg_temp.sessions('qq2') $$, $$ select pg_temp.sessions('qq1') $$,
                  'the batch leaves the same session rows: owners, status, times, egress');
select results_eq($$ select pg_temp.ledger('qq2') $$, $$ select pg_temp.ledger('qq1') $$, 'and the same ledger');
select results_eq($$ select pg_temp.messages('qq2') $$, $$ select pg_temp.messages('qq1') $$,
                  'and the same change events: one per change, not one per batch');
select is((select count(*)::integer from pg_temp.messages('qq2') m where m like '%batch-T-r2%'), 3,
          'room 2 (owned) emits each of its changes: two owner changes, the end');
select is((select format('%s %s %s', user_id, status, ended_at) from fred.coaching_sessions where room_sid = 'RM_qq2_r1'),
          format('%s ended %s', :u1, timestamptz 'epoch' + interval '1040 seconds'),
          'room 1: the owner named last, ended at its last room_finished');
select is((select started_at from fred.coaching_sessions where room_sid = 'RM_qq2_r1'), timestamptz 'epoch' + interval '900 seconds',
          'room 1: started at the earliest creation time of its events');

-- A poison event in a batch: the others are applied as one by one, it alone is rejected, and
-- applying the batch again changes nothing.
select results_eq(
  $$ select result, error_code from fred.apply_livekit_events(jsonb_build_array(
       pg_temp.ev('qqp', 'room_started', 'p1', 'p1', 2000),
       jsonb_build_object('event', 'participant_joined', 'id', 'EV_qqp_bad', 'room', 'not an object'),
       pg_temp.ev('qqp', 'participant_joined', 'p1', 'p2', 2001))) order by idx $$,
  $$ values ('applied'::text, null::text), ('rejected', '22023'), ('applied', null) $$,
  'a poison event is rejected alone (22023); its neighbours are applied');
select results_eq(
  $$ select result from fred.apply_livekit_events(jsonb_build_array(
       pg_temp.ev('qqp', 'room_started', 'p1', 'p1', 2000), pg_temp.ev('qqp', 'participant_joined', 'p1', 'p2', 2001))) order by idx $$,
  $$ values ('duplicate'::text), ('duplicate') $$, 'the same batch again: duplicates, nothing changes');

-- Who may call the engine's batch directly: the daemon's roles only.
select ok(not has_function_privilege('anon', 'fred.apply_event_batch(jsonb)', 'execute')
          and not has_function_privilege('authenticated', 'fred.apply_event_batch(jsonb)', 'execute')
          and not has_function_privilege('public', 'fred.apply_event_batch(jsonb)', 'execute')
          and has_function_privilege('fred_syncd', 'fred.apply_event_batch(jsonb)', 'execute'),
          'fred.apply_event_batch: fred_syncd may call it; anon, authenticated and PUBLIC may not');

select * from finish();
rollback;
