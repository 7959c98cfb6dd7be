#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine for fred: system packages,
# cargo-pgrx 0.18.0, pgrx config, a sudo shim for pgrx's --runas, and a running PostgreSQL 15.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

pkgs=(postgresql-server-dev-15 libclang-dev pkg-config libssl-dev
      postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # apt may upgrade the server packages; restart so the running binary matches.
  pg_ctlcluster --skip-systemctl-redirect 15 main restart || true
fi

# pgrx-tests runs initdb/pg_ctl through `sudo -u postgres`; root needs no password,
# so a shim is enough when sudo is not installed.
if ! command -v sudo >/dev/null 2>&1; then
  cat > /usr/local/bin/sudo <<'SH'
#!/bin/sh
if [ "$1" = "-u" ]; then u=$2; shift 2; exec runuser -u "$u" -- env "$@"; fi
if [ "$1" = "cp" ]; then shift; exec cp --remove-destination "$@"; fi
exec "$@"
SH
  chmod +x /usr/local/bin/sudo
fi

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx 0.18.0" ]; then
  echo "setup: installing cargo-pgrx 0.18.0 (about 6 minutes)"
  cargo install cargo-pgrx --version 0.18.0 --locked </dev/null
fi

# `cargo pgrx init` rewrites its config and forces a rebuild of pgrx-pg-sys: only run it when needed.
CFG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
grep -qsx "pg15 = \"$PG_CONFIG\"" "$CFG" || cargo pgrx init --pg15 "$PG_CONFIG" </dev/null

# Start the cluster if it is down.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect 15 main start
fi
echo "setup: ok"
