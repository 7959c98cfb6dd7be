-- Test helpers shared by both installs. Run as a superuser after the install and pgTAP.
create schema fred_test;
\ir call_events.sql

-- True in the database that has the compiled extension.
create function fred_test.is_extension() returns boolean
language sql stable as $$ select exists (select 1 from pg_extension where extname = 'fred') $$;

-- One PostgREST request: role switch from authenticator, JWT claims, then the call with named
-- arguments from a JSON body, the way PostgREST builds it. Returns the rows as a jsonb array.
create function fred_test.rpc(p_role text, p_sub text, p_fn text, p_body jsonb default '{}')
returns jsonb
language plpgsql as $$
declare
  v_cols text;
  v_args text;
  v_path text := current_setting('search_path');
  r jsonb;
begin
  select string_agg(format('%I %s', a.n, format_type(a.t, null)), ', ' order by a.i),
         string_agg(format('%I := pgrst_body.%I', a.n, a.n), ', ' order by a.i)
    into v_cols, v_args
    from pg_proc p,
         unnest(p.proargnames, p.proargtypes::oid[]) with ordinality a(n, t, i)
   where p.oid = to_regproc('public.' || p_fn) and p_body ? a.n;
  perform set_config('role', 'authenticator', true);
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims',
    (case when p_sub is null then jsonb_build_object('role', p_role)
          else jsonb_build_object('sub', p_sub, 'role', p_role) end)::text, true);
  perform set_config('search_path', 'public, extensions', true);
  execute format('select jsonb_agg(to_jsonb(pgrst_call)) from json_to_record($1) as pgrst_body(%s), lateral public.%I(%s) pgrst_call',
                 coalesce(v_cols, 'pgrst_unused int'), p_fn, coalesce(v_args, ''))
     into r using p_body::json;
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
  perform set_config('search_path', v_path, true);
  return r;
end
$$;

-- The scalar a function returned through fred_test.rpc, as text. (For a function that returns a
-- scalar, `to_jsonb(pgrst_call)` is the value itself, not an object, as in PostgREST's own query.)
create function fred_test.rpc1(p_role text, p_sub text, p_fn text, p_body jsonb default '{}')
returns text
language sql as $$ select fred_test.rpc(p_role, p_sub, p_fn, p_body) ->> 0 $$;

-- A session row without its identity and bookkeeping, for comparing outcomes.
create function fred_test.outcome(p_id uuid) returns jsonb
language sql stable as $$
  select to_jsonb(s) - array['id', 'room_sid', 'created_at', 'updated_at']
    from fred.coaching_sessions s where s.id = p_id
$$;

-- An event of the sample call, moved to a room and event ids of its own.
create function fred_test.retag(p_body jsonb, p_tag text) returns jsonb
language sql immutable as $$
  select jsonb_set(
           replace(replace(p_body::text, 'RM_demo000000001', 'RM_' || p_tag),
                   'coaching-demo-1', 'room-' || p_tag)::jsonb,
           '{id}', to_jsonb((p_body ->> 'id') || '_' || p_tag))
$$;

-- The session the sample call (retagged) produced.
create function fred_test.session_of(p_tag text) returns uuid
language sql stable as $$ select id from fred.coaching_sessions where room_sid = 'RM_' || p_tag $$;

create function fred_test.sqlstate(p_sql text) returns text
language plpgsql as $$
begin
  execute p_sql;
  return 'ok';
exception when others then
  return sqlstate;
end
$$;

-- Rows a statement returns when run as a request role with JWT claims (then the role is reset).
create function fred_test.query_as(p_role text, p_sub text, p_sql text) returns jsonb
language plpgsql as $$
declare
  r jsonb;
begin
  perform set_config('role', 'authenticator', true);
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims',
    (case when p_sub is null then jsonb_build_object('role', p_role)
          else jsonb_build_object('sub', p_sub, 'role', p_role) end)::text, true);
  execute format('select coalesce(jsonb_agg(to_jsonb(q)), ''[]'') from (%s) q', p_sql) into r;
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
  return r;
end
$$;
