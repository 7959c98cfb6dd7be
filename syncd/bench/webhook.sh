#!/usr/bin/env bash
# Webhook benchmark (issue: syncd receiver). One run, one machine, interleaved A B A B A B:
#   A: pgbench calling fred.apply_livekit_event with unique LiveKit-shaped events (16 clients,
#      synchronous_commit on) — one event per transaction;
#   B: syncd (release) under the loadgen example at the same concurrency, counting events
#      persisted in Postgres per second within the window (rows, not answers).
# Prints the ratio B/A per pair and its median, p50/p99 ack latency and syncd's peak RSS.
# Loopback only; bounded by SECS per side.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-16}
SECS=${SECS:-20}
export PGHOST=127.0.0.1 PGPORT=5432
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
DB=fred_bench_webhook

cargo build --release -p syncd --bin syncd --example loadgen
"${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" -c "create database $DB"
"${PSQL[@]}" -d $DB -c "create extension fred" -c "create sequence fred_bench_seq"
WORK=$(mktemp -d /var/tmp/fred-bench.XXXXXX)
trap 'kill $SYNCD 2>/dev/null || true; rm -rf "$WORK"; "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null' EXIT
SYNCD=
cat > "$WORK/a.sql" <<'SQL'
select fred.apply_livekit_event(('{"event":"participant_joined","id":"EV_pg' || nextval('fred_bench_seq') || '","createdAt":"1795510802","room":{"sid":"RM_bench' || :client_id || '","name":"bench-' || :client_id || '"},"participant":{"sid":"PA_x","identity":"user-x","joinedAt":"1795510802"}}')::jsonb);
SQL

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export LIVEKIT_API_KEY=APIbench LIVEKIT_API_SECRET=bench-secret-0123456789-0123456789
export SYNCD_LISTEN=127.0.0.1:18788 SYNCD_RECONCILE_CRON=off SYNCD_STALE_CRON=off SYNCD_RETENTION_CRON=off RUST_LOG=warn

reset_db() { "${PSQL[@]}" -d $DB -c "truncate fred.livekit_events, fred.coaching_sessions" -c "checkpoint"; }

echo "date: $(date -u +%FT%TZ)  cores: $(nproc)  cpu: $(awk -F: '/model name/ && !n {print $2; n=1}' /proc/cpuinfo | xargs)"
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
  reset_db
  rm -rf "$WORK/spool"
  SYNCD_SPOOL_DIR="$WORK/spool" ./target/release/syncd serve 2>"$WORK/syncd.log" &
  SYNCD=$!
  for _ in $(seq 1 100); do curl -fsS "http://$SYNCD_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  B=$(./target/release/examples/loadgen "http://$SYNCD_LISTEN" "$DATABASE_URL" "$C" "$SECS" "run$i")
  RSS=$(awk '/VmHWM/ {print $2}' /proc/$SYNCD/status)
  kill -TERM $SYNCD; wait $SYNCD || true
  SYNCD=
  echo "pair $i: pgbench_tps=$A syncd=$B peak_rss_kb=$RSS"
  echo "$A $RSS $B" >> "$RESULTS"
done
FSYNC_AFTER=$(fsync_rate)
echo "pg_test_fsync fdatasync ops/s after: $FSYNC_AFTER"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" <<'PY'
import json, sys, statistics
rows = []
for line in open(sys.argv[1]):
    a, rss, b = line.split(" ", 2)
    b = json.loads(b)
    rows.append((float(a), int(rss), b))
ratios = [b["persisted_per_s"] / a for a, _, b in rows]
print("| pair | pgbench tps (A) | syncd persisted/s (B) | B/A | acked/s | p50 ms | p99 ms | non-2xx | lost after drain | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for i, (a, rss, b) in enumerate(rows, 1):
    lost = b["acked"] - b["settled"] if b["settled"] < b["acked"] else 0
    print(f"| {i} | {a:.0f} | {b['persisted_per_s']:.0f} | {b['persisted_per_s']/a:.2f} | {b['acked_per_s']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['non2xx']} | {lost} | {rss/1024:.1f} |")
print(f"\nmedian B/A = {statistics.median(ratios):.2f}; peak RSS max = {max(r for _, r, _ in rows)/1024:.1f} MB")
PY
