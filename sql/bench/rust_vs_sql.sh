#!/usr/bin/env bash
# Rust engine (the fred extension) vs the pure-SQL install vs raw writes, on one cluster.
#
#   sql/bench/rust_vs_sql.sh            # ~10 minutes; needs psql + pgbench, a superuser, the
#                                       # fred extension installed in the cluster
#
# Cases (each measured by pgbench with a custom script; -c 4 -j 2 -T 5 -M prepared):
#   E  the extension      database fred_bench_ext (CREATE EXTENSION fred)
#   S  the SQL install    database fred_bench_sql (sql/supabase/migrations/*.sql, in name order)
#   R  raw                database fred_bench_ext, plain writes of the same jsonb, no function
#
# Workloads; every round runs, for synchronous_commit off and then on (set per pgbench session),
# each workload as E S R (interleaved). TRUNCATE of fred's tables + CHECKPOINT before every
# measurement; the median tps of the rounds is reported:
#   persist  one call of public.fred_persist_transcript per transaction: a 500-entry transcript
#            (entries {"text": <~60 chars>, "speaker": "coach"|"user"}, ~45 kB) built on the server
#            from fred_bench.base with entry 0's text set to a random number, so every call writes
#            a transcript that differs from the stored one. Each client has its own room
#            (bench-<client_id>), pre-created after each TRUNCATE.
#            R = update fred.coaching_sessions set transcript_json = <the same jsonb expression>,
#                transcript_entries = 500, updated_at = now() where room_name = 'bench-<client_id>'
#                (the table's own triggers, which hold every writer to the rules, fire for R too)
#   wire     as persist, but the transcript travels as text from the client (a 45 kB literal with
#            the random number spliced in) and the server parses it: the wire and jsonb_in included.
#   noop     as persist with the same transcript on every call: after the first, each call is an
#            identical repeat, which writes nothing. R = the same raw UPDATE (which does write).
#   events   one transaction = one call's 8 LiveKit webhook bodies (sql/tests/setup/call_events.sql),
#            made unique per transaction from a sequence value N: room sid RM_bN, egress EG_bN,
#            room name bench-N, event ids EV_N_<original>. Statements: BEGIN; nextval (\gset);
#            8 statements, one per event, in fixture order; COMMIT.
#            E, S = select fred.apply_livekit_event(<event>)
#            R    = per event, one statement with the same <event> jsonb expression:
#                   insert into fred.livekit_events (event_id, event_type, room_sid, room_name,
#                     created_at = now(), outcome = 'applied')          -- no idempotency check
#                   + insert into fred.coaching_sessions (room_name, room_sid, last_event_at = now(),
#                     metadata = <event>) on conflict (room_sid) do update set last_event_at = now(),
#                     metadata = <event>, updated_at = now()
#                   i.e. 8 ledger inserts + 1 session insert + 7 session updates per call, no
#                   parsing, no merge rules, no egress/recording columns.
#   check    micro-case, read-only, -T 3, no TRUNCATE, synchronous_commit irrelevant: the
#            transcript check alone, on the same jsonb expression as persist:
#            E  select fred.check_transcript(t)                (ext: Rust on the jsonb binary)
#            S  select fred.check_transcript(t)                (sql: PL/pgSQL, set-based jsonb)
#            R  select jsonb_array_length(t)                   (baseline: building t only)
#            X  select fred.check_transcript_text(t::text)     (ext: 0.1.0's Rust check on the text)
#            T  select octet_length(t::text)                   (jsonb -> text conversion only)
#            D  select fred.transcript_digest(t)               (ext: SHA-256 of the binary form)
#
# Profile (BENCH_PERF=1; needs perf, Debian's linux-perf, and the rights to profile the system):
# each measurement also runs `perf record -a -g` for its middle seconds, and prints where
# Postgres' time went per 1000 transactions (sql/bench/perf_costs.py). perf slows the server,
# so take ratios from a run without it, e.g. BENCH_PERF=1 BENCH_ROUNDS=1 BENCH_SYNC_MODES=off.
# BENCH_PERF_KEEP=DIR keeps each recording as DIR/perf_WORKLOAD_CASE_SYNC.data, for `perf report`.
#
# Idempotent: drops and recreates fred_bench_ext / fred_bench_sql, and drops them at the end.
# Connection: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), PGSSLMODE (disable); trust or ~/.pgpass. Only
# loopback or a unix socket; every measurement is bounded by -T.

