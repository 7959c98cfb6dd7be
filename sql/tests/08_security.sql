-- Security (issue 11): search_path order, PUBLIC, Supabase's advisor lints restated, room ownership,
-- and fred_get_session's caller-first lookup. The attack itself (types shadowed in pg_temp, every
-- executable function called by fred_syncd and by a role granted authenticated) is
-- sql/tests/roles/attack.sh, which logs in as those roles.
begin;
select plan(46);

-- Functions of ours: schema fred, the public.fred_* API, and (extension) every member of fred.
create temp view ours as
select p.oid, p.oid::regprocedure::text as sig, p.proconfig, p.prosecdef, p.pronamespace::regnamespace::text as nsp
  from pg_proc p
 where p.pronamespace = 'fred'::regnamespace
    or (p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%')
    or exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid and e.extname = 'fred'
                where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e');

-- 1. The search_path lint: true when a function's settings would let PostgreSQL search pg_temp
-- before pg_catalog. pg_temp is searched first unless it is named; pg_catalog is searched first
-- unless it is named; a named pg_catalog must come before a named pg_temp.
create function pg_temp.temp_before_catalog(p_config text[]) returns boolean
language sql immutable as $$
  with path as (
    select array(select lower(trim(both ' "' from e)) from unnest(string_to_array(substr(c, 13), ',')) e) as p
      from unnest(coalesce(p_config, '{}')) c where c like 'search_path=%')
  select coalesce((select not ('pg_temp' = any(p))
                          or coalesce(array_position(p, 'pg_catalog') > array_position(p, 'pg_temp'), false)
                     from path), true)
$$;
-- The lint itself can fail.
select ok(pg_temp.temp_before_catalog(null), 'lint: no search_path setting searches pg_temp first');
select ok(pg_temp.temp_before_catalog(array['search_path=""']), 'lint: search_path = '''' searches pg_temp first');
select ok(pg_temp.temp_before_catalog(array['search_path=pg_catalog']), 'lint: pg_catalog alone still searches pg_temp first');
select ok(pg_temp.temp_before_catalog(array['search_path=pg_temp, pg_catalog']), 'lint: pg_temp before pg_catalog');
select ok(pg_temp.temp_before_catalog(array['search_path=public, pg_temp, "pg_catalog"']), 'lint: pg_catalog named after pg_temp');
select ok(not pg_temp.temp_before_catalog(array['search_path=pg_catalog, pg_temp']), 'lint: pg_catalog, pg_temp passes');
select ok(not pg_temp.temp_before_catalog(array['work_mem=1MB', 'search_path=public, pg_temp']),
          'lint: an unnamed pg_catalog is searched first, so public, pg_temp passes');
-- ... and catches a function put back to search_path = ''.
create function fred.fred_test_bad_path() returns int language sql set search_path = '' as $$ select 1 $$;
select ok(exists (select 1 from ours where sig = 'fred.fred_test_bad_path()' and pg_temp.temp_before_catalog(proconfig)),
          'lint: a function of ours with search_path = '''' is caught');
drop function fred.fred_test_bad_path();

select is_empty($$ select sig from ours where pg_temp.temp_before_catalog(proconfig) $$,
                'no function of ours searches pg_temp before pg_catalog');
select is_empty($$ select sig from ours
                    where not exists (select 1 from unnest(coalesce(proconfig, '{}')) c
                                       where replace(c, '"', '') = 'search_path=pg_catalog, pg_temp') $$,
                'every function of ours has exactly search_path = pg_catalog, pg_temp');
select cmp_ok((select count(*)::int from ours), '>=', 35, 'the lint saw every function (both engines, the API, the jobs)');
select ok(exists (select 1 from ours where sig = 'fred.check_transcript(jsonb)'), 'the lint covers fred.check_transcript');
select ok(exists (select 1 from ours where sig = 'fred.coaching_sessions_guard()'), 'the lint covers the table''s trigger function');

-- 2. PUBLIC: a freshly created role can execute no function of ours, in fred or public.
create role fred_test_fresh nologin;
select is_empty($$ select sig from ours where has_function_privilege('fred_test_fresh', oid, 'execute') $$,
                'a fresh role can execute no function of ours');
select is_empty($$ select sig from ours o where exists (select 1 from aclexplode(
                     (select proacl from pg_proc where oid = o.oid)) a where a.grantee = 0) or
                   (select proacl is null from pg_proc where oid = o.oid) $$,
                'every function of ours has an explicit ACL without PUBLIC (a NULL ACL means PUBLIC may execute)');
select is_empty($$ select defaclrole::regrole::text from pg_default_acl
                    where defaclnamespace = 'fred'::regnamespace
                      and exists (select 1 from aclexplode(defaclacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE') $$,
                'no default privilege in fred grants EXECUTE to PUBLIC');
select ok(not has_schema_privilege('fred_test_fresh', 'fred', 'usage'), 'a fresh role has no usage on schema fred');

-- 3. Supabase's advisor (splinter), restated from each lint's definition, for fred's objects.
--    The exposed schemas are PostgREST's db-schemas (Supabase: public, graphql_public).
create temp view exposed as
select trim(s) as nsp
  from unnest(string_to_array(coalesce(nullif(current_setting('pgrst.db_schemas', true), ''), 'public, graphql_public'), ',')) s;
-- 0008 rls_enabled_no_policy (INFO): a table (not an extension member) with RLS on and no policy.
select is_empty($$
  select c.oid::regclass::text from pg_class c
   where c.relnamespace in ('fred'::regnamespace, 'public'::regnamespace) and c.relkind = 'r' and c.relrowsecurity
     and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
     and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
$$, 'lint 0008: every fred table with RLS has a policy (the deny-all tables say so explicitly)');
select is_empty($$
  select c.oid::regclass::text from pg_class c
   where c.relnamespace = 'fred'::regnamespace and c.relkind = 'r'
     and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
$$, 'every fred table has a policy in both installs');
-- 0011 function_search_path_mutable (WARN): no search_path in proconfig (the lint skips extension members; we do not).
select is_empty($$ select sig from ours where not exists (select 1 from unnest(coalesce(proconfig, '{}')) c where c like 'search_path=%') $$,
                'lint 0011: no function of ours has a mutable search_path');
-- 0013 rls_disabled_in_public (ERROR): a table in an exposed schema that anon or authenticated may select, without RLS.
select is_empty($$
  select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where c.relkind = 'r' and not c.relrowsecurity
     and (has_table_privilege('anon', c.oid, 'select') or has_table_privilege('authenticated', c.oid, 'select'))
     and n.nspname in (select nsp from exposed)
$$, 'lint 0013: no table in an exposed schema is readable by anon or authenticated without RLS');
-- 0028/0029 (WARN): a SECURITY DEFINER function in an exposed schema executable by anon / authenticated.
select is_empty($$ select sig from ours where prosecdef and nsp in (select nsp from exposed)
                      and has_function_privilege('anon', oid, 'execute') $$,
                'lint 0028: no SECURITY DEFINER function of ours in an exposed schema is executable by anon');
select is_empty($$ select sig from ours where prosecdef and nsp in (select nsp from exposed)
                      and has_function_privilege('authenticated', oid, 'execute') $$,
                'lint 0029: no SECURITY DEFINER function of ours in an exposed schema is executable by authenticated');
select is_empty($$ select sig from ours where nsp = 'public' and prosecdef $$,
                'the public API is SECURITY INVOKER wrappers');
select is_empty($$ select p.oid::regprocedure::text from pg_proc p
                    where p.pronamespace = 'fred'::regnamespace and p.prosecdef
                      and has_function_privilege('anon', p.oid, 'execute') $$,
                'anon may execute no SECURITY DEFINER function in fred either');

-- 4. Room ownership: a room name owned by a user stays theirs, whatever the status.
create temp table ids (k text primary key, id uuid);
insert into ids select 'a1', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "own-a"}')::uuid;
update fred.coaching_sessions set status = 'ended', ended_at = now(), created_at = now() - interval '1 hour' where id = (select id from ids where k = 'a1');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "own-a"}') $$,
                 '42501', null, 'B cannot create a session under A''s room name after A''s call ended');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_persist_transcript',
                      '{"room_name": "own-a", "transcript": [{"text": "mine", "speaker": "user"}]}') $$,
                 '42501', null, 'B cannot persist under A''s room name after A''s call ended');
