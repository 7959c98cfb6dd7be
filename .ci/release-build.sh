#!/usr/bin/env bash
# Builds a released version of the extension from its commit (sql/releases) and caches the files
# `cargo pgrx package` makes, keyed by commit, so later runs only copy them.
#   .ci/release-build.sh VERSION   prints the cache directory, which holds lib/fred.so and
#                                  extension/fred.control, extension/fred--VERSION.sql
# Environment: FRED_RELEASE_CACHE (default ~/.cache/fred/releases), PG_CONFIG.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=${1:?usage: release-build.sh VERSION}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
commit=$(awk -v v="$VERSION" '$1 == v { print $2 }' sql/releases)
[ -n "$commit" ] && [ "$commit" != - ] || { echo "release-build: $VERSION is not a released version in sql/releases" >&2; exit 1; }
git cat-file -e "$commit^{commit}" 2>/dev/null || {
  echo "release-build: commit $commit of $VERSION is not in this clone (a shallow clone? fetch the full history)" >&2; exit 1; }
CACHE=${FRED_RELEASE_CACHE:-$HOME/.cache/fred/releases}/$VERSION-$commit
if [ -f "$CACHE/ok" ]; then echo "$CACHE"; exit 0; fi

echo "release-build: building fred $VERSION from $commit (cached in $CACHE)" >&2
src=$(mktemp -d "${TMPDIR:-/tmp}/fred-release.XXXXXX")
trap 'rm -rf "$src"' EXIT
git archive "$commit" | tar -x -C "$src"
out=$src/package
# The checkout's target directory: the dependencies are shared, only fred itself is rebuilt.
(cd "$src" && CARGO_TARGET_DIR=$ROOT/target cargo pgrx package -p fred --pg-config "$PG_CONFIG" --out-dir "$out" </dev/null) >&2
rm -rf "$CACHE.tmp"; mkdir -p "$CACHE.tmp/lib" "$CACHE.tmp/extension"
cp "$(find "$out" -name fred.so | head -1)" "$CACHE.tmp/lib/"
cp "$(find "$out" -name fred.control | head -1)" "$CACHE.tmp/extension/"
cp "$(find "$out" -name "fred--$VERSION.sql" | head -1)" "$CACHE.tmp/extension/"
touch "$CACHE.tmp/ok"
rm -rf "$CACHE"; mv "$CACHE.tmp" "$CACHE"
echo "$CACHE"
