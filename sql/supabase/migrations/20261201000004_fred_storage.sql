-- fred 0.2.0 on Supabase Storage: the recordings policy, for both installs, as a plain migration.
-- A signed-in user may read exactly the recording objects of their own sessions, so supabase-js
-- `createSignedUrl(bucket, key)` works for the owner and nobody else.
--
-- It only creates (or replaces) its policy: no ALTER TABLE, no COMMENT. On hosted Supabase
-- storage.objects belongs to supabase_storage_admin, and the migrating role may not be allowed
-- to create a policy on it. Then this file does not fail the migration set: it raises a WARNING
-- that says how to add the policy from the dashboard. (20261124000003_fred_storage.sql fails
-- there with 42501; mark it applied without running it:
--   supabase migration repair --status applied 20261124000003
-- and this file creates the same policy.)
do $storage$
declare
  v_policy constant text := 'create policy fred_recordings_owner_read on storage.objects for select to authenticated '
                            'using ((select fred.owns_recording(bucket_id, name)))';
begin
  if pg_catalog.to_regclass('storage.objects') is null then
    raise notice 'fred: storage.objects does not exist; the recordings policy was not created';
    return;
  end if;
  begin
    execute 'drop policy if exists fred_recordings_owner_read on storage.objects';
    execute v_policy;
  exception when insufficient_privilege then
    raise warning '%', 'fred: this role may not create a policy on storage.objects, so the recordings policy was not '
                       'created and users cannot create signed URLs for their own recordings. Add it from the '
                       'Supabase dashboard: open the SQL Editor and run: '
                       'drop policy if exists fred_recordings_owner_read on storage.objects; ' || v_policy || ';';
  end;
end
$storage$;
