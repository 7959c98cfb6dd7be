#!/usr/bin/env bash
# fred as a system of record, on the local PostgreSQL 15 (run after .ci/install-extension.sh):
#   1. upgrade: the previous release of each install, filled with a realistic history, upgraded to
#      this checkout; no row lost or changed, the catalog equal to a fresh install, the suite green;
#   2. backup: pg_dump (plain and custom) and restore of both installs, with CREATE EXTENSION from
#      the dump or before it; every row back, replayed events change nothing, the suite green.
# Database names carry a per-run suffix; everything made is dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
OWNER_PSQL=(env PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner)
RUN=${FRED_RUN_ID:-$$}
LIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension

# The last two versions in sql/releases, and the migration files of each release.
mapfile -t versions < <(awk '!/^#/ && NF > 2 { print $1 }' sql/releases)
NEW=${versions[-1]}
OLD=${versions[-2]}
files_through() { # the migration files of every release up to and including $1 (and $2: all|storage|schema)
  awk -v v="$1" '!/^#/ && NF > 2 { for (i = 3; i <= NF; i++) print $i; if ($1 == v) exit }' sql/releases
}
files_of() { awk -v v="$1" '!/^#/ && $1 == v { for (i = 3; i <= NF; i++) print $i }' sql/releases; }
storage_files() { grep '_fred_storage\.sql$' || true; }

