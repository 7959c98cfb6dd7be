-- fred 0.2.0: engine additions, SQL install only (the extension has them in Rust).
--
-- fred.transcript_digest(jsonb): the digest kept on the row next to the transcript
-- (transcript_digest, see 20261201000009_fred_speed.sql), so an identical repeat of a persist is
-- found without reading the stored transcript. Here SHA-256 of the jsonb's text form; the
-- extension hashes the binary form. A digest is only ever compared with one made by the same
-- install (a restore into the other install recomputes it: the table's trigger sets it on every
-- write of the transcript).
create or replace function fred.transcript_digest(transcript jsonb) returns bytea
language plpgsql immutable strict parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  return pg_catalog.sha256(pg_catalog.convert_to(transcript::text, 'UTF8'));
end
$$;

revoke all on function fred.transcript_digest(jsonb) from public;
do $grants$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    revoke all on function fred.transcript_digest(jsonb) from anon;
  end if;
end
$grants$;

-- fred.apply_event_batch(jsonb): fred.apply_livekit_events's fast path (see
-- 20261201000009_fred_speed.sql), each event's outcome in order. Here one event at a time; the
-- extension applies a batch in a few statements with the same results and rows.
create or replace function fred.apply_event_batch(events jsonb) returns text[]
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event   jsonb;
  v_results text[] := '{}';
begin
  if events is null or pg_catalog.jsonb_typeof(events) <> 'array' then
    raise exception 'fred: events must be a JSON array' using errcode = '22023';
  end if;
  for v_event in select e from pg_catalog.jsonb_array_elements(events) e loop
    v_results := v_results || fred.apply_one_event(v_event);
  end loop;
  return v_results;
end
$$;
