-- Playback for owners: the storage.objects policy lets a user read only their own recordings.
begin;
select plan(7);

select policies_are('storage'::name, 'objects'::name, array['fred_recordings_owner_read']::name[],
                    'the recordings policy is on storage.objects');
select is((select relowner::regrole::text from pg_class where oid = 'storage.objects'::regclass), 'supabase_storage_admin',
          'storage.objects belongs to supabase_storage_admin, as on hosted Supabase (not to the migrating role)');
insert into storage.objects (bucket_id, name) values
  ('voice-recordings', 'room-a/1.ogg'), ('voice-recordings', 'room-b/2.ogg'), ('voice-recordings', 'room-n/3.ogg'),
  ('other-bucket', 'room-a/1.ogg');
insert into fred.coaching_sessions (room_name, user_id, recording_bucket, recording_key, recording_status) values
  ('storage-a', '00000000-0000-0000-0000-00000000000a', 'voice-recordings', 'room-a/1.ogg', 'ready'),
  ('storage-b', '00000000-0000-0000-0000-00000000000b', 'voice-recordings', 'room-b/2.ogg', 'ready'),
  ('storage-n', null, 'voice-recordings', 'room-n/3.ogg', 'ready');

select is(fred_test.query_as('authenticated', '00000000-0000-0000-0000-00000000000a',
            'select bucket_id, name from storage.objects order by bucket_id, name'),
          '[{"name": "room-a/1.ogg", "bucket_id": "voice-recordings"}]'::jsonb,
          'the owner sees exactly their recording (same key in another bucket excluded)');
select is(fred_test.query_as('authenticated', '00000000-0000-0000-0000-00000000000b',
            'select name from storage.objects order by name'),
          '[{"name": "room-b/2.ogg"}]'::jsonb, 'another user sees only their own');
select is(fred_test.query_as('authenticated', '00000000-0000-0000-0000-00000000000c',
            'select name from storage.objects'), '[]'::jsonb, 'a user without sessions sees nothing, unowned recordings included');
select is(fred_test.query_as('anon', null, 'select name from storage.objects'), '[]'::jsonb, 'anon sees nothing');
select is(fred_test.query_as('authenticated', null, 'select name from storage.objects'), '[]'::jsonb,
          'a request without a user id sees nothing');

select * from finish();
rollback;
