#!/usr/bin/env bash
# Webhook benchmark (issue: syncd receiver). One run, one machine, interleaved A B A B A B:
#   A: pgbench calling fred.apply_livekit_event with unique LiveKit-shaped events (16 clients,
#      synchronous_commit on) — one event per transaction;
#   B: syncd (release) under the loadgen example at the same concurrency, counting events
#      persisted in Postgres per second within the window (rows, not answers).
# Prints the ratio B/A per pair and its median, p50/p99 ack latency and syncd's peak RSS, lost
# (acked ids missing from the ledger after the drain) and duplicates (ledger inserts of one id,
# counted by a statement-level audit trigger that both sides pay for). Then one more syncd run,
# S, with STALLED (500) unsigned uploads held open for the whole window (issue 12's attack):
# its ack p50/p99 and peak RSS sit next to the normal runs'.
# Loopback only; bounded by SECS per side. SYNCD_DRAIN_LANES is passed through (syncd's default: 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-16}
SECS=${SECS:-20}
export PGHOST=127.0.0.1 PGPORT=5432
# pgbench without TLS, as syncd connects: the two sides run the same SQL over the same wire.
export PGSSLMODE=disable
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
DB=fred_bench_webhook

cargo build --release -p syncd --bin syncd --example loadgen
"${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" -c "create database $DB"
"${PSQL[@]}" -d $DB -c "create extension fred" -c "create sequence fred_bench_seq"
"${PSQL[@]}" -d $DB <<'SQL'
create table public.bench_ledger_audit (event_id text not null);
create function public.bench_ledger_audit() returns trigger language plpgsql as $$
begin
  insert into public.bench_ledger_audit select event_id from new_rows;
  return null;
end $$;
create trigger bench_ledger_audit after insert on fred.livekit_events
  referencing new table as new_rows for each statement execute function public.bench_ledger_audit();
SQL
WORK=$(mktemp -d /var/tmp/fred-bench.XXXXXX)
trap 'kill "$(cat "$WORK/syncd.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"; "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null' EXIT
cat > "$WORK/a.sql" <<'SQL'
select fred.apply_livekit_event(('{"event":"participant_joined","id":"EV_pg' || nextval('fred_bench_seq') || '","createdAt":"1795510802","room":{"sid":"RM_bench' || :client_id || '","name":"bench-' || :client_id || '"},"participant":{"sid":"PA_x","identity":"user-x","joinedAt":"1795510802"}}')::jsonb);
SQL

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export LIVEKIT_API_KEY=APIbench LIVEKIT_API_SECRET=bench-secret-0123456789-0123456789
export SYNCD_LISTEN=127.0.0.1:18788 SYNCD_RECONCILE_CRON=off SYNCD_STALE_CRON=off SYNCD_RETENTION_CRON=off RUST_LOG=warn

if curl -fsS "http://$SYNCD_LISTEN/healthz" >/dev/null 2>&1; then
  echo "webhook.sh: something already answers on $SYNCD_LISTEN (another run?)" >&2
  exit 1
fi
reset_db() { "${PSQL[@]}" -d $DB -c "truncate fred.livekit_events, fred.coaching_sessions, public.bench_ledger_audit" -c "checkpoint"; }
STALLED=${STALLED:-500}
# One syncd run under the loadgen: writes "<peak RSS kB> <loadgen JSON>" to $WORK/run (run in
# this shell, not a subshell, so a failure stops the script and the trap stops syncd).
run_syncd() {
  local tag=$1 stalled=$2
  reset_db >/dev/null
  rm -rf "$WORK/spool"
  SYNCD_SPOOL_DIR="$WORK/spool" ./target/release/syncd serve 2>"$WORK/syncd.log" &
  SYNCD=$!
  echo $SYNCD > "$WORK/syncd.pid"
  for _ in $(seq 1 100); do curl -fsS "http://$SYNCD_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  local b
  b=$(STALLED=$stalled ./target/release/examples/loadgen "http://$SYNCD_LISTEN" "$DATABASE_URL" "$C" "$SECS" "$tag")
  local rss
  rss=$(awk '/VmHWM/ {print $2}' /proc/$SYNCD/status)
  kill -TERM $SYNCD; wait $SYNCD || true
  rm -f "$WORK/syncd.pid"
  echo "$rss $b" > "$WORK/run"
}

echo "date: $(date -u +%FT%TZ)  cores: $(nproc)  cpu: $(awk -F: '/model name/ && !n {print $2; n=1}' /proc/cpuinfo | xargs)  lanes: ${SYNCD_DRAIN_LANES:-2}"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# awk reads to the end (no early exit), so pipefail never sees a SIGPIPE.
fsync_rate() { /usr/lib/postgresql/15/bin/pg_test_fsync -s 1 -f "$WORK/fsync.test" 2>/dev/null | awk '$1 == "fdatasync" && $2 ~ /^[0-9.]+$/ && !n {print $2; n=1}'; }
FSYNC_BEFORE=$(fsync_rate)
echo "pg_test_fsync fdatasync ops/s before: $FSYNC_BEFORE"
RESULTS="$WORK/results"
: > "$RESULTS"
for i in 1 2 3; do
  reset_db
  A=$(pgbench -n -M prepared -c "$C" -j 2 -T "$SECS" -f "$WORK/a.sql" $DB 2>/dev/null | awk '/^tps/ && !n {print $3; n=1}')
  run_syncd "run$i" 0
  read -r RSS B < "$WORK/run"
  echo "pair $i: pgbench_tps=$A syncd=$B peak_rss_kb=$RSS"
  echo "$A $RSS $B" >> "$RESULTS"
done
run_syncd stalled "$STALLED"
read -r SRSS SB < "$WORK/run"
echo "stalled ($STALLED unsigned uploads held): syncd=$SB peak_rss_kb=$SRSS"
echo "$SRSS $SB" > "$WORK/stalled"
FSYNC_AFTER=$(fsync_rate)
echo "pg_test_fsync fdatasync ops/s after: $FSYNC_AFTER"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" "$WORK/stalled" <<'PY'
import json, sys, statistics
rows = []
for line in open(sys.argv[1]):
    a, rss, b = line.split(" ", 2)
    rows.append((float(a), int(rss), json.loads(b)))
srss, sb = open(sys.argv[2]).read().split(" ", 1)
srss, sb = int(srss), json.loads(sb)
ratios = [b["persisted_per_s"] / a for a, _, b in rows]
print("| run | pgbench tps (A) | syncd persisted/s (B) | B/A | acked/s | ack p50 ms | ack p99 ms | non-2xx | lost | duplicates | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for i, (a, rss, b) in enumerate(rows, 1):
    print(f"| pair {i} | {a:.0f} | {b['persisted_per_s']:.0f} | {b['persisted_per_s']/a:.2f} | {b['acked_per_s']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['non2xx']} | {b['lost']} | {b['duplicates']} | {rss/1024:.1f} |")
b = sb
print(f"| {b['stalled']} stalled unsigned uploads | – | {b['persisted_per_s']:.0f} | – | {b['acked_per_s']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['non2xx']} | {b['lost']} | {b['duplicates']} | {srss/1024:.1f} |")
print(f"\nmedian B/A = {statistics.median(ratios):.2f}; peak RSS max = {max(r for _, r, _ in rows)/1024:.1f} MB (normal), {srss/1024:.1f} MB (stalled)")
PY
