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
# Each test on a database of its own, cloned from a per-run template (.ci/syncd-tests.sh).
# The extension install three times in a row (determinism), the SQL install once on
# PostgreSQL 15 and once on PostgreSQL 17.
t0=$(date +%s)
bash .ci/syncd-tests.sh ext "${FRED_SYNCD_RUNS:-3}"
bash .ci/syncd-tests.sh sql 1
bash .ci/syncd-tests.sh sql17 1
echo "== syncd: all flavours green in $(( $(date +%s) - t0 )) s"
