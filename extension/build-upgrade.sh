#!/usr/bin/env bash
# Builds the extension's upgrade scripts, extension/sql/fred--OLD--NEW.sql, from sql/releases:
# the optional Rust-side part extension/upgrade/fred--OLD--NEW.sql (functions the compiled engine
# adds or changes), then the shared migration files the new release added, in order, then the
# optional extension/upgrade/fred--OLD--NEW.final.sql (the extension's replacements of shared
# PL/pgSQL definitions; a fresh install runs it last too, extension/src/lib.rs). One set of files
# thus makes both installs, and they cannot drift.
#   --check: change nothing; fail when a committed script differs from what would be built.
set -euo pipefail
cd "$(dirname "$0")/.."
check=${1:-}
prev=
status=0
while read -r version _commit files; do
  case $version in ''|'#'*) continue ;; esac
  if [ -n "$prev" ]; then
    out=extension/sql/fred--$prev--$version.sql
    tmp=$(mktemp)
    {
      echo "-- fred $prev -> $version. Built by extension/build-upgrade.sh from sql/releases: do not edit."
      echo "\\echo Use \"ALTER EXTENSION fred UPDATE TO '$version'\" to load this file. \\quit"
      if [ -f "extension/upgrade/fred--$prev--$version.sql" ]; then
        echo
        echo "-- extension/upgrade/fred--$prev--$version.sql"
        cat "extension/upgrade/fred--$prev--$version.sql"
      fi
      for f in $files; do
        case $f in *_fred_engine.sql|*_fred_storage.sql) continue ;; esac
        echo
        echo "-- sql/supabase/migrations/$f"
        cat "sql/supabase/migrations/$f"
      done
      if [ -f "extension/upgrade/fred--$prev--$version.final.sql" ]; then
        echo
        echo "-- extension/upgrade/fred--$prev--$version.final.sql"
        cat "extension/upgrade/fred--$prev--$version.final.sql"
      fi
    } > "$tmp"
    if [ "$check" = --check ]; then
      if ! cmp -s "$tmp" "$out"; then
        echo "build-upgrade: $out is not what sql/releases builds; run extension/build-upgrade.sh" >&2
        status=1
      fi
      rm -f "$tmp"
    else
      mv "$tmp" "$out"
      echo "build-upgrade: wrote $out"
    fi
  fi
  prev=$version
done < sql/releases
exit $status
