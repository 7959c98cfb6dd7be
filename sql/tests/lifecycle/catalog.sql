-- fred's objects as catalog rows, one line each, sorted: an upgraded database must print exactly
-- what a fresh install of the same version prints. (pg_dump --schema-only would not do: it leaves
-- out the objects that belong to an extension.) Run with psql -At.
with fred_fn as (
  select p.oid
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'fred' or (n.nspname = 'public' and p.proname like 'fred\_%')
      or exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid
                  where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e' and e.extname = 'fred')
),
fred_rel as (
  select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'fred'
)
select line from (
  -- Functions: definition (body, language, volatility, security, settings), owner and grants.
  select format('function %s | owner %s | acl %s | def %s', p.oid::regprocedure, pg_get_userbyid(p.proowner),
                (select coalesce(string_agg(a::text, ',' order by a::text), '-') from unnest(p.proacl) a),
                pg_get_functiondef(p.oid)) as line
    from fred_fn f join pg_proc p on p.oid = f.oid
  union all
  -- Relations: kind, owner, RLS, options, grants.
  select format('relation %s | kind %s | owner %s | rls %s/%s | options %s | acl %s', c.oid::regclass, c.relkind,
                pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity, coalesce(c.reloptions::text, '-'),
                (select coalesce(string_agg(a::text, ',' order by a::text), '-') from unnest(c.relacl) a))
    from fred_rel r join pg_class c on c.oid = r.oid
  union all
  -- Columns, in order, with type, default, nullability, generation, identity, compression, grants.
  select format('column %s.%s #%s | %s | notnull %s | default %s | generated %s | identity %s | compression %s | acl %s',
                a.attrelid::regclass, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), a.attgenerated, a.attidentity, a.attcompression,
                (select coalesce(string_agg(x::text, ',' order by x::text), '-') from unnest(a.attacl) x))
    from fred_rel r join pg_attribute a on a.attrelid = r.oid
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
   where a.attnum > 0 and not a.attisdropped
  union all
  select format('constraint %s.%s | %s', con.conrelid::regclass, con.conname, pg_get_constraintdef(con.oid))
    from pg_constraint con join pg_namespace n on n.oid = con.connamespace where n.nspname = 'fred'
  union all
  select format('index %s', pg_get_indexdef(i.indexrelid))
    from pg_index i join fred_rel r on r.oid = i.indrelid
  union all
  select format('trigger %s', pg_get_triggerdef(t.oid))
    from pg_trigger t join fred_rel r on r.oid = t.tgrelid where not t.tgisinternal
  union all
  -- Policies on fred's tables and fred's policies elsewhere (storage.objects, realtime.messages).
  select format('policy %s.%s %s | %s | %s | roles %s | using %s | check %s', pol.schemaname, pol.tablename, pol.policyname,
                pol.permissive, pol.cmd, pol.roles, coalesce(pol.qual, '-'), coalesce(pol.with_check, '-'))
    from pg_policies pol where pol.schemaname = 'fred' or pol.policyname like 'fred%'
  union all
  select format('schema %s | owner %s | acl %s', n.nspname, pg_get_userbyid(n.nspowner),
                (select coalesce(string_agg(a::text, ',' order by a::text), '-') from unnest(n.nspacl) a))
    from pg_namespace n where n.nspname = 'fred'
  union all
  select format('default acl %s in %s for %s | %s', pg_get_userbyid(da.defaclrole), coalesce(da.defaclnamespace::regnamespace::text, '-'),
                da.defaclobjtype, (select coalesce(string_agg(a::text, ',' order by a::text), '-') from unnest(da.defaclacl) a))
    from pg_default_acl da where da.defaclnamespace = 'fred'::regnamespace
  union all
  select format('type %s | %s', t.oid::regtype, t.typtype)
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
   where n.nspname = 'fred' and t.typtype in ('d', 'e', 'r', 'm') or (n.nspname = 'fred' and t.typtype = 'c' and t.typrelid = 0)
  union all
  -- The extension: its version, its members and the tables pg_dump keeps.
  select format('extension %s %s | config %s', e.extname, e.extversion,
                (select coalesce(string_agg(format('%s where [%s]', c::regclass, coalesce(e.extcondition[i], '')), ', ' order by c::regclass::text), '-')
                   from unnest(e.extconfig) with ordinality u(c, i)))
    from pg_extension e where e.extname = 'fred'
  union all
  select format('member %s', pg_describe_object(d.classid, d.objid, d.objsubid))
    from pg_depend d join pg_extension e on e.oid = d.refobjid
   where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e' and e.extname = 'fred'
  union all
  select format('role %s | login %s | super %s | bypassrls %s | createrole %s', r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls, r.rolcreaterole)
    from pg_roles r where r.rolname like 'fred\_%' and r.rolname <> 'fred_owner'
) lines
order by line;