select is((select count(*)::int from fred.coaching_sessions where room_name = 'own-a'), 1, 'B created nothing');
insert into ids select 'a2', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "own-a"}')::uuid;
select ok((select id from ids where k = 'a2') <> (select id from ids where k = 'a1'), 'A may start a new session of the name');
select is((select user_id from fred.coaching_sessions where id = (select id from ids where k = 'a2')),
          '00000000-0000-0000-0000-00000000000a'::uuid, 'the new session is A''s');
select is(fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
            '{"room_name": "own-a", "transcript": [{"text": "hi", "speaker": "user"}]}')::uuid,
          (select id from ids where k = 'a2'), 'A may write the newest session of the name');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "own-a"}') $$,
                 '42501', null, 'B still cannot take A''s active room');
select is(fred_test.rpc1('service_role', null, 'fred_persist_transcript',
            '{"room_name": "own-a", "transcript": [{"text": "server", "speaker": "coach"}]}')::uuid,
          (select id from ids where k = 'a2'), 'service_role''s persist for the room lands in A''s session');

-- A name nobody owns: its unowned sessions stay unclaimable; a user may take the free name first.
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_own_n1", "room": {"sid": "RM_own_n", "name": "own-n"}}');
select fred.apply_livekit_event('{"event": "room_finished", "id": "EV_own_n2", "room": {"sid": "RM_own_n", "name": "own-n"}}');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_persist_transcript',
                      '{"room_name": "own-n", "transcript": [{"text": "x", "speaker": "user"}]}') $$,
                 '42501', null, 'an unowned (ended) session cannot be written by a user');
