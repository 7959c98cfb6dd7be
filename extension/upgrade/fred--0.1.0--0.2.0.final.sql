-- The extension's own definitions that replace a shared PL/pgSQL one, run after the shared
-- migrations (extension/build-upgrade.sh appends this file to fred--0.1.0--0.2.0.sql; a fresh
-- install runs it last, extension/src/lib.rs). CREATE OR REPLACE keeps the function's oid, so
-- its triggers, and its grants.

-- Change events (20261201000005_fred_events.sql §1), in Rust: extension/src/change_events.rs.
create or replace function fred.coaching_sessions_events() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'coaching_sessions_events_wrapper';

-- The ledger's tombstone (20261201000005_fred_events.sql, "Tombstones"), in Rust:
-- extension/src/tombstone.rs.
create or replace function fred.livekit_events_tombstone() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'livekit_events_tombstone_wrapper';

-- The table's tombstone (20261201000005_fred_events.sql, "Tombstones"), in Rust, with the same
-- lookup: extension/src/tombstone.rs.
create or replace function fred.coaching_sessions_tombstone() returns trigger
language c security definer
set search_path = pg_catalog, pg_temp
as 'MODULE_PATHNAME', 'coaching_sessions_tombstone_wrapper';
