#!/usr/bin/env bash
# Concurrency tests (issue 16, item 6): PostgreSQL's own isolation tester runs the specs in
# sql/tests/isolation/specs against both installs, on databases with a per-run suffix that are
# dropped at exit. Each spec's permutations interleave steps of several sessions; the tester
# detects a step that waits for a lock and goes on with the others, so no sleep decides anything.
# The expected output (sql/tests/isolation/expected) is the same for both installs.
#
# Needs pg_isolation_regress and isolationtester from Debian's postgresql-server-dev-15.
# Environment: FRED_ISO_INSTALLS (default "ext sql"), FRED_ISO_KEEP=1 keeps the databases.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
ISO=${PG_ISOLATION_DIR:-$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/pgxs/src/test/isolation}
[ -x "$ISO/pg_isolation_regress" ] && [ -x "$ISO/isolationtester" ] \
  || { echo "isolation: no pg_isolation_regress in $ISO (apt-get install postgresql-server-dev-15)" >&2; exit 1; }

SUFFIX=$(date +%s)_$$
W=$(mktemp -d "${TMPDIR:-/tmp}/fred-iso.XXXXXX")
DBS=()
cleanup() {
  rc=$?
  for db in "${DBS[@]}"; do
    if [ -z "${FRED_ISO_KEEP:-}" ]; then
      "${PSQL[@]}" -d postgres -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
    else
      echo "isolation: kept database $db"
    fi
  done
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${PSQL[@]}" -d postgres <<'SQL'
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_owner') then
    create role fred_owner login createrole password 'fred_owner';
  end if;
end $$;
SQL

specs=()
for f in sql/tests/isolation/specs/*.spec; do specs+=("$(basename "$f" .spec)"); done

failed=0
for install in ${FRED_ISO_INSTALLS:-ext sql}; do
  db=fred_iso_${install}_$SUFFIX
  DBS+=("$db")
  if [ "$install" = ext ]; then
    "${PSQL[@]}" -d postgres -c "create database $db"
    "${PSQL[@]}" -d "$db" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_defaults.sql >/dev/null
    "${PSQL[@]}" -d "$db" -c 'create extension fred' >/dev/null
  else
    "${PSQL[@]}" -d postgres -c "create database $db owner fred_owner"
    "${PSQL[@]}" -d "$db" -f sql/tests/setup/supabase_roles.sql >/dev/null
    PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner -d "$db" \
      -f sql/tests/setup/supabase_defaults.sql $(printf -- '-f %s ' sql/supabase/migrations/*.sql) >/dev/null
  fi
  "${PSQL[@]}" -d "$db" -f sql/tests/setup/helpers.sql >/dev/null
  echo "== isolation tests against $db ($install install, fred $("${PSQL[@]}" -d "$db" -Atc 'select fred.version()'))"
  mkdir -p "$W/$install"
  if ! "$ISO/pg_isolation_regress" --use-existing --host="$PGHOST" --port="$PGPORT" --user=postgres --dbname="$db" \
         --inputdir=sql/tests/isolation --outputdir="$W/$install" "${specs[@]}"; then
    cat "$W/$install/regression.diffs" >&2 2>/dev/null || true
    failed=1
  fi
done
exit $failed
