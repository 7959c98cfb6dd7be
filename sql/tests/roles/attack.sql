-- The pg_temp attack (issue 11 §1), run by sql/tests/roles/attack.sh while logged in as one of the
-- project's own roles (fred_syncd, or a plain login role granted authenticated).
--
-- The session shadows common built-in types with domains in pg_temp, and some catalog and fred
-- relations with temp views, each of whose CHECK or WHERE runs pg_temp.fred_probe(), which
-- reports the role it runs as in a WARNING ("fred-attack-probe: code ran as ..."). It then calls
-- every function of ours this role may execute, with realistic arguments and with generic ones.
-- attack.sh fails unless every probe report names this role itself.
\set ON_ERROR_STOP 1
-- One transaction, rolled back at the end: the attack leaves no rows behind (the WARNINGs that
-- report the probes reach the client as they happen).
begin;
set local client_min_messages = warning;
-- An end user's request (ignored by fred_syncd, which is trusted).
select pg_catalog.set_config('request.jwt.claims',
  '{"sub": "00000000-0000-0000-0000-0000000000ff", "role": "authenticated"}', true) \g /dev/null

create function pg_temp.fred_probe() returns pg_catalog.bool
language plpgsql as $$
begin
  raise warning 'fred-attack-probe: code ran as % (session user %)', current_user, session_user;
  return true;
end
$$;

-- Types, as written in fred's code or PostgreSQL's: each a domain over the real type.
do $shadow$
declare
  t pg_catalog.text;
begin
  foreach t in array array['text', 'varchar', 'bpchar', 'name', 'uuid', 'jsonb', 'json', 'int2', 'int4', 'int8',
                           'bool', 'float4', 'float8', 'numeric', 'timestamptz', 'timestamp', 'date', 'interval',
                           'bytea', 'oid', 'regclass', 'regproc', 'regprocedure', 'regnamespace', 'regrole',
                           'regtype', 'tid', 'xid', 'inet']::pg_catalog.text[] loop
    execute pg_catalog.format('create domain pg_temp.%I as pg_catalog.%I check (pg_temp.fred_probe())', t, t);
  end loop;
  -- Relations: catalogs fred reads, and fred's own table names.
  foreach t in array array['pg_roles', 'pg_class', 'pg_namespace', 'pg_proc', 'pg_policies', 'pg_policy',
                           'pg_extension', 'pg_depend', 'pg_settings', 'pg_authid', 'pg_auth_members',
                           'pg_database', 'pg_type']::pg_catalog.text[] loop
    execute pg_catalog.format('create temp view %I as select * from pg_catalog.%I where pg_temp.fred_probe()', t, t);
  end loop;
  foreach t in array array['coaching_sessions', 'livekit_events', 'egress_claims', 'job_runs']::pg_catalog.text[] loop
    execute pg_catalog.format('create temp view %I as select pg_temp.fred_probe() as probe', t);
  end loop;
end
$shadow$;

-- Positive control: in this session's own code the shadows are live (the probe reports this role).
select 'control'::text \g /dev/null

