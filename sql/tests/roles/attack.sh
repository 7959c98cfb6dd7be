#!/usr/bin/env bash
# The pg_temp attack (issue 11 §1) against one database of fred: log in as fred_syncd and as a plain
# login role granted authenticated, run attack.sql (types and relations shadowed in pg_temp by
# code that reports who runs it, then every executable function of ours called), and fail, loudly
# and with a non-zero exit, if any code ran as another role, if the probe never fired (the
# attack did not take), or if not every executable function was called.
# Usage: attack.sh DATABASE. Uses PGHOST/PGPORT; the set-up connects as postgres (superuser).
set -euo pipefail
cd "$(dirname "$0")"
DB=${1:?usage: attack.sh DATABASE}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)

# fred_syncd is NOLOGIN as installed; operators give it LOGIN. fred_attacker: any direct-SQL role
# of an app that is granted authenticated.
"${PSQL[@]}" -d "$DB" <<'SQL'
alter role fred_syncd login;
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_attacker') then
    create role fred_attacker login;
  end if;
end $$;
grant authenticated to fred_attacker;
SQL

status=0
for role in fred_syncd fred_attacker; do
  out=$(psql -X -q -U "$role" -d "$DB" -f attack.sql 2>&1) || {
    echo "attack[$DB as $role]: FAIL: the attack script itself failed:" >&2
    echo "$out" >&2
    status=1
    continue
  }
  ran_as=$(grep -o 'fred-attack-probe: code ran as [^ ]*' <<<"$out" | awk '{print $NF}' | sort | uniq -c || true)
  others=$(grep -o 'fred-attack-probe: code ran as [^ ]*' <<<"$out" | awk '{print $NF}' | grep -vx "$role" | sort -u || true)
  summary=$(grep -o 'fred-attack-summary: called [0-9]* of [0-9]* executable functions.*' <<<"$out" || true)
  called=$(awk '{print $3}' <<<"$summary")
  total=$(awk '{print $5}' <<<"$summary")
  if [ -n "$others" ]; then
    echo "attack[$DB as $role]: FAIL: code planted in pg_temp ran as: $others" >&2
    grep 'fred-attack-probe' <<<"$out" | grep -v "ran as $role " | sort | uniq -c | head -n 20 >&2
    grep -B2 'fred-attack-probe: code ran as' <<<"$out" | grep -v "ran as $role " | grep -i 'context\|function' | sort -u | head -n 20 >&2 || true
    status=1
  elif ! grep -q "fred-attack-probe: code ran as $role " <<<"$out"; then
    echo "attack[$DB as $role]: FAIL: the probe never fired, so the attack proved nothing" >&2
    status=1
  elif [ -z "$summary" ] || [ "$called" != "$total" ] || [ "${total:-0}" -lt 5 ]; then
    echo "attack[$DB as $role]: FAIL: not every executable function was called ($summary)" >&2
    status=1
  else
    echo "attack[$DB as $role]: ok: $summary; all $(awk '{s+=$1} END {print s}' <<<"$ran_as") probe reports ran as $role"
  fi
done
"${PSQL[@]}" -d "$DB" -c 'alter role fred_syncd nologin'
exit $status
