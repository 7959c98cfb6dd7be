-- fred on Supabase Storage: a signed-in user may read exactly the recording objects of their
-- own sessions, so supabase-js `createSignedUrl(bucket, key)` works for the owner and nobody
-- else. Apply after the core (either install). Skipped where there is no storage.objects.
do $storage$
begin
  if pg_catalog.to_regclass('storage.objects') is null then
    raise notice 'fred: storage.objects does not exist; the recordings policy was not created';
    return;
  end if;
  if exists (select 1 from pg_catalog.pg_policies
              where schemaname = 'storage' and tablename = 'objects' and policyname = 'fred_recordings_owner_read') then
    execute 'drop policy fred_recordings_owner_read on storage.objects';
  end if;
  execute 'create policy fred_recordings_owner_read on storage.objects for select to authenticated
           using ((select fred.owns_recording(bucket_id, name)))';
end
$storage$;
