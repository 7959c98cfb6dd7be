#!/usr/bin/env bash
# Runs every test of fred on this machine, installing what is missing first:
#   1. formatting and lints;
#   2. the extension's Rust unit tests and #[pg_test]s (cargo pgrx test, in a throw-away cluster);
#   3. the shared pgTAP suite against both installs on PostgreSQL 15, and the SQL install on PostgreSQL 17;
#   4. the system of record: migration guard, upgrades from the previous release, backups;
#   5. the daemon's tests against the real local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
export PGHOST=127.0.0.1 PGPORT=5432

echo "== migrations only move forward"
bash .ci/migration-guard.sh

echo "== fmt and clippy"
cargo fmt --all --check
cargo clippy -p syncd --all-targets -- -D warnings
cargo clippy -p fred -- -D warnings

echo "== extension: unit tests and pg_tests"
PGDATA_BASE=$(mktemp -d "${TMPDIR:-/tmp}/fred-pgrx.XXXXXX")
chown postgres:postgres "$PGDATA_BASE"
trap 'rm -rf "$PGDATA_BASE"' EXIT
cargo pgrx test pg15 -p fred --runas postgres --pgdata "$PGDATA_BASE" </dev/null

echo "== extension: release install into PostgreSQL 15"
bash .ci/install-extension.sh

echo "== upgrades and backups"
bash .ci/lifecycle.sh

echo "== pgTAP: both installs"
bash .ci/pgtap.sh
bash .ci/pg17.sh

echo "== the two engines against each other, and concurrent writers"
bash .ci/differential.sh
bash .ci/isolation.sh

echo "== uninstall, on both installs"
bash .ci/uninstall.sh

echo "== deploy recipes and the adopter's examples"
bash .ci/deploy-check.sh
bash .ci/examples.sh

echo "== syncd"
psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres <<'SQL'
drop database if exists fred_syncd_test with (force);
create database fred_syncd_test;
SQL
psql -X -q -v ON_ERROR_STOP=1 -U postgres -d fred_syncd_test <<'SQL'
create extension fred;
-- The daemon runs as its least-privilege role in the tests too.
alter role fred_syncd login password 'fred_syncd';
SQL
export FRED_TEST_DATABASE_URL="postgres://fred_syncd:fred_syncd@127.0.0.1:5432/fred_syncd_test"
export FRED_TEST_ADMIN_URL="postgres://postgres@127.0.0.1:5432/fred_syncd_test"
cargo test -p syncd
