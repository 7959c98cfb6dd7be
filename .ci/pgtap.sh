#!/usr/bin/env bash
# Runs the shared pgTAP suite (sql/tests/*.sql) against both installs on the local PostgreSQL 15:
#   fred_test_ext: CREATE EXTENSION fred (as a superuser, as on self-hosted Postgres);
#   fred_test_sql: the migration files, applied by a role that is not a superuser (as on hosted Supabase).
# Both databases carry Supabase's roles and its default privileges, the worst case for grants.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)

"${PSQL[@]}" -d postgres <<'SQL'
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_owner') then
    create role fred_owner login createrole password 'fred_owner';
  end if;
  -- As on hosted Supabase, storage.objects belongs to supabase_storage_admin (the fixture).
  -- Here the migrating role may act as it, so it may create the recordings policy;
  -- sql/tests/roles/hosted_storage.sh checks a role that may not.
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit;
  end if;
end $$;
grant supabase_storage_admin to fred_owner;
drop database if exists fred_test_ext with (force);
drop database if exists fred_test_sql with (force);
create database fred_test_ext;
create database fred_test_sql owner fred_owner;
SQL

# The compiled extension.
# Supabase Realtime (optional fixture: sql/tests/12_events.sql also takes it away to test plain Postgres).
"${PSQL[@]}" -d fred_test_ext -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql -f sql/tests/setup/supabase_defaults.sql
"${PSQL[@]}" -d fred_test_ext -c 'create extension fred' -c 'create extension pgtap'
# The storage policy ships as migrations for both installs.
"${PSQL[@]}" -d fred_test_ext $(printf -- '-f %s ' sql/supabase/migrations/*_fred_storage.sql)
"${PSQL[@]}" -d fred_test_ext -f sql/tests/setup/helpers.sql

# The pure-SQL install, as a non-superuser owner.
"${PSQL[@]}" -d fred_test_sql -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql
PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner -d fred_test_sql \
  -f sql/tests/setup/supabase_defaults.sql $(printf -- '-f %s ' sql/supabase/migrations/*.sql)
"${PSQL[@]}" -d fred_test_sql -c 'create extension pgtap'
"${PSQL[@]}" -d fred_test_sql -f sql/tests/setup/helpers.sql

for db in fred_test_ext fred_test_sql; do
  echo "== pgTAP suite against $db"
  pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d "$db" sql/tests/*.sql
done

# Storage on hosted Supabase: a migrating role that may not create the policy (the WARNING path).
bash sql/tests/roles/hosted_storage.sh fred_test_hosted
# Realtime and auth.users on hosted Supabase when the migrating role may not touch them, and a
# database without either (the WARNING and NOTICE paths).
bash sql/tests/roles/hosted_platform.sh fred_test_platform
# NOTIFY fred_sessions, received by a second session, on both installs.
for db in fred_test_ext fred_test_sql; do
  bash sql/tests/roles/listen.sh "$db"
done
# Attacks by the project's own roles: types shadowed in pg_temp, every executable function called.
for db in fred_test_ext fred_test_sql; do
  bash sql/tests/roles/attack.sh "$db"
done
