-- fred 0.2.0 on the platform's tables (issue 14), for both installs, as a plain migration (like
-- 20261201000004_fred_storage.sql): run it again after restoring a dump that left out the
-- platform's schemas.
--   1. realtime.messages: a signed-in user may receive exactly their own private topic,
--      fred:user:<their user id>, where fred's change events go (20261201000005_fred_events.sql).
--   2. auth.users: deleting a user erases their sessions, as fred_delete_session does.
-- Each part only creates its own object. Where the table does not exist, a NOTICE says so; where
-- the migrating role may not create the object (realtime.messages and auth.users belong to the
-- platform's roles), a WARNING gives the SQL to run from the dashboard, and the migration goes on.

do $realtime$
declare
  v_policy constant text :=
    'create policy fred_user_topic_receive on realtime.messages for select to authenticated '
    'using (realtime.messages.extension = ''broadcast'' '
    'and realtime.messages.topic = (select realtime.topic()) '
    'and (select realtime.topic()) = ''fred:user:'' || (select auth.uid())::text)';
begin
  if pg_catalog.to_regclass('realtime.messages') is null then
    raise notice 'fred: realtime.messages does not exist (no Supabase Realtime); the session events go to NOTIFY fred_sessions only';
    return;
  end if;
  begin
    execute 'drop policy if exists fred_user_topic_receive on realtime.messages';
    execute v_policy;
  exception when insufficient_privilege or undefined_function or undefined_object then
    raise warning '%', 'fred: this role may not create a policy on realtime.messages (' || sqlerrm || '), so users '
                       'cannot receive their session events over Realtime. Add it from the Supabase dashboard: '
                       'open the SQL Editor and run: '
                       'drop policy if exists fred_user_topic_receive on realtime.messages; ' || v_policy || ';';
  end;
end
$realtime$;

do $auth$
declare
  v_trigger constant text :=
    'create trigger fred_erase_user_sessions after delete on auth.users '
    'for each row execute function fred.auth_user_deleted()';
begin
  if pg_catalog.to_regclass('auth.users') is null then
    raise notice 'fred: auth.users does not exist; erase a user''s sessions with fred_delete_session';
    return;
  end if;
  if exists (select 1 from pg_catalog.pg_trigger t
              where t.tgrelid = 'auth.users'::regclass and t.tgname = 'fred_erase_user_sessions'
                and t.tgfoid = 'fred.auth_user_deleted()'::regprocedure) then
    return;
  end if;
  begin
    execute v_trigger;
  exception when insufficient_privilege then
    raise warning '%', 'fred: this role may not create a trigger on auth.users (' || sqlerrm || '), so deleting a '
                       'user does not erase their sessions. Add it from the Supabase dashboard: open the SQL Editor '
                       'and run: ' || v_trigger || ';';
  end;
end
$auth$;
