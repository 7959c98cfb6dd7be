-- fred 0.2.0: the system of record (shared by both installs, like *_fred_core.sql).
--
-- Released migration files are never edited: each release adds new files. Files named
-- *_fred_engine.sql belong to the SQL install only; *_fred_storage.sql is applied to both installs
-- as a plain migration; every other file is also part of the extension (CREATE EXTENSION includes it,
-- and fred--OLD--NEW.sql is built from the release's files by extension/build-upgrade.sh).

-- What is installed: the same answer on both installs.
create or replace function fred.version() returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select '0.2.0'::text $$;
revoke all on function fred.version() from public;
do $version_grants$
declare
  v_role text;
begin
  foreach v_role in array array['fred_syncd', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('grant execute on function fred.version() to %I', v_role);
    end if;
  end loop;
end
$version_grants$;

-- Backups: in the extension, fred's tables belong to the extension, and pg_dump writes only
-- CREATE EXTENSION for them unless they are marked. This marks every table (and any standalone
-- sequence) of the extension so that pg_dump and pg_restore keep every row; every release file
-- that adds a table calls it again at its end. The SQL install's tables are ordinary tables, which
-- pg_dump always dumps: there (no extension row) it does nothing. pg_extension_config_dump works
-- only inside CREATE/ALTER EXTENSION, which is the only place fred calls this from.
create or replace function fred.mark_tables_for_dump() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_rel regclass;
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'fred') then
    return;
  end if;
  for v_rel in
    select c.oid::regclass
      from pg_catalog.pg_class c
      join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
      join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'fred'
     where c.relkind in ('r', 'S', 'p')
     order by c.oid
  loop
    perform pg_catalog.pg_extension_config_dump(v_rel, '');
  end loop;
end
$$;
revoke all on function fred.mark_tables_for_dump() from public;
select fred.mark_tables_for_dump();