-- The calls. Realistic arguments per function, then generic ones for every executable function
-- (so a function added later is called even if nobody lists it here).
create temp table calls (fn pg_catalog.text, args pg_catalog.text);
insert into calls values
  ('fred.apply_livekit_event', $$'{"event": "room_started", "id": "EV_atk_1", "createdAt": "1795510800", "room": {"sid": "RM_atk", "name": "atk-room", "creationTime": "1795510800", "metadata": "{\"user_id\": \"00000000-0000-0000-0000-0000000000ff\"}"}}'$$),
  ('fred.apply_livekit_event', $$'{"event": "participant_joined", "id": "EV_atk_2", "createdAt": "1795510802", "room": {"sid": "RM_atk", "name": "atk-room"}, "participant": {"sid": "PA_1", "identity": "u"}}'$$),
  ('fred.apply_livekit_event', $$'{"event": "egress_started", "id": "EV_atk_3", "createdAt": "1795510805", "room": {"sid": "RM_atk", "name": "atk-room"}, "egressInfo": {"egressId": "EG_atk", "roomId": "RM_atk", "roomComposite": {"roomName": "atk-room", "fileOutputs": [{"s3": {"endpoint": "https://s3.example", "bucket": "voice-recordings"}}]}, "fileResults": [{"filename": "atk.ogg"}], "updatedAt": "1795510805000000000"}}'$$),
  ('fred.apply_livekit_event', $$'{"event": "egress_ended", "id": "EV_atk_4", "createdAt": "1795511101", "room": {"sid": "RM_atk", "name": "atk-room"}, "egressInfo": {"egressId": "EG_atk", "roomId": "RM_atk", "status": "EGRESS_COMPLETE", "fileResults": [{"filename": "atk.ogg", "size": "10", "duration": "2000000000", "location": "https://s3.example/voice-recordings/atk.ogg"}], "updatedAt": "1795511101000000000", "details": "done"}}'$$),
  ('fred.apply_livekit_event', $$'{"event": "room_finished", "id": "EV_atk_5", "createdAt": "1795511120", "room": {"sid": "RM_atk", "name": "atk-room"}}'$$),
  ('fred.apply_livekit_event', $$'{"event": "room_started", "id": "EV_atk_bad", "room": {"sid": 5}}'$$),
  ('fred.apply_livekit_events', $$'[{"event": "room_started", "id": "EV_atk_b1", "room": {"sid": "RM_atk_b", "name": "atk-b"}}, {"event": "syncd_egress_started", "id": "SY_atk_b2", "room": {"sid": "RM_atk_b", "name": "atk-b"}, "egress_id": "EG_atk_b"}, {"event": "syncd_egress_failed", "id": "SY_atk_b3", "room": {"sid": "RM_atk_b"}, "error": "x"}, {"event": "bogus"}]'$$),
  ('fred.apply_one_event', $$'{"event": "syncd_recording_disabled", "id": "SY_atk_o1", "room": {"sid": "RM_atk_o", "name": "atk-o"}}'$$),
  ('fred.apply_one_event', $$'{"event": "room_started", "id": "EV_atk_o2", "room": {"sid": "RM_atk_o2", "name": "atk-o2"}}'$$),
  ('fred.apply_syncd_event', $$'{"event": "syncd_egress_started", "id": "SY_atk_s1", "room": {"sid": "RM_atk_s", "name": "atk-s"}, "egress_id": "EG_atk_s"}'$$),
  ('fred.apply_syncd_event', $$'{"event": "syncd_egress_failed", "id": "SY_atk_s2", "room": {"sid": "RM_atk_s2", "name": "atk-s2"}, "error": "no"}'$$),
  ('fred.apply_syncd_event', $$'{"event": "syncd_recording_disabled", "id": "SY_atk_s3", "room": {"sid": "RM_atk_s3"}}'$$),
  ('fred.claim_egress_start', $$'RM_atk', 'atk-room', 'attacker'$$),
  ('fred.recordings_to_verify', $$10$$),
  ('fred.record_verification', $$(select v.session_id from fred.recordings_to_verify(1000) v limit 1), true, 10$$),
  ('fred.record_verification', $$(select v.session_id from fred.recordings_to_verify(1000) v limit 1), false$$),
  ('fred.recording_location', $$(select v.session_id from fred.recordings_to_verify(1000) v limit 1)$$),
  ('fred.claim_job_tick', $$'stale', pg_catalog.now(), 'attacker'$$),
  ('fred.finish_job_run', $$'stale', pg_catalog.now(), 1, 'attack'$$),
  ('fred.reconcile_candidates', $$'1 minute', 10$$),
  ('fred.reconcile_candidates', $$'-1 day', 10$$),
  ('fred.mark_egress_lost', $$(select c.session_id from fred.reconcile_candidates('1 minute', 1) c limit 1), 'gone'$$),
  ('fred.close_stale_sessions', $$'3650 days'$$),
  ('fred.close_stale_sessions', $$'0'$$),
  ('fred.recordings_to_delete', $$1, 10$$),
  ('fred.recordings_to_delete', $$0$$),
  ('fred.mark_recording_deleted', $$(select d.session_id from fred.recordings_to_delete(1, 1) d limit 1)$$),
  ('fred.purge_transcripts', $$3650$$),
  ('fred.purge_transcripts', $$0$$),
  ('fred.version', $$$$),
  ('public.fred_upsert_session', $$'atk-user-room', null, 'attack', '{"a": 1}'$$),
  ('public.fred_upsert_session', $$'atk-user-room', '00000000-0000-0000-0000-00000000000a'$$),
  ('public.fred_persist_transcript', $$'atk-user-room', '[{"text": "t", "speaker": "s"}]', 'summary', '["d"]', '["n"]', 'call'$$),
  ('public.fred_persist_transcript', $$'atk-user-room', '[{"text": 1}]'$$),
  ('public.fred_persist_transcript', $$'atk-user-room', '[]', pg_catalog.repeat('s', 70000)$$),
  ('public.fred_get_session', $$(select public.fred_upsert_session('atk-user-room'))$$),
  ('public.fred_list_sessions', $$5, pg_catalog.now()$$),
  ('fred.upsert_session', $$'atk-user-room2', null, 'attack', '{"a": 1}'$$),
  ('fred.persist_transcript', $$'atk-user-room2', '[{"text": "t", "role": "s"}]', 's', '[]', '[]', 'c'$$),
  ('fred.get_session', $$(select fred.upsert_session('atk-user-room2'))$$),
  ('fred.list_sessions', $$5, null$$),
  ('fred.owns_recording', $$'voice-recordings', 'atk.ogg'$$);

