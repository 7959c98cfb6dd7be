#!/usr/bin/env bash
# NOTIFY fred_sessions (issue 14), received by a second session: one session LISTENs while another
# plays the sample call (as fred_syncd would apply it), confirms the recording, persists a summary
# and erases the session, each step committed. The listener must receive exactly the expected
# payloads, in order, with no transcript or summary text; a rolled-back change sends nothing.
# Usage: listen.sh DATABASE (an install with sql/tests/setup/helpers.sql). Uses PGHOST/PGPORT;
# connects as postgres. Leaves no session, tombstone or ledger row of its own behind.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DB=${1:?usage: listen.sh DATABASE}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$DB")
fail() { echo "listen[$DB]: FAIL: $*" >&2; exit 1; }
TAG=listen$$
OWNER=7c9e6679-7425-40de-944b-e07fc1f90ae7
W=$(mktemp -d "${TMPDIR:-/tmp}/fred-listen.XXXXXX")
cleanup() {
  "${PSQL[@]}" >/dev/null 2>&1 <<SQL || true
delete from fred.coaching_sessions where room_sid = 'RM_$TAG' or room_name = 'room-$TAG';
delete from fred.erasures e where not exists (select 1 from fred.coaching_sessions s where s.id = e.session_id) and e.key like 'room-$TAG/%';
delete from fred.erased_rooms where room_sid = 'RM_$TAG';
delete from fred.livekit_events where room_sid = 'RM_$TAG';
SQL
  rm -rf "$W"
}
trap cleanup EXIT

# Who can LISTEN at all: a LISTEN needs a session of its own, so a login role. Supabase's API
# roles cannot log in; their requests come through PostgREST, which listens for nobody.
n=$("${PSQL[@]}" -Atc "select count(*) from pg_roles where rolname in ('anon', 'authenticated') and rolcanlogin")
[ "$n" = 0 ] || fail "anon or authenticated can log in, so they could LISTEN"

# The listener: LISTEN, then wait (psql prints each notification after the command that was
# running when it arrived). application_name lets the writer wait until it listens.
psql -X -U postgres -d "$DB" -v ON_ERROR_STOP=1 >"$W/listener.out" 2>&1 <<SQL &
set application_name = 'fred-listen-$TAG';
listen fred_sessions;
select 'listening';
select pg_sleep(4);
select 'done';
SQL
listener=$!
for _ in $(seq 1 50); do
  n=$("${PSQL[@]}" -Atc "select count(*) from pg_stat_activity where application_name = 'fred-listen-$TAG' and query like '%pg_sleep%'")
  [ "$n" = 1 ] && break
  sleep 0.1
done
[ "$n" = 1 ] || fail "the listener did not start"

# The writer: each statement its own transaction.
"${PSQL[@]}" -At >"$W/writer.out" <<SQL
select fred.apply_livekit_event(fred_test.retag(body, '$TAG')) from fred_test.call_events order by seq;
begin;
select fred.record_verification(fred_test.session_of('$TAG'), false);
rollback;
select fred.record_verification(fred_test.session_of('$TAG'), true, 42);
select fred_test.rpc1('authenticated', '$OWNER', 'fred_persist_transcript',
  '{"room_name": "room-$TAG", "transcript": [{"role": "user", "text": "TRANSCRIPT-TEXT"}], "summary": "SUMMARY-TEXT"}');
select fred_test.rpc1('authenticated', '$OWNER', 'fred_persist_transcript',
  '{"room_name": "room-$TAG", "transcript": [{"role": "user", "text": "TRANSCRIPT-TEXT"}], "summary": "SUMMARY-TEXT"}');
select 'session ' || fred_test.session_of('$TAG');
select fred_test.rpc1('authenticated', '$OWNER', 'fred_delete_session', jsonb_build_object('session_id', fred_test.session_of('$TAG')));
SQL
wait "$listener" || fail "the listener failed: $(cat "$W/listener.out")"
id=$(sed -n 's/^session //p' "$W/writer.out")
[ -n "$id" ] || fail "no session id from the writer: $(cat "$W/writer.out")"

sed -n 's/^Asynchronous notification "fred_sessions" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' \
  "$W/listener.out" > "$W/got"
R=room-$TAG
cat > "$W/want" <<EOF2
{"status": "active", "changed": ["created"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": null}
{"status": "active", "changed": ["recording_status"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": "starting"}
{"status": "active", "changed": ["recording_status"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": "recording"}
{"status": "active", "changed": ["recording_status"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": "uploaded"}
{"status": "ended", "changed": ["status"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": "uploaded"}
{"status": "ended", "changed": ["recording_status"], "room_name": "$R", "session_id": "$id", "has_summary": false, "recording_status": "ready"}
{"status": "ended", "changed": ["summary"], "room_name": "$R", "session_id": "$id", "has_summary": true, "recording_status": "ready"}
{"status": null, "changed": ["erased"], "room_name": null, "session_id": "$id", "has_summary": false, "recording_status": null}
EOF2
if ! diff -u "$W/want" "$W/got" >"$W/diff"; then
  echo "listen[$DB]: FAIL: the payloads received differ (- expected, + received):" >&2
  cat "$W/diff" >&2
  exit 1
fi
grep -q 'TEXT' "$W/got" && fail "a payload carries transcript or summary text"
echo "listen[$DB]: ok: a second session received the $(wc -l < "$W/got") expected payloads on fred_sessions, in order (a rolled-back change and a repeated persist sent none)"
