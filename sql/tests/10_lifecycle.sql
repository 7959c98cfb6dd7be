-- The system of record: the version both installs report, and backups that keep every table.
begin;
select plan(6);

select is(fred.version(), '0.2.0', 'fred.version() names the installed release');
select is((select extversion from pg_extension where extname = 'fred'),
          case when fred_test.is_extension() then fred.version() end,
          'the extension''s own version agrees with fred.version() (no extension row in the SQL install)');
select ok(has_function_privilege('fred_syncd', 'fred.version()', 'execute'), 'syncd may read the version');
select ok(not has_function_privilege('anon', 'fred.version()', 'execute'), 'anon may not');

-- Every table and sequence that belongs to the extension is marked for pg_dump, so a backup
-- keeps its rows. (The SQL install's tables are ordinary tables, which pg_dump always keeps.)
select is(array(select c.oid::regclass::text
                  from pg_depend d
                  join pg_extension e on e.oid = d.refobjid and e.extname = 'fred'
                  join pg_class c on c.oid = d.objid and d.classid = 'pg_class'::regclass
                 where d.deptype = 'e' and c.relkind in ('r', 'p', 'S')
                   and not c.oid = any (coalesce(e.extconfig, '{}'))
                 order by 1),
          '{}'::text[], 'no table or sequence of the extension is left out of pg_dump');
select is(array(select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'fred' and c.relkind in ('r', 'p')
                   and fred_test.is_extension()
                   and not exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid
                                    where e.extname = 'fred' and d.objid = c.oid and d.deptype = 'e')
                 order by 1),
          '{}'::text[], 'in the extension install, every table in fred belongs to the extension');

select * from finish();
rollback;