do $calls$
declare
  f        record;
  a        record;
  v_args   pg_catalog.text;
  v_called pg_catalog.int4 := 0;
  v_total  pg_catalog.int4 := 0;
  v_ok     pg_catalog.int4 := 0;
  v_state  pg_catalog.text;
begin
  for f in
    select p.oid, p.oid::pg_catalog.regprocedure::pg_catalog.text as sig,
           n.nspname operator(pg_catalog.||) '.' operator(pg_catalog.||) p.proname as fn, p.proargtypes, p.pronargs
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) p.pronamespace
     where (n.nspname operator(pg_catalog.=) 'fred' or (n.nspname operator(pg_catalog.=) 'public' and p.proname operator(pg_catalog.~~) 'fred\_%'))
       and p.prorettype operator(pg_catalog.<>) 'pg_catalog.trigger'::pg_catalog.regtype
       and pg_catalog.has_function_privilege(p.oid, 'execute')
     order by 2
  loop
    v_total := v_total operator(pg_catalog.+) 1;
    -- Generic arguments: a plausible value of each type.
    select pg_catalog.string_agg(case t.typ
             when 'pg_catalog.text'::pg_catalog.regtype then '''atk-generic'''
             when 'pg_catalog.uuid'::pg_catalog.regtype then 'pg_catalog.gen_random_uuid()'
             when 'pg_catalog.jsonb'::pg_catalog.regtype then '''{"event": "room_started", "id": "EV_atk_g", "room": {"sid": "RM_atk_g", "name": "atk-g"}}'''
             when 'pg_catalog.int4'::pg_catalog.regtype then '30'
             when 'pg_catalog.int8'::pg_catalog.regtype then '30'
             when 'pg_catalog.bool'::pg_catalog.regtype then 'true'
             when 'pg_catalog.timestamptz'::pg_catalog.regtype then 'pg_catalog.now()'
             when 'pg_catalog.interval'::pg_catalog.regtype then '''1 hour'''
             else 'null' end
             operator(pg_catalog.||) '::' operator(pg_catalog.||) pg_catalog.format_type(t.typ, null), ', ' order by t.i)
      into v_args
      from pg_catalog.unnest(f.proargtypes::pg_catalog.oid[]) with ordinality t(typ, i);
    for a in
      select c.args from calls c where c.fn operator(pg_catalog.=) f.fn
      union all select coalesce(v_args, ''::pg_catalog.text)
    loop
      begin
        execute pg_catalog.format('select count(*) from %s(%s) x', f.fn, a.args);
        v_ok := v_ok operator(pg_catalog.+) 1;
      exception when others then
        get stacked diagnostics v_state = returned_sqlstate;
        raise notice 'fred-attack: % (%) failed with %', f.sig, a.args, v_state;
      end;
    end loop;
    v_called := v_called operator(pg_catalog.+) 1;
  end loop;
  raise warning 'fred-attack-summary: called % of % executable functions (% calls succeeded)', v_called, v_total, v_ok;
end
$calls$;
rollback;