insert into ids select 'n', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "own-n"}')::uuid;
select is((select user_id from fred.coaching_sessions where room_sid = 'RM_own_n'), null, 'the unowned session stays unowned');
select isnt((select id from ids where k = 'n'), (select id from fred.coaching_sessions where room_sid = 'RM_own_n'),
            'a user who takes a free name gets a new session of their own');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "own-n"}') $$,
                 '42501', null, 'after that, the name is A''s');

-- room_started whose metadata names an owner never binds another owner's session, both ways.
insert into ids select 'dir1', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000a', 'fred_upsert_session', '{"room_name": "own-dir"}')::uuid;
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_own_dir1", "room": {"sid": "RM_own_dir1", "name": "own-dir",
                                   "metadata": "{\"user_id\": \"00000000-0000-0000-0000-00000000000b\"}"}}');
select is((select (room_sid, user_id) from fred.coaching_sessions where id = (select id from ids where k = 'dir1')),
          row(null::text, '00000000-0000-0000-0000-00000000000a'::uuid), 'a room naming B does not bind A''s session');
select is((select user_id from fred.coaching_sessions where room_sid = 'RM_own_dir1'), '00000000-0000-0000-0000-00000000000b'::uuid,
          'it gets a session of its own, owned by B');
insert into ids select 'dir2', fred_test.rpc1('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "own-dir2"}')::uuid;
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_own_dir2", "room": {"sid": "RM_own_dir2", "name": "own-dir2",
                                   "metadata": "{\"user_id\": \"00000000-0000-0000-0000-00000000000a\"}"}}');
select is((select (room_sid, user_id) from fred.coaching_sessions where id = (select id from ids where k = 'dir2')),
          row(null::text, '00000000-0000-0000-0000-00000000000b'::uuid), 'a room naming A does not bind B''s session');
select is((select user_id from fred.coaching_sessions where room_sid = 'RM_own_dir2'), '00000000-0000-0000-0000-00000000000a'::uuid,
          'it gets a session of its own, owned by A');
select fred.apply_livekit_event('{"event": "room_started", "id": "EV_own_dir3", "room": {"sid": "RM_own_dir3", "name": "own-dir3",
                                   "metadata": "{\"user_id\": \"00000000-0000-0000-0000-00000000000a\"}"}}');
select throws_ok($$ select fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_upsert_session', '{"room_name": "own-dir3"}') $$,
                 '42501', null, 'a room the metadata gave to A is A''s for the API too');

-- 5. fred_get_session: the caller first, then one lookup. Someone else's id, a random id, and a
-- request without a user id all read the same.
select is(fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', (select id from ids where k = 'a2'))),
          fred_test.rpc('authenticated', '00000000-0000-0000-0000-00000000000b', 'fred_get_session',
            jsonb_build_object('session_id', gen_random_uuid())),
          'someone else''s session and a random id read the same');
select is(fred_test.rpc('authenticated', null, 'fred_get_session', jsonb_build_object('session_id', (select id from ids where k = 'a2'))) -> 0 ->> 'id',
          null, 'a request without a user id reads NULL');
select is(fred_test.rpc('authenticated', null, 'fred_list_sessions', '{}'), null, 'and lists nothing');
select alike((select prosrc from pg_proc where oid = 'fred.get_session(uuid)'::regprocedure),
            '%if fred.caller_is_user() then%v_uid := fred.current_uid();%from fred.coaching_sessions%',
            'fred.get_session checks the caller before it touches the table');

select * from finish();
rollback;
