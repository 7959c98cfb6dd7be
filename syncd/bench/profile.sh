#!/usr/bin/env bash
# Where the CPU goes while syncd is under the webhook benchmark's load (issue 13): one syncd
# run under the loadgen (C clients, SECS seconds, loopback only), with a system-wide
# `perf record` of PERF_SECS seconds in the middle of the window. Prints the CPU share per
# process (postgres, syncd, loadgen, ...) and the top symbols of postgres and syncd.
# Needs perf (Debian's linux-perf) and the rights to profile the whole system.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-16}
SECS=${SECS:-20}
PERF_SECS=${PERF_SECS:-8}
export PGHOST=127.0.0.1 PGPORT=5432
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)
DB=fred_bench_profile
cargo build --release -p syncd --bin syncd --example loadgen
"${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" -c "create database $DB"
"${PSQL[@]}" -d $DB -c "create extension fred"
WORK=$(mktemp -d /var/tmp/fred-profile.XXXXXX)
trap 'kill "$(cat "$WORK/syncd.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"; "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null' EXIT
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export LIVEKIT_API_KEY=APIbench LIVEKIT_API_SECRET=bench-secret-0123456789-0123456789
export SYNCD_LISTEN=127.0.0.1:18789 SYNCD_RECONCILE_CRON=off SYNCD_STALE_CRON=off SYNCD_RETENTION_CRON=off RUST_LOG=warn
SYNCD_SPOOL_DIR="$WORK/spool" ./target/release/syncd serve 2>"$WORK/syncd.log" &
echo $! > "$WORK/syncd.pid"
for _ in $(seq 1 100); do curl -fsS "http://$SYNCD_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
./target/release/examples/loadgen "http://$SYNCD_LISTEN" "$DATABASE_URL" "$C" "$SECS" prof > "$WORK/loadgen.json" &
LOADGEN=$!
# The loadgen signs its bodies first (a few seconds): start the profile once requests flow.
for _ in $(seq 1 300); do
  n=$("${PSQL[@]}" -d $DB -Atc "select count(*) from fred.livekit_events")
  [ "$n" -gt 1000 ] && break
  sleep 0.1
done
perf record -a -g -F 499 -o "$WORK/perf.data" -- sleep "$PERF_SECS" 2>/dev/null
SYNCD_THREADS=$(ls /proc/"$(cat "$WORK/syncd.pid")"/task | xargs)
wait $LOADGEN
cat "$WORK/loadgen.json"
echo "== CPU share per process (all CPUs, $PERF_SECS s)"
echo "(syncd's threads: $SYNCD_THREADS; the other tokio-rt-worker threads are the loadgen's)"
perf report -i "$WORK/perf.data" --no-children --sort comm,pid --stdio -g none 2>/dev/null | awk '/^ +[0-9]/ && n++ < 15'
echo "== CPU share per process name"
perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | awk '/^ +[0-9]/ && n++ < 8'
echo "== top symbols in postgres"
perf report -i "$WORK/perf.data" --no-children --comm postgres --sort dso,sym --stdio -g none 2>/dev/null \
  | awk '/^ +[0-9]/ && n++ < 25'
echo "== top symbols in syncd"
perf report -i "$WORK/perf.data" --no-children --pid "$(cat "$WORK/syncd.pid")" --sort dso,sym --stdio -g none 2>/dev/null \
  | awk '/^ +[0-9]/ && n++ < 25'
