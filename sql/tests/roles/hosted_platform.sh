#!/usr/bin/env bash
# The platform's tables (issue 14), where 20261201000006_fred_storage.sql cannot do its part:
#   a) hosted Supabase where the migrating role may neither add a policy to realtime.messages nor
#      a trigger to auth.users (both belong to the platform's roles): the migration set completes,
#      and a WARNING for each gives the SQL to run from the dashboard;
#   b) plain Postgres without Realtime and without auth.users: a NOTICE for each, and the
#      session events and erasure still work (NOTIFY only; fred_delete_session).
# Usage: hosted_platform.sh DATABASE (DATABASE and DATABASE_plain are created here, dropped first,
# and dropped again at the end). Uses PGHOST/PGPORT; connects as postgres for the set-up and as
# fred_platform (a migrating role that is not a superuser and has no platform role).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DB=${1:?usage: hosted_platform.sh DATABASE}
PLAIN=${DB}_plain
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
fail() { echo "hosted-platform: FAIL: $*" >&2; exit 1; }

"${PSQL[@]}" -d postgres <<SQL
do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_platform') then
    create role fred_platform login createrole password 'fred_platform';
  end if;
end \$\$;
drop database if exists $DB with (force);
drop database if exists $PLAIN with (force);
create database $DB owner fred_platform;
create database $PLAIN owner fred_platform;
SQL
as_platform() { PGPASSWORD=fred_platform psql -X -q -v ON_ERROR_STOP=1 -U fred_platform "$@"; }
# Every migration but the released 20261124000003_fred_storage.sql, which such a role cannot run
# (sql/tests/roles/hosted_storage.sh; projects mark it applied).
files=()
for f in sql/supabase/migrations/*.sql; do
  case $f in */20261124000003_*) continue ;; esac
  files+=(-f "$f")
done

# a) Realtime and auth.users exist, but belong to their platform roles.
"${PSQL[@]}" -d "$DB" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_realtime.sql >/dev/null 2>&1
"${PSQL[@]}" -d "$DB" -c 'grant usage on schema auth, storage, realtime to fred_platform' >/dev/null
m=$("${PSQL[@]}" -d "$DB" -Atc "select pg_has_role('fred_platform', 'supabase_realtime_admin', 'usage') or has_table_privilege('fred_platform', 'auth.users', 'trigger')")
[ "$m" = f ] || fail "fred_platform may act on realtime.messages or auth.users"
out=$(as_platform -d "$DB" -f sql/tests/setup/supabase_defaults.sql "${files[@]}" 2>&1) || fail "the migration set did not complete: $out"
grep -q 'WARNING:  fred: this role may not create a policy on realtime.messages' <<<"$out" || fail "no WARNING about the Realtime policy: $out"
grep -q 'WARNING:  fred: this role may not create a trigger on auth.users' <<<"$out" || fail "no WARNING about the auth.users trigger: $out"
n=$("${PSQL[@]}" -d "$DB" -Atc "select (select count(*) from pg_policies where policyname = 'fred_user_topic_receive')
                                      + (select count(*) from pg_trigger where tgname = 'fred_erase_user_sessions')")
[ "$n" = 0 ] || fail "a policy or trigger exists although the role could not create it"
echo "hosted-platform: without rights on realtime.messages and auth.users the set completes, with the WARNINGs:"
grep -E 'WARNING:  fred: this role may not create a (policy on realtime|trigger on auth)' <<<"$out" | cut -c1-160 | sed 's/^/  /'
# The WARNINGs' SQL, run from the dashboard (a superuser here), creates both.
grep -o 'drop policy if exists fred_user_topic_receive on realtime.messages;.*;' <<<"$out" | head -n1 > /tmp/fred-platform-$$.sql
grep -o 'create trigger fred_erase_user_sessions after delete on auth.users.*;' <<<"$out" | head -n1 >> /tmp/fred-platform-$$.sql
"${PSQL[@]}" -d "$DB" -f /tmp/fred-platform-$$.sql >/dev/null 2>&1 || { rm -f /tmp/fred-platform-$$.sql; fail "the WARNINGs' SQL did not run"; }
rm -f /tmp/fred-platform-$$.sql
n=$("${PSQL[@]}" -d "$DB" -Atc "select (select count(*) from pg_policies where policyname = 'fred_user_topic_receive')
                                      + (select count(*) from pg_trigger where tgname = 'fred_erase_user_sessions')")
[ "$n" = 2 ] || fail "the WARNINGs' SQL did not create the policy and the trigger"
echo "hosted-platform: the WARNINGs' SQL creates the policy and the trigger when run from the dashboard"

# b) No Realtime, no auth.users.
"${PSQL[@]}" -d "$PLAIN" -f sql/tests/setup/supabase_roles.sql >/dev/null 2>&1
"${PSQL[@]}" -d "$PLAIN" -c 'drop table auth.users' -c 'grant usage on schema auth, storage to fred_platform' >/dev/null
out=$(as_platform -d "$PLAIN" -f sql/tests/setup/supabase_defaults.sql "${files[@]}" 2>&1) || fail "the migration set did not complete: $out"
grep -q 'NOTICE:  fred: realtime.messages does not exist' <<<"$out" || fail "no NOTICE about Realtime: $out"
grep -q 'NOTICE:  fred: auth.users does not exist' <<<"$out" || fail "no NOTICE about auth.users: $out"
"${PSQL[@]}" -d "$PLAIN" -f sql/tests/setup/helpers.sql >/dev/null
r=$("${PSQL[@]}" -d "$PLAIN" -At 2>&1 <<'SQL'
select string_agg(fred.apply_livekit_event(fred_test.retag(body, 'plain')), ',' order by seq) from fred_test.call_events;
select fred_test.rpc1('authenticated', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'fred_delete_session',
                      jsonb_build_object('session_id', fred_test.session_of('plain')));
select fred.apply_livekit_event(fred_test.retag(body, 'plain')) from fred_test.call_events where seq = 8;
select count(*) from fred.coaching_sessions;
SQL
) || fail "events or erasure failed without Realtime: $r"
want=$'applied,applied,applied,ignored,applied,applied,applied,applied\ntrue\nduplicate\n0'
[ "$r" = "$want" ] || fail "without Realtime and auth.users: got '$r', want '$want'"
grep -qi 'warning' <<<"$r" && fail "a WARNING without Realtime: $r"
echo "hosted-platform: without Realtime and auth.users the set completes with NOTICEs; events, erasure and the tombstone work"
"${PSQL[@]}" -d postgres -c "drop database $DB with (force)" -c "drop database $PLAIN with (force)" >/dev/null
echo "hosted-platform: ok"
