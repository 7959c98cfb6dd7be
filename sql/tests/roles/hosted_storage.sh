#!/usr/bin/env bash
# Storage on hosted Supabase (issue 11 §6): storage.objects belongs to supabase_storage_admin and
# the migrating role may not create a policy on it. The migration set, minus the released
# 20261124000003_fred_storage.sql (which such projects mark applied with
# `supabase migration repair --status applied 20261124000003`), must complete, and
# 20261201000004_fred_storage.sql must say with a WARNING how to add the policy.
# Usage: hosted_storage.sh DATABASE (created here, dropped first). Uses PGHOST/PGPORT; connects as
# postgres (superuser) for the set-up and as fred_hosted (not a member of supabase_storage_admin).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DB=${1:?usage: hosted_storage.sh DATABASE}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
fail() { echo "hosted-storage: FAIL: $*" >&2; exit 1; }

"${PSQL[@]}" -d postgres <<SQL
do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_hosted') then
    create role fred_hosted login createrole password 'fred_hosted';
  end if;
end \$\$;
drop database if exists $DB with (force);
create database $DB owner fred_hosted;
SQL
"${PSQL[@]}" -d "$DB" -f sql/tests/setup/supabase_roles.sql >/dev/null 2>&1
"${PSQL[@]}" -d "$DB" <<'SQL'
grant usage on schema auth, storage to fred_hosted;
SQL
owner=$("${PSQL[@]}" -d "$DB" -Atc "select relowner::regrole from pg_class where oid = 'storage.objects'::regclass")
[ "$owner" = supabase_storage_admin ] || fail "storage.objects belongs to $owner, not supabase_storage_admin"
member=$("${PSQL[@]}" -d "$DB" -Atc "select pg_has_role('fred_hosted', 'supabase_storage_admin', 'usage')")
[ "$member" = f ] || fail "fred_hosted may act as supabase_storage_admin"

as_hosted() { PGPASSWORD=fred_hosted psql -X -q -v ON_ERROR_STOP=1 -U fred_hosted -d "$DB" "$@"; }
# The released storage file fails here, as on hosted Supabase.
if out=$(as_hosted -f sql/tests/setup/supabase_defaults.sql \
           -f sql/supabase/migrations/20261124000001_fred_engine.sql \
           -f sql/supabase/migrations/20261124000002_fred_core.sql \
           -f sql/supabase/migrations/20261124000003_fred_storage.sql 2>&1); then
  fail "20261124000003_fred_storage.sql applied although the role may not create the policy"
fi
grep -q 'must be owner of table objects' <<<"$out" || fail "20261124000003 failed otherwise: $out"
echo "hosted-storage: 20261124000003_fred_storage.sql fails as on hosted Supabase (must be owner of table objects)"

# The rest of the set (0003 marked applied, as `supabase migration repair` does) completes.
files=()
for f in sql/supabase/migrations/*.sql; do
  case $f in */20261124000001_*|*/20261124000002_*|*/20261124000003_*) continue ;; esac
  files+=(-f "$f")
done
out=$(as_hosted "${files[@]}" 2>&1) || fail "the migration set did not complete: $out"
grep -q 'WARNING:  fred: this role may not create a policy on storage.objects' <<<"$out" \
  || fail "no WARNING about the recordings policy: $out"
grep -q 'create policy fred_recordings_owner_read on storage.objects for select to authenticated using ((select fred.owns_recording(bucket_id, name)))' <<<"$out" \
  || fail "the WARNING does not give the policy's SQL: $out"
n=$("${PSQL[@]}" -d "$DB" -Atc "select count(*) from pg_policies where schemaname = 'storage' and policyname = 'fred_recordings_owner_read'")
[ "$n" = 0 ] || fail "a policy exists although the role could not create it"
v=$("${PSQL[@]}" -d "$DB" -Atc "select fred.version()")
[ "$v" = 0.2.0 ] || fail "fred.version() is $v"
echo "hosted-storage: the set minus 20261124000003 completes, with the WARNING:"
grep 'WARNING:  fred: this role' <<<"$out" | sed 's/^/  /'

# The policy SQL of the WARNING, run by a role that may (here a superuser, as the dashboard's
# SQL Editor), works and gives the same policy as the allowed case.
sql=$(grep -o 'drop policy if exists fred_recordings_owner_read.*;' <<<"$out" | head -n1)
"${PSQL[@]}" -d "$DB" -c "$sql" >/dev/null 2>&1
n=$("${PSQL[@]}" -d "$DB" -Atc "select count(*) from pg_policies where schemaname = 'storage' and policyname = 'fred_recordings_owner_read'")
[ "$n" = 1 ] || fail "the WARNING's SQL did not create the policy"
echo "hosted-storage: ok (the WARNING's SQL creates the policy when run from the dashboard)"
"${PSQL[@]}" -d postgres -c "drop database $DB with (force)"
