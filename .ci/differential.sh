#!/usr/bin/env bash
# Differential test of the two engines (issue 16, item 4): the same seeded call histories are
# applied to the extension install (Rust engine) and to the SQL install (PL/pgSQL engine), and
# every step's result or SQLSTATE, every session row and every ledger row must agree.
#
# Environment:
#   FRED_DIFF_SEED       the run's seed (default 16, CI's fixed seed)
#   FRED_DIFF_HISTORIES  how many histories (default 1000, about 12000 steps)
#   FRED_DIFF_FIRST      number of the first history (default 0): with FRED_DIFF_HISTORIES=1,
#                        regenerates a single history of a seed
#   FRED_DIFF_LEFT       ext (default) or sql: the install compared with the SQL install
#                        (sql + sql is the harness's self-check)
#   FRED_DIFF_MIGRATIONS the migration files of the SQL install on the right (default
#                        sql/supabase/migrations): a directory with a changed copy plants a difference
#   FRED_DIFF_KEEP=1     keep the two databases (their names are printed)
# Databases are named with a per-run suffix and dropped at exit. On a difference it prints the
# seed and history, a command that reproduces it, the differing lines, and a reduced history
# (steps removed one by one while the difference remains), then exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)

SEED=${FRED_DIFF_SEED:-16}
HISTORIES=${FRED_DIFF_HISTORIES:-1000}
FIRST=${FRED_DIFF_FIRST:-0}
LEFT=${FRED_DIFF_LEFT:-ext}
MIGRATIONS=${FRED_DIFF_MIGRATIONS:-sql/supabase/migrations}
[[ $SEED =~ ^-?[0-9]+$ && $HISTORIES =~ ^[0-9]+$ && $FIRST =~ ^[0-9]+$ ]] \
  || { echo "differential: FRED_DIFF_SEED, FRED_DIFF_HISTORIES and FRED_DIFF_FIRST must be integers" >&2; exit 2; }
[[ $LEFT == ext || $LEFT == sql ]] || { echo "differential: FRED_DIFF_LEFT is ext or sql" >&2; exit 2; }

SUFFIX=$(date +%s)_$$
A=fred_diff_${LEFT}_$SUFFIX
B=fred_diff_sql_${SUFFIX}_b
W=$(mktemp -d "${TMPDIR:-/tmp}/fred-diff.XXXXXX")
cleanup() {
  rc=$?
  if [ -z "${FRED_DIFF_KEEP:-}" ]; then
    "${PSQL[@]}" -d postgres -c "drop database if exists $A with (force)" -c "drop database if exists $B with (force)" \
      >/dev/null 2>&1 || true
  else
    echo "differential: kept databases $A and $B"
  fi
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${PSQL[@]}" -d postgres <<SQL
do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'fred_owner') then
    create role fred_owner login createrole password 'fred_owner';
  end if;
end \$\$;
create database $A;
SQL
[ "$LEFT" = sql ] && "${PSQL[@]}" -d postgres -c "alter database $A owner to fred_owner"
"${PSQL[@]}" -d postgres -c "create database $B owner fred_owner"

