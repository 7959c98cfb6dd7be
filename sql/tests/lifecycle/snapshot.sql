-- Every row of every table in schema fred, for the upgrade and backup tests. Needs helpers.sql.
create or replace function fred_test.table_rows() returns table (tab text, row_data jsonb)
language plpgsql stable as $$
declare
  r record;
begin
  for r in select c.oid::regclass as rel, c.relname
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'fred' and c.relkind in ('r', 'p')
            order by c.relname
  loop
    return query execute format('select %L::text, to_jsonb(t) from %s t', r.relname, r.rel);
  end loop;
end
$$;

-- The rows of an earlier snapshot that are gone or changed now, compared on the snapshot's own
-- columns (a release may add columns; it never changes the old ones).
create or replace function fred_test.rows_changed_since(p_snapshot regclass) returns setof text
language plpgsql stable as $$
begin
  return query execute format($q$
    select s.tab || ' ' || s.row_data::text
      from %s s
     where not exists (
       select 1 from fred_test.table_rows() c
        where c.tab = s.tab
          and (select jsonb_object_agg(k, c.row_data -> k) from jsonb_object_keys(s.row_data) k) = s.row_data)
    union all
    select 'count ' || coalesce(a.tab, b.tab) || ': ' || coalesce(a.n, 0) || ' then, ' || coalesce(b.n, 0) || ' now'
      from (select tab, count(*) n from %s group by tab) a
      full join (select tab, count(*) n from fred_test.table_rows() group by tab) b on a.tab = b.tab
     where a.n is distinct from b.n and a.tab is not null$q$, p_snapshot, p_snapshot);
end
$$;