W=$(mktemp -d "${TMPDIR:-/tmp}/fred-lifecycle.XXXXXX")
chmod 755 "$W"
DBS=()
cleanup() {
  rc=$?
  # Put this checkout's build back, whatever happened.
  if [ -f "$W/current/fred.so" ]; then install_files "$W/current"; fi
  for db in "${DBS[@]}"; do "${PSQL[@]}" -d postgres -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT

install_files() { # copy a build's files into the server; never write into a mapped .so
  cp --remove-destination "$1/fred.so" "$LIBDIR/fred.so"
  for f in "$1"/*.control "$1"/*.sql; do [ -e "$f" ] && cp --remove-destination "$f" "$EXTDIR/"; done
  return 0
}
newdb() { # name [owner]
  DBS+=("$1")
  "${PSQL[@]}" -d postgres -c "drop database if exists $1 with (force)" -c "create database $1 ${2:+owner $2}" >/dev/null
}
ensure_owner_role() {
  "${PSQL[@]}" -d postgres <<'SQL'
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_owner') then
    create role fred_owner login createrole password 'fred_owner';
  end if;
end $$;
SQL
}
# The extension install as on self-hosted Postgres: Supabase's roles, CREATE EXTENSION, the storage migrations.
ext_db() { # db version
  newdb "$1"
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql -f sql/tests/setup/supabase_defaults.sql
  "${PSQL[@]}" -d "$1" -c "create extension fred version '$2'"
  local f; for f in $(files_through "$2" | storage_files); do "${PSQL[@]}" -d "$1" -f "sql/supabase/migrations/$f"; done
}
# The SQL install as on hosted Supabase: the migrations, applied by an owner that is not a superuser.
sql_db() { # db version
  newdb "$1" fred_owner
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql
  local args=(-f sql/tests/setup/supabase_defaults.sql) f
  for f in $(files_through "$2"); do args+=(-f "sql/supabase/migrations/$f"); done
  "${OWNER_PSQL[@]}" -d "$1" "${args[@]}"
}
sql_apply() { # db version: the files that version added
  local args=() f
  for f in $(files_of "$2"); do args+=(-f "sql/supabase/migrations/$f"); done
  "${OWNER_PSQL[@]}" -d "$1" "${args[@]}"
}
helpers() { "${PSQL[@]}" -d "$1" -f sql/tests/setup/helpers.sql -f sql/tests/lifecycle/snapshot.sql; }
fill() { "${PSQL[@]}" -d "$1" -f sql/tests/lifecycle/fill.sql >/dev/null; }
rows() { "${PSQL[@]}" -At -d "$1" -c "select tab || ' ' || row_data::text from fred_test.table_rows() order by 1"; }
catalog() { "${PSQL[@]}" -At -d "$1" -f sql/tests/lifecycle/catalog.sql; }
suite() { # db
  "${PSQL[@]}" -d "$1" -c 'create extension if not exists pgtap' >/dev/null
  pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d "$1" sql/tests/*.sql
}
same_catalog() { # upgraded fresh what
  catalog "$1" > "$W/$1.catalog"; catalog "$2" > "$W/$2.catalog"
  if ! diff -u "$W/$2.catalog" "$W/$1.catalog" > "$W/catalog.diff"; then
    echo "lifecycle: $3: the upgraded catalog differs from a fresh install (- fresh, + upgraded):" >&2
    head -c 20000 "$W/catalog.diff" >&2
    exit 1
  fi
  echo "lifecycle: $3: catalog equals a fresh $NEW install ($(wc -l < "$W/$1.catalog") objects)"
}
no_row_changed() { # db what
  "${PSQL[@]}" -At -d "$1" -c "select * from fred_test.rows_changed_since('fred_test.snapshot')" > "$W/changed"
  if [ -s "$W/changed" ]; then
    echo "lifecycle: $2: rows lost or changed by the upgrade:" >&2; head -c 20000 "$W/changed" >&2; exit 1
  fi
  echo "lifecycle: $2: all $("${PSQL[@]}" -At -d "$1" -c 'select count(*) from fred_test.snapshot') rows kept"
}
snapshot() { "${PSQL[@]}" -d "$1" -c 'create table fred_test.snapshot as select * from fred_test.table_rows()' >/dev/null; }
replay_is_noop() { # db what: every filled event again, in one batch; nothing may change
  rows "$1" > "$W/before.rows"
  local out
  out=$("${PSQL[@]}" -At -d "$1" -c "select string_agg(distinct result, ',') from fred.apply_livekit_events(
      (select jsonb_agg(fred_test.retag(e.body, 'fill' || t)) from generate_series(1, 6) t, fred_test.call_events e))")
  [ "$out" = duplicate ] || { echo "lifecycle: $2: replayed events gave '$out', not only duplicate" >&2; exit 1; }
  rows "$1" > "$W/after.rows"
  cmp -s "$W/before.rows" "$W/after.rows" || { echo "lifecycle: $2: a replay changed rows" >&2; diff "$W/before.rows" "$W/after.rows" | head -20 >&2; exit 1; }
  echo "lifecycle: $2: replayed events are all duplicates and change nothing"
}

ensure_owner_role

echo "== lifecycle: upgrade of the extension, $OLD -> $NEW"
mkdir -p "$W/current"
cp "$LIBDIR/fred.so" "$EXTDIR/fred.control" "$W/current/"
cp "$EXTDIR"/fred--*.sql "$W/current/"
grep -q "default_version = '$NEW'" "$W/current/fred.control" || { echo "lifecycle: the installed extension is not $NEW: run .ci/install-extension.sh first" >&2; exit 1; }
OLD_BUILD=$(bash .ci/release-build.sh "$OLD")
mkdir -p "$W/old"; cp "$OLD_BUILD"/lib/fred.so "$OLD_BUILD"/extension/* "$W/old/"
install_files "$W/old"
UP=fred_up_ext_$RUN
ext_db "$UP" "$OLD"
helpers "$UP"; fill "$UP"; snapshot "$UP"
# The new shared library replaces the old one before ALTER EXTENSION runs: the old version's
# functions must keep working with it (0.2.0 keeps every symbol 0.1.0 names).
install_files "$W/current"
"${PSQL[@]}" -d "$UP" -At >/dev/null <<SQL
begin;
select fred.apply_livekit_event(fred_test.retag(body, 'between')) from fred_test.call_events order by seq;
select fred.check_transcript('[{"speaker": "user", "text": "hi"}]');
select fred_test.rpc('service_role', null, 'fred_persist_transcript', '{"room_name": "room-between", "transcript": [{"role": "user", "text": "x"}]}');
rollback;
SQL
echo "lifecycle: the $OLD functions run on the $NEW library before the update"
"${PSQL[@]}" -d "$UP" -c 'alter extension fred update'
for f in $(files_of "$NEW" | storage_files); do "${PSQL[@]}" -d "$UP" -f "sql/supabase/migrations/$f"; done
v=$("${PSQL[@]}" -At -d "$UP" -c "select extversion || ' ' || fred.version() from pg_extension where extname = 'fred'")
[ "$v" = "$NEW $NEW" ] || { echo "lifecycle: after the update the version is '$v'" >&2; exit 1; }
no_row_changed "$UP" "extension upgrade"
FRESH=fred_fresh_ext_$RUN
ext_db "$FRESH" "$NEW"
same_catalog "$UP" "$FRESH" "extension upgrade"
suite "$UP"

echo "== lifecycle: upgrade of the SQL install, $OLD -> $NEW"
UPS=fred_up_sql_$RUN
sql_db "$UPS" "$OLD"
helpers "$UPS"; fill "$UPS"; snapshot "$UPS"
sql_apply "$UPS" "$NEW"
v=$("${PSQL[@]}" -At -d "$UPS" -c "select fred.version()")
[ "$v" = "$NEW" ] || { echo "lifecycle: after the new migrations the version is '$v'" >&2; exit 1; }
no_row_changed "$UPS" "SQL install upgrade"
FRESHS=fred_fresh_sql_$RUN
sql_db "$FRESHS" "$NEW"
same_catalog "$UPS" "$FRESHS" "SQL install upgrade"
suite "$UPS"

echo "== lifecycle: backup and restore of the extension install"
SRC=fred_bk_ext_$RUN
ext_db "$SRC" "$NEW"
"${PSQL[@]}" -d "$SRC" -c 'create extension pgtap' >/dev/null
helpers "$SRC"; fill "$SRC"
rows "$SRC" > "$W/source.rows"
pg_dump -U postgres -Fc -f "$W/ext.dump" "$SRC"
pg_dump -U postgres -Fp -f "$W/ext.sql" "$SRC"
check_restored() { # db what
  rows "$1" > "$W/restored.rows"
  if ! cmp -s "$W/source.rows" "$W/restored.rows"; then
    echo "lifecycle: $2: the restored rows differ (- source, + restored):" >&2
    diff "$W/source.rows" "$W/restored.rows" | head -c 20000 >&2; exit 1
  fi
  echo "lifecycle: $2: all $(wc -l < "$W/source.rows") rows restored"
}
# a) custom format into an empty database: CREATE EXTENSION comes from the dump.
R1=fred_rs_ext_a_$RUN; newdb "$R1"
pg_restore -U postgres --exit-on-error -d "$R1" "$W/ext.dump"
check_restored "$R1" "custom format, extension from the dump"
replay_is_noop "$R1" "custom format"
suite "$R1"
# b) plain format into an empty database.
R2=fred_rs_ext_b_$RUN; newdb "$R2"
"${PSQL[@]}" -d "$R2" -f "$W/ext.sql" >/dev/null
check_restored "$R2" "plain format"
# c) the extension is created first (as a platform does), then the dump is restored. The dump
#    creates schema fred itself (the schema that holds an extension cannot belong to it), so the
#    restore replaces what is there: --clean --if-exists.
R3=fred_rs_ext_c_$RUN; newdb "$R3"
"${PSQL[@]}" -d "$R3" -c 'create extension fred' >/dev/null
pg_restore -U postgres --clean --if-exists --exit-on-error -d "$R3" "$W/ext.dump"
check_restored "$R3" "custom format, extension created before the restore"
replay_is_noop "$R3" "extension created first"

echo "== lifecycle: backup and restore of the SQL install, by its owner"
SRCS=fred_bk_sql_$RUN
sql_db "$SRCS" "$NEW"
helpers "$SRCS"; fill "$SRCS"
rows "$SRCS" > "$W/source.rows"
# As `supabase db dump` does: the project's schemas, not the platform's (auth, storage, realtime).
PGPASSWORD=fred_owner pg_dump -U fred_owner -Fc -N auth -N storage -N realtime -N fred_test -f "$W/sql.dump" "$SRCS"
RS=fred_rs_sql_$RUN; newdb "$RS" fred_owner
"${PSQL[@]}" -d "$RS" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql
PGPASSWORD=fred_owner pg_restore -U fred_owner --no-owner --exit-on-error -d "$RS" "$W/sql.dump"
# The storage and Realtime policies and the auth.users trigger live on the platform's tables:
# re-apply the storage migrations.
for f in $(files_through "$NEW" | storage_files); do "${OWNER_PSQL[@]}" -d "$RS" -f "sql/supabase/migrations/$f"; done
helpers "$RS"
check_restored "$RS" "SQL install, pg_restore --no-owner by the owner"
replay_is_noop "$RS" "SQL install"
suite "$RS"
echo "lifecycle: ok"