install_ext() {
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/supabase_roles.sql -f sql/tests/setup/supabase_defaults.sql
  "${PSQL[@]}" -d "$1" -c 'create extension fred'
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/helpers.sql
}
install_sql() { # db [migrations]
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/supabase_roles.sql
  PGPASSWORD=fred_owner psql -X -q -v ON_ERROR_STOP=1 -U fred_owner -d "$1" \
    -f sql/tests/setup/supabase_defaults.sql $(printf -- '-f %s ' "${2:-sql/supabase/migrations}"/*.sql)
  "${PSQL[@]}" -d "$1" -f sql/tests/setup/helpers.sql
}
"install_$LEFT" "$A" >"$W/install_a.log" 2>&1 || { cat "$W/install_a.log" >&2; exit 1; }
install_sql "$B" "$MIGRATIONS" >"$W/install_b.log" 2>&1 || { cat "$W/install_b.log" >&2; exit 1; }
for db in "$A" "$B"; do "${PSQL[@]}" -d "$db" -f sql/tests/differential/diff.sql >/dev/null; done
echo "differential: $A ($("${PSQL[@]}" -d "$A" -Atc 'select fred.version()')) vs $B, seed $SEED, histories $FIRST..$((FIRST + HISTORIES - 1))"

# One run in one database: generate, apply (one transaction per step), report.
export PGOPTIONS='-c synchronous_commit=off'
run_db() { # db out
  "${PSQL[@]}" -d "$1" -Atc "select fred_diff.generate($SEED, $HISTORIES, $FIRST)" >/dev/null
  "${PSQL[@]}" -d "$1" -c 'call fred_diff.run()'
  "${PSQL[@]}" -d "$1" -Atc 'select fred_diff.report()' >"$2"
}
start=$SECONDS
run_db "$A" "$W/a.txt" & pa=$!
run_db "$B" "$W/b.txt" & pb=$!
wait $pa; wait $pb
steps_a=$("${PSQL[@]}" -d "$A" -Atc "select count(*) || ' ' || md5(string_agg(h || ':' || n || ':' || kind || ':' || payload::text, E'\n' order by h, n)) from fred_diff.steps")
steps_b=$("${PSQL[@]}" -d "$B" -Atc "select count(*) || ' ' || md5(string_agg(h || ':' || n || ':' || kind || ':' || payload::text, E'\n' order by h, n)) from fred_diff.steps")
[ "$steps_a" = "$steps_b" ] || { echo "differential: the generator wrote different steps ($steps_a vs $steps_b)" >&2; exit 1; }
echo "differential: ${steps_a%% *} steps, $(wc -l <"$W/a.txt") report lines, applied in $((SECONDS - start))s"

if cmp -s "$W/a.txt" "$W/b.txt"; then
  echo "differential: ok, the two installs agree on every result, session row and ledger row"
  exit 0
fi

# A difference: name it, then reduce its history.
first=$( (diff "$W/a.txt" "$W/b.txt" || true) | grep -m1 -E '^[<>] h=' | sed -E 's/^[<>] h=(-?[0-9]+).*/\1/')
echo "differential: FAILED: $A and $B differ in history $first of seed $SEED" >&2
echo "  reproduce: FRED_DIFF_SEED=$SEED FRED_DIFF_FIRST=$first FRED_DIFF_HISTORIES=1 .ci/differential.sh" >&2
echo "  differing lines of history $first (< $LEFT, > sql):" >&2
(diff <(grep -E "^h=$first " "$W/a.txt") <(grep -E "^h=$first " "$W/b.txt") || true) | grep -E '^[<>]' | head -n 20 | cut -c1-1500 >&2 || true

"${PSQL[@]}" -d "$A" -Atc "select fred_diff.history_json($first)" >"$W/hist.json"
trial() { # steps.json -> 0 when the installs still differ
  local db
  for db in "$A" "$B"; do
    "${PSQL[@]}" -d "$db" -Atc "select fred_diff.load(\$j\$$(cat "$1")\$j\$::jsonb)" >/dev/null
    "${PSQL[@]}" -d "$db" -c 'call fred_diff.run()'
    "${PSQL[@]}" -d "$db" -Atc 'select fred_diff.report()' >"$W/$db.txt"
  done
  ! cmp -s "$W/$A.txt" "$W/$B.txt"
}
if trial "$W/hist.json"; then
  # Remove steps one at a time while the difference remains, until no single step can go
  # (jq is not used on the steps: it would round int64 numbers).
  drop_step() { "${PSQL[@]}" -d "$A" -Atc "select coalesce(jsonb_agg(x order by o), '[]') from jsonb_array_elements(\$j\$$(cat "$1")\$j\$::jsonb) with ordinality a(x, o) where o <> $2 + 1"; }
  n=$("${PSQL[@]}" -d "$A" -Atc "select jsonb_array_length(\$j\$$(cat "$W/hist.json")\$j\$::jsonb)")
  changed=1
  while [ "$changed" = 1 ]; do
    changed=0
    i=0
    while [ "$i" -lt "$n" ]; do
      drop_step "$W/hist.json" "$i" >"$W/cand.json"
      if trial "$W/cand.json"; then
        mv "$W/cand.json" "$W/hist.json"
        n=$((n - 1))
        changed=1
      else
        i=$((i + 1))
      fi
    done
  done
  trial "$W/hist.json" || true
  echo "  reduced history ($n steps; each applied in its own transaction, in this order):" >&2
  "${PSQL[@]}" -d "$A" -Atc "select x ->> 'kind' || ' ' || (x -> 'payload')::text from jsonb_array_elements(\$j\$$(cat "$W/hist.json")\$j\$::jsonb) with ordinality a(x, o) order by o" | cut -c1-3000 >&2
  echo "  its differing lines (< $LEFT, > sql):" >&2
  (diff "$W/$A.txt" "$W/$B.txt" || true) | grep -E '^[<>]' | cut -c1-1500 >&2 || true
else
  echo "  (the history alone, on empty tables, shows no difference: it depends on earlier histories)" >&2
fi
exit 1
