#!/usr/bin/env bash
# The main job, on this machine: install what is needed, build and install the fred extension
# into the local PostgreSQL 15, create the database `fred_demo`, start syncd against it, replay a
# signed sample call (duplicated and out of order), persist the coach's outcome through the SQL
# API, and print the resulting session row. syncd is stopped at the end (SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
bash .ci/install-extension.sh
export PGHOST=127.0.0.1 PGPORT=5432
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres)

"${PSQL[@]}" -d postgres <<'SQL'
drop database if exists fred_demo with (force);
create database fred_demo;
SQL
"${PSQL[@]}" -d fred_demo <<'SQL'
create extension fred;
-- syncd's least-privilege login (created NOLOGIN by the install).
alter role fred_syncd login password 'fred_syncd';
alter role fred_syncd set statement_timeout = '15s';
alter role fred_syncd set lock_timeout = '5s';
SQL

cargo build --release -p syncd --bin syncd --example replay
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fred-demo.XXXXXX")
export DATABASE_URL="postgres://fred_syncd:fred_syncd@127.0.0.1:5432/fred_demo"
export LIVEKIT_API_KEY=APIdemokey LIVEKIT_API_SECRET=demo-secret-change-me-in-production
export SYNCD_LISTEN=127.0.0.1:18787 SYNCD_SPOOL_DIR="$WORK/spool" RUST_LOG=${RUST_LOG:-info}
./target/release/syncd check
./target/release/syncd serve 2>"$WORK/syncd.log" &
SYNCD=$!
trap 'kill -TERM $SYNCD 2>/dev/null; wait $SYNCD 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -fsS "http://$SYNCD_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== replaying the sample call into syncd (signed as LiveKit signs it; duplicated and out of order)"
./target/release/examples/replay "http://$SYNCD_LISTEN" syncd/tests/livekit-call.jsonl --shuffle

for _ in $(seq 1 100); do
  n=$("${PSQL[@]}" -d fred_demo -tA -c "select count(*) from fred.livekit_events")
  [ "$n" -ge 8 ] && break
  sleep 0.1
done

echo "== the coach's outcome, through the SQL API"
"${PSQL[@]}" -d fred_demo <<'SQL'
select fred_persist_transcript(
  room_name    => 'coaching-demo-1',
  transcript   => '[{"speaker": "coach", "text": "What would make this week a win?"},
                    {"speaker": "user",  "text": "Shipping the onboarding flow."},
                    {"speaker": "coach", "text": "What is the first step tomorrow?"}]',
  summary      => 'Set a weekly goal: ship onboarding; first step is the design review.',
  decisions    => '["Ship onboarding this week"]',
  next_actions => '["Book the design review for Tuesday"]',
  call_type    => 'weekly-checkin') as session_id;
SQL
echo "== the session row"
"${PSQL[@]}" -d fred_demo -x -c "select id, room_name, room_sid, user_id, status, started_at, ended_at, duration_seconds,
  call_type, transcript_entries, summary, decisions, next_actions, egress_id, recording_status, recording_url,
  recording_bucket, recording_key, recording_bytes, recording_duration_ms from fred.coaching_sessions"
echo "== syncd metrics"
curl -fsS "http://$SYNCD_LISTEN/metrics" | grep -E '^syncd_(webhooks|events)_' || true
