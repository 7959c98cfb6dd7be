-- Supabase's default privileges: every new function and table in public is granted to the
-- API roles. Run as the role that installs fred, so the install must revoke them itself.
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
