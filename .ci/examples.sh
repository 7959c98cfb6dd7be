#!/usr/bin/env bash
# The adopter examples (examples/) are checked, not just shown:
#   1. `npm ci` (skipped when node_modules already matches package-lock.json), then `tsc --noEmit`
#      against the pinned @supabase/supabase-js and livekit-server-sdk;
#   2. examples/types/fred.ts against a live database: the SQL install applied as on hosted
#      Supabase (a non-superuser owner, after Supabase's roles and default grants, like .ci/pgtap.sh),
#      then .ci/fred-types-check.py compares FredSession with fred.coaching_sessions and the
#      Database type's Args with the public fred_* functions;
#   3. that check's own test: a column added, then a column renamed, must each make it fail.
# Needs Node 20+ with npm, and the local PostgreSQL 15 (.ci/setup.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
DB=fred_examples_types

echo "== examples: npm ci"
cd examples
# Idempotent: npm ci only when package-lock.json (or Node) changed since the last install.
stamp="$(sha256sum package-lock.json | cut -d' ' -f1) node $(node --version)"
if [ "$(cat node_modules/.fred-installed 2>/dev/null)" != "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$stamp" >node_modules/.fred-installed
else
  echo "node_modules matches package-lock.json"
fi
echo "== examples: tsc --noEmit"
npx --no-install tsc --version
npx --no-install tsc --noEmit -p .
echo "tsc: ok"
cd ..

echo "== examples: FredSession against fred.coaching_sessions"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
"${PSQL[@]}" -d postgres <<SQL
do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_owner') then
    create role fred_owner login createrole password 'fred_owner';
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit;
  end if;
end \$\$;
grant supabase_storage_admin to fred_owner;
drop database if exists $DB with (force);
create database $DB owner fred_owner;
SQL
trap '"${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true' EXIT
"${PSQL[@]}" -d "$DB" -f sql/tests/setup/supabase_roles.sql >/dev/null
PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner -d "$DB" \
  -f sql/tests/setup/supabase_defaults.sql $(printf -- '-f %s ' sql/supabase/migrations/*.sql) >/dev/null
PGUSER=postgres python3 .ci/fred-types-check.py "$DB" examples/types/fred.ts

echo "== examples: the type check fails on an added or a renamed column"
for change in "add column fred_probe text" "rename column summary to summary_probe"; do
  "${PSQL[@]}" -d "$DB" -c "alter table fred.coaching_sessions $change"
  if PGUSER=postgres python3 .ci/fred-types-check.py "$DB" examples/types/fred.ts >/tmp/fred-types-probe.$$ 2>&1; then
    cat /tmp/fred-types-probe.$$; rm -f /tmp/fred-types-probe.$$
    echo "FAILED: fred-types-check.py passed after '$change'"; exit 1
  fi
  grep '^FAILED' /tmp/fred-types-probe.$$ | head -3
  rm -f /tmp/fred-types-probe.$$
done
echo "examples: ok"
