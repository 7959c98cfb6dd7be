#!/usr/bin/env bash
# Uninstall (sql/uninstall.sql), on both installs, in a throw-away PostgreSQL 15 cluster of its own
# (so that the role fred_syncd is used by no other database): after a call's data is in, the
# script leaves no fred table, function, policy, trigger or role, leaves the platform's tables
# (auth, storage, realtime) in place, and a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
D=$(mktemp -d "${TMPDIR:-/tmp}/fred-uninstall.XXXXXX")
if [ "$(id -u)" = 0 ]; then as_server() { runuser -u postgres -- "$@" </dev/null; }; chown postgres: "$D"; else as_server() { "$@" </dev/null; }; fi
cleanup() {
  rc=$?
  [ -f "$D/data/postmaster.pid" ] && as_server "$BIN/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1 || true
  [ $rc -ne 0 ] && [ -f "$D/log" ] && tail -n 20 "$D/log" >&2
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
as_server mkdir "$D/data" "$D/sock"
as_server "$BIN/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
as_server "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 60 -o "-p 54399 -k $D/sock -c listen_addresses= -c fsync=off" start >/dev/null
export PGHOST=$D/sock PGPORT=54399
unset PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
OWNER_PSQL=(env PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner)
"${PSQL[@]}" -d postgres -c "create role fred_owner login createrole password 'fred_owner'"

fixtures() { # db: Supabase's roles, auth, storage and (when the fixture exists) realtime
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/supabase_roles.sql >/dev/null 2>&1
  for f in sql/tests/setup/supabase_realtime.sql; do [ -f "$f" ] && "${PSQL[@]}" -d "$1" -f "$f" >/dev/null 2>&1; done
  return 0
}
leftovers() { # db: every fred object still there, one line each
  "${PSQL[@]}" -At -d "$1" <<'SQL'
select 'schema ' || nspname from pg_namespace where nspname = 'fred'
union all select 'extension ' || extname from pg_extension where extname = 'fred'
union all select 'function ' || p.oid::regprocedure from pg_proc p where p.proname like 'fred\_%' or p.pronamespace::regnamespace::text = 'fred'
union all select 'policy ' || polname || ' on ' || polrelid::regclass from pg_policy where polname like 'fred%'
union all select 'trigger ' || tgname || ' on ' || tgrelid::regclass from pg_trigger t join pg_proc p on p.oid = t.tgfoid
           where not tgisinternal and (tgname like 'fred%' or p.proname like 'fred%')
union all select 'role ' || rolname from pg_roles where rolname = 'fred_syncd'
union all select 'type ' || t.oid::regtype from pg_type t where t.typname like 'fred\_%' or t.typname = 'coaching_sessions'
SQL
}
check_gone() { # db what
  local left; left=$(leftovers "$1")
  if [ -n "$left" ]; then echo "uninstall: $2: left behind:" >&2; echo "$left" >&2; exit 1; fi
  local kept; kept=$("${PSQL[@]}" -At -d "$1" -c "select count(*) from pg_class where oid in (to_regclass('storage.objects'), to_regclass('auth.users'))")
  [ "$kept" -ge 1 ] || { echo "uninstall: $2: the platform's tables went too" >&2; exit 1; }
  echo "uninstall: $2: nothing of fred is left; the platform's tables are kept"
}
fill() { "${PSQL[@]}" -d "$1" -f sql/tests/setup/helpers.sql >/dev/null
         "${PSQL[@]}" -d "$1" -c "select count(fred.apply_livekit_event(body)) from fred_test.call_events" >/dev/null
         "${PSQL[@]}" -d "$1" -c "drop schema fred_test cascade" >/dev/null; }

# The extension, as a superuser.
"${PSQL[@]}" -d postgres -c 'create database fred_un_ext'
fixtures fred_un_ext
"${PSQL[@]}" -d fred_un_ext -c 'create extension fred' >/dev/null
for f in $(awk '!/^#/ && NF > 2 { for (i = 3; i <= NF; i++) print $i }' sql/releases | grep '_fred_storage\.sql$'); do
  "${PSQL[@]}" -d fred_un_ext -f "sql/supabase/migrations/$f" >/dev/null 2>&1
done
fill fred_un_ext
[ -n "$(leftovers fred_un_ext)" ] || { echo "uninstall: the extension install left nothing to remove: the check cannot fail" >&2; exit 1; }
"${PSQL[@]}" -d fred_un_ext -f sql/uninstall.sql
check_gone fred_un_ext "extension install"
"${PSQL[@]}" -d fred_un_ext -f sql/uninstall.sql
check_gone fred_un_ext "extension install, second run"

# The SQL install, as its non-superuser owner (hosted Supabase's postgres).
"${PSQL[@]}" -d postgres -c 'create database fred_un_sql owner fred_owner'
fixtures fred_un_sql
args=(-f sql/tests/setup/supabase_defaults.sql)
for f in $(awk '!/^#/ && NF > 2 { for (i = 3; i <= NF; i++) print $i }' sql/releases); do args+=(-f "sql/supabase/migrations/$f"); done
"${OWNER_PSQL[@]}" -d fred_un_sql "${args[@]}" >/dev/null 2>&1
fill fred_un_sql
[ -n "$(leftovers fred_un_sql)" ] || { echo "uninstall: the SQL install left nothing to remove: the check cannot fail" >&2; exit 1; }
"${OWNER_PSQL[@]}" -d fred_un_sql -f sql/uninstall.sql
check_gone fred_un_sql "SQL install"
"${OWNER_PSQL[@]}" -d fred_un_sql -f sql/uninstall.sql
check_gone fred_un_sql "SQL install, second run"
echo "uninstall: ok"
