#!/usr/bin/env bash
# Builds the extension in release mode and installs it into the local PostgreSQL 15, replacing any
# debug build that `cargo pgrx test` left there, then restarts the cluster so backends load it.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
cargo pgrx install --release -p fred --pg-config "$PG_CONFIG" </dev/null
pg_ctlcluster --skip-systemctl-redirect 15 main restart
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
echo "PostgreSQL did not come back after the restart" >&2
exit 1