set -euo pipefail

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
# Without TLS on the loopback, by default: its cipher work is the wire's cost, which the engines'
# ratios leave out (as they leave out the transcript's transfer); PGSSLMODE=prefer measures it.
export PGSSLMODE="${PGSSLMODE:-disable}"
CLIENTS="${BENCH_CLIENTS:-4}"
THREADS="${BENCH_THREADS:-2}"
SECS="${BENCH_SECS:-5}"
MICRO_SECS="${BENCH_MICRO_SECS:-3}"
ROUNDS="${BENCH_ROUNDS:-3}"
PERF="${BENCH_PERF:-}"
SYNC_MODES="${BENCH_SYNC_MODES:-off on}"
WORKLOADS="${BENCH_WORKLOADS:-persist wire noop events}"
EXT_DB=fred_bench_ext
SQL_DB=fred_bench_sql

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIGRATIONS=("$ROOT"/sql/supabase/migrations/*.sql)
FIXTURE="$ROOT/sql/tests/setup/call_events.sql"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fred_bench.XXXXXX")"
RESULTS="$WORK/results.tsv"   # workload case round tps latency_ms

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
  local rc=$?
  psql_q -d postgres -c "drop database if exists $EXT_DB with (force)" \
                     -c "drop database if exists $SQL_DB with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

echo "# fred bench: Rust extension vs SQL install vs raw"
echo "date:   $(date -Is)"
echo "host:   $(uname -n), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load before: $(uptime)"
echo "server: $(psql -X -Atd postgres -c 'select version()')"
echo "pgbench: -n -M prepared -c $CLIENTS -j $THREADS -T $SECS (check: -T $MICRO_SECS), $ROUNDS interleaved rounds; synchronous_commit: $SYNC_MODES; jit=$(psql -X -Atd postgres -c 'show jit')"
echo

# --- setup --------------------------------------------------------------------------------
for db in $EXT_DB $SQL_DB; do
  psql_q -d postgres -c "drop database if exists $db with (force)" -c "create database $db template template0" >/dev/null
done
psql_q -d $EXT_DB -c "create extension fred" >/dev/null
for f in "${MIGRATIONS[@]}"; do
  psql_q -d $SQL_DB -f "$f" >/dev/null 2>"$WORK/migrate.err" || { cat "$WORK/migrate.err"; exit 1; }
done

for db in $EXT_DB $SQL_DB; do
  psql_q -d $db >/dev/null <<SQL
create schema fred_test;
\i $FIXTURE
create schema fred_bench;
-- The base transcript: 500 entries, ~60-character texts, alternating speakers.
create table fred_bench.base (t jsonb not null);
insert into fred_bench.base
select jsonb_agg(jsonb_build_object(
         'text', 'Line ' || lpad(i::text, 3, '0') || ': ' || substr(md5(i::text) || md5((i * 7)::text), 1, 50),
         'speaker', case when i % 2 = 0 then 'coach' else 'user' end) order by i)
  from generate_series(0, 499) i;
-- Event templates: @N@ is replaced per transaction by a sequence value.
create table fred_bench.events (seq integer primary key, tpl text not null);
insert into fred_bench.events
select seq, replace(replace(replace(body::text, 'demo000000001', 'b@N@'),
                            'coaching-demo-1', 'bench-@N@'),
                    '"id": "EV_', '"id": "EV_@N@_')
  from fred_test.call_events;
create sequence fred_bench.n;
-- Sanity: 8 distinct ids and no leftover fixture names once N is substituted.
do \$\$
begin
  if (select count(distinct replace(tpl, '@N@', '1')::jsonb ->> 'id') from fred_bench.events) <> 8
     or exists (select 1 from fred_bench.events where tpl like '%demo%' or tpl not like '%"id": "EV_@N@_%') then
    raise exception 'bench: event templates are wrong';
  end if;
end
\$\$;
analyze;
SQL
done
psql_q -d $EXT_DB -Atc "select 'transcript: ' || jsonb_array_length(t) || ' entries, ' || octet_length(t::text) || ' bytes as text' from fred_bench.base"

# --- pgbench scripts ----------------------------------------------------------------------
T_EXPR="(select jsonb_set(b.t, '{0,text}', to_jsonb(:r::text)) from fred_bench.base b)"
EV_EXPR="replace(e.tpl, '@N@', :n::text)::jsonb"

cat >"$WORK/persist_fn.sql" <<SQL
\set r random(1, 2000000000)
select public.fred_persist_transcript('bench-' || :client_id, $T_EXPR);
SQL
cat >"$WORK/persist_raw.sql" <<SQL
\set r random(1, 2000000000)
update fred.coaching_sessions set transcript_json = $T_EXPR, transcript_entries = 500, updated_at = now() where room_name = 'bench-' || :client_id;
SQL
# wire: the transcript as text from the client. Entry 0's text is the random number, so the
# literal is split around it: '[{"text": "' || :r || '", ...'.
W_TAIL=$(psql -X -Atd $EXT_DB -c "select replace(substr(t::text, strpos(t::text, '\", \"speaker')), '''', '''''') from (select jsonb_set(t, '{0,text}', '\"\"') as t from fred_bench.base) b")
W_EXPR="('[{\"text\": \"' || :r || '$W_TAIL')::jsonb"
cat >"$WORK/wire_fn.sql" <<SQL
\set r random(1, 2000000000)
select public.fred_persist_transcript('bench-' || :client_id, $W_EXPR);
SQL
cat >"$WORK/wire_raw.sql" <<SQL
\set r random(1, 2000000000)
update fred.coaching_sessions set transcript_json = $W_EXPR, transcript_entries = 500, updated_at = now() where room_name = 'bench-' || :client_id;
SQL
cat >"$WORK/noop_fn.sql" <<SQL
select public.fred_persist_transcript('bench-' || :client_id, (select b.t from fred_bench.base b));
SQL
cat >"$WORK/noop_raw.sql" <<SQL
update fred.coaching_sessions set transcript_json = (select b.t from fred_bench.base b), transcript_entries = 500, updated_at = now() where room_name = 'bench-' || :client_id;
SQL

{ echo "BEGIN;"; echo "select nextval('fred_bench.n') as n \\gset"
  for k in 1 2 3 4 5 6 7 8; do
    echo "select fred.apply_livekit_event($EV_EXPR) from fred_bench.events e where e.seq = $k;"
  done
  echo "COMMIT;"; } >"$WORK/events_fn.sql"
{ echo "BEGIN;"; echo "select nextval('fred_bench.n') as n \\gset"
  for k in 1 2 3 4 5 6 7 8; do
    echo "with ev as (select $EV_EXPR as j from fred_bench.events e where e.seq = $k), led as (insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome) select j ->> 'id', j ->> 'event', j #>> '{room,sid}', j #>> '{room,name}', now(), 'applied' from ev) insert into fred.coaching_sessions as s (room_name, room_sid, last_event_at, metadata) select j #>> '{room,name}', j #>> '{room,sid}', now(), j from ev on conflict (room_sid) do update set last_event_at = now(), metadata = excluded.metadata, updated_at = now();"
  done
  echo "COMMIT;"; } >"$WORK/events_raw.sql"

for c in "E:select fred.check_transcript($T_EXPR);" \
         "S:select fred.check_transcript($T_EXPR);" \
         "R:select jsonb_array_length($T_EXPR);" \
         "X:select fred.check_transcript_text(($T_EXPR)::text);" \
         "T:select octet_length(($T_EXPR)::text);" \
         "D:select fred.transcript_digest($T_EXPR);"; do
  printf '\\set r random(1, 2000000000)\n%s\n' "${c#*:}" >"$WORK/check_${c%%:*}.sql"
done

# --- measuring ----------------------------------------------------------------------------
reset_db() {  # db workload
  psql_q -d "$1" >/dev/null <<SQL
truncate fred.coaching_sessions, fred.livekit_events, fred.egress_claims, fred.job_runs;
$( [ "$2" != events ] && echo "insert into fred.coaching_sessions (room_name) select 'bench-' || g from generate_series(0, $((CLIENTS - 1))) g;" )
checkpoint;
SQL
}

sanity() {  # db workload -> a short description of what the run left behind
  case $2 in
    persist|wire|noop) psql -X -Atd "$1" -c "select 'rows=' || count(*) || ' entries=' || min(transcript_entries) from fred.coaching_sessions" ;;
    events)  psql -X -Atd "$1" -c "select 'ledger=' || (select count(*) from fred.livekit_events) || ' sessions=' || count(*) || ' uploaded=' || count(*) filter (where recording_status = 'uploaded') from fred.coaching_sessions" ;;
    *)       echo "-" ;;
  esac
}

measure() {  # workload case round db script secs sync
  local w=$1 c=$2 r=$3 db=$4 script=$5 secs=$6 sync=$7 out tps lat fail
  [ "$w" = check ] || reset_db "$db" "$w"
  out="$WORK/pgbench_${w}_${c}_${r}_${sync}.log"
  local perf_secs=0 perf_pid=
  if [ -n "$PERF" ] && [ "$w" != check ] && [ "$secs" -ge 3 ]; then
    # The middle of the run: one second after the start, until one second before the end; -P 1
    # gives pgbench's per-second progress, from which the transactions of that window are read.
    perf_secs=$((secs - 2))
    (sleep 1; exec perf record -a -g -o "$WORK/perf.data" -- sleep "$perf_secs" >/dev/null 2>&1) &
    perf_pid=$!
  fi
  if ! PGOPTIONS="$PGOPTIONS -c synchronous_commit=$sync" \
       pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$secs" ${perf_pid:+-P 1} -f "$script" "$db" >"$out" 2>&1; then
    echo "pgbench failed ($w $c round $r sync $sync):"; cat "$out"; exit 1
  fi
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    local txns
    txns=$(awk -v a=1 -v b=$((secs - 1)) '/^progress: /{t = $2 + 0; if (t > a && t <= b) n += $4}
                                          END {print n + 0}' "$out")
    echo "profile: $w $c sync=$sync, ${perf_secs} s, $txns transactions (tps under perf: $(awk '/^tps = /{print $3; exit}' "$out"))"
    perf script -F comm,ip,sym,dso -i "$WORK/perf.data" 2>/dev/null | python3 "$ROOT/sql/bench/perf_costs.py" "$txns"
    if [ -n "${BENCH_PERF_KEEP:-}" ]; then  # a directory: keep the recording for `perf report`
      mkdir -p "$BENCH_PERF_KEEP" && mv "$WORK/perf.data" "$BENCH_PERF_KEEP/perf_${w}_${c}_${sync}.data"
    fi
    rm -f "$WORK/perf.data"
  fi
  tps=$(awk '/^tps = /{print $3; exit}' "$out")
  lat=$(awk '/^latency average = /{print $4; exit}' "$out")
  fail=$(awk '/^number of failed transactions: /{print $5; exit}' "$out")
  printf '%-8s %s sync=%-3s round %s  tps=%10.1f  lat=%8.3f ms  txns=%s failed=%s  %s\n' \
    "$w" "$c" "$sync" "$r" "$tps" "$lat" "$(awk '/^number of transactions actually processed: /{print $6; exit}' "$out")" \
    "${fail:-0}" "$(sanity "$db" "$w")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$r" "$tps" "$lat" "$sync" >>"$RESULTS"
}

echo "## raw numbers"
for r in $(seq 1 "$ROUNDS"); do
  for sync in $SYNC_MODES; do
    for w in $WORKLOADS; do
      if [ "$w" = events ]; then fn=events_fn; raw=events_raw; else fn=${w}_fn; raw=${w}_raw; fi
      [ "$w" = persist ] && { fn=persist_fn; raw=persist_raw; }
      measure "$w" E "$r" $EXT_DB "$WORK/$fn.sql"  "$SECS" "$sync"
      measure "$w" S "$r" $SQL_DB "$WORK/$fn.sql"  "$SECS" "$sync"
      measure "$w" R "$r" $EXT_DB "$WORK/$raw.sql" "$SECS" "$sync"
    done
  done
done
for r in $(seq 1 "$ROUNDS"); do
  measure check E "$r" $EXT_DB "$WORK/check_E.sql" "$MICRO_SECS" off
  measure check S "$r" $SQL_DB "$WORK/check_S.sql" "$MICRO_SECS" off
  measure check R "$r" $EXT_DB "$WORK/check_R.sql" "$MICRO_SECS" off
  measure check X "$r" $EXT_DB "$WORK/check_X.sql" "$MICRO_SECS" off
  measure check T "$r" $EXT_DB "$WORK/check_T.sql" "$MICRO_SECS" off
  measure check D "$r" $EXT_DB "$WORK/check_D.sql" "$MICRO_SECS" off
done

# --- report -------------------------------------------------------------------------------
median() {  # workload case column(4 = tps, 5 = latency) sync
  awk -F'\t' -v w="$1" -v c="$2" -v k="$3" -v y="$4" '$1 == w && $2 == c && $6 == y {print $k}' "$RESULTS" | sort -g |
    awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
rounds() {  # workload case sync -> r1/r2/r3 tps
  awk -F'\t' -v w="$1" -v c="$2" -v y="$3" '$1 == w && $2 == c && $6 == y {printf "%s%.0f", (n++ ? "/" : ""), $4}' "$RESULTS"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo
echo "load after:  $(uptime)"
echo
echo "## median tps (rounds in parentheses)"
for sync in $SYNC_MODES; do
  echo
  echo "synchronous_commit = $sync"
  echo
  echo "| workload | E ext | S sql | R raw | E/S | E/R |"
  echo "|---|---:|---:|---:|---:|---:|"
  for w in $WORKLOADS; do
    e=$(median $w E 4 $sync); s=$(median $w S 4 $sync); r=$(median $w R 4 $sync)
    printf '| %s | %.0f (%s) | %.0f (%s) | %.0f (%s) | %s | %s |\n' "$w" \
      "$e" "$(rounds $w E $sync)" "$s" "$(rounds $w S $sync)" "$r" "$(rounds $w R $sync)" "$(ratio "$e" "$s")" "$(ratio "$e" "$r")"
  done
done
echo
echo "| check (micro) | median tps | median latency ms | vs S |"
echo "|---|---:|---:|---:|"
s=$(median check S 4 off)
for c in "E:E fred.check_transcript (ext, Rust on the binary)" "S:S fred.check_transcript (sql, PL/pgSQL)" \
         "R:R jsonb_array_length (build t only)" "X:X fred.check_transcript_text(t::text) (0.1.0's Rust, on text)" \
         "T:T octet_length(t::text) (jsonb->text only)" "D:D fred.transcript_digest(t) (ext, SHA-256 of the binary)"; do
  k=${c%%:*}; v=$(median check "$k" 4 off)
  printf '| %s | %.0f | %.3f | %s |\n' "${c#*:}" "$v" "$(median check "$k" 5 off)" "$(ratio "$v" "$s")"
done
