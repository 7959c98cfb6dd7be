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
