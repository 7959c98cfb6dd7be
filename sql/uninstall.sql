-- Removes fred from this database, on either install: every session, transcript, event-ledger
-- row and job run; every fred function, table, policy and trigger, including what fred added to
-- tables it does not own (storage.objects, realtime.messages, auth.users); and the role fred_syncd
-- when no other database of the cluster still uses it. Recordings in the bucket are NOT deleted:
-- empty the bucket first (Supabase dashboard or `aws s3 rm --recursive`) if they must go too.
--
-- Run as the role that installed fred: a superuser for the extension, the project's owner
-- (`postgres` on hosted Supabase) for the SQL install. Idempotent. Objects of yours that depend on
-- fred's tables (a view, say) make the extension's DROP fail instead of vanishing with it.
do $uninstall$
declare
  r record;
begin
  if pg_catalog.to_regnamespace('fred') is not null then
    -- 1. What fred put on other schemas' tables: policies and triggers that use fred's functions,
    --    or that carry fred's name.
    for r in
      select distinct pol.polname as name, pol.polrelid::regclass as rel
        from pg_catalog.pg_policy pol
        join pg_catalog.pg_class c on c.oid = pol.polrelid
       where c.relnamespace <> 'fred'::regnamespace
         and (pol.polname like 'fred%'
              or exists (select 1 from pg_catalog.pg_depend d join pg_catalog.pg_proc p on p.oid = d.refobjid
                          where d.classid = 'pg_catalog.pg_policy'::regclass and d.objid = pol.oid
                            and d.refclassid = 'pg_catalog.pg_proc'::regclass and p.pronamespace = 'fred'::regnamespace))
    loop
      begin
        execute pg_catalog.format('drop policy %I on %s', r.name, r.rel);
        raise notice 'fred: dropped policy % on %', r.name, r.rel;
      exception when insufficient_privilege then
        -- Not the table's owner (hosted Supabase): a policy that uses fred's functions goes with
        -- them below; any other must be dropped from the dashboard.
        raise warning 'fred: this role may not drop policy % on % (%); if it remains, run DROP POLICY % ON % from the dashboard''s SQL editor',
          r.name, r.rel, sqlerrm, pg_catalog.quote_ident(r.name), r.rel;
      end;
    end loop;
    for r in
      select t.tgname as name, t.tgrelid::regclass as rel
        from pg_catalog.pg_trigger t
        join pg_catalog.pg_class c on c.oid = t.tgrelid
        join pg_catalog.pg_proc p on p.oid = t.tgfoid
       where not t.tgisinternal and c.relnamespace <> 'fred'::regnamespace
         and (p.pronamespace = 'fred'::regnamespace or t.tgname like 'fred%')
    loop
      begin
        execute pg_catalog.format('drop trigger %I on %s', r.name, r.rel);
        raise notice 'fred: dropped trigger % on %', r.name, r.rel;
      exception when insufficient_privilege then
        -- Not the table's owner: the trigger goes with fred's function it calls, below.
        raise notice 'fred: trigger % on % goes with fred''s functions (this role does not own %)', r.name, r.rel, r.rel;
      end;
    end loop;

    -- 2. fred itself, with its data.
    if exists (select 1 from pg_catalog.pg_extension where extname = 'fred') then
      drop extension fred;
      raise notice 'fred: dropped extension fred';
    end if;
    for r in
      select p.oid::regprocedure as fn from pg_catalog.pg_proc p
       where p.pronamespace = 'public'::regnamespace and p.proname like 'fred\_%'
    loop
      execute pg_catalog.format('drop function %s', r.fn);
    end loop;
    if pg_catalog.to_regnamespace('fred') is not null then
      drop schema fred cascade;
      raise notice 'fred: dropped schema fred and everything in it';
    end if;
  end if;

  -- 3. The daemon's role, unless another database still uses it.
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'fred_syncd') then
    begin
      drop role fred_syncd;
      raise notice 'fred: dropped role fred_syncd';
    exception when dependent_objects_still_exist then
      raise warning 'fred: role fred_syncd is still used in another database of this cluster (%); uninstall fred there, then run DROP ROLE fred_syncd', sqlerrm;
    when insufficient_privilege then
      raise warning 'fred: this role may not drop fred_syncd (%); a role with CREATEROLE can: DROP ROLE fred_syncd', sqlerrm;
    end;
  end if;
end
$uninstall$;
