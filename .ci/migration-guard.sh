#!/usr/bin/env bash
# Migrations only move forward: a released file never changes, every file belongs to a release
# in sql/releases, and the extension's upgrade scripts are exactly what those files build.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
(cd sql/supabase/migrations && sha256sum --quiet -c ../../released.sha256) || {
  echo "migration-guard: a released migration file changed (sql/released.sha256); add a new file instead" >&2
  status=1
}
listed=$(awk '!/^#/ && NF > 2 { for (i = 3; i <= NF; i++) print $i }' sql/releases | sort)
present=$(cd sql/supabase/migrations && ls *.sql | sort)
if [ "$listed" != "$present" ]; then
  echo "migration-guard: sql/releases and sql/supabase/migrations disagree:" >&2
  diff <(echo "$listed") <(echo "$present") >&2 || true
  status=1
fi
# Every file of a released version is frozen by a hash.
released=$(awk '!/^#/ && NF > 2 && $2 != "-" { for (i = 3; i <= NF; i++) print $i }' sql/releases | sort)
hashed=$(awk '{ print $2 }' sql/released.sha256 | sort)
if [ "$released" != "$hashed" ]; then
  echo "migration-guard: every file of a released version needs its hash in sql/released.sha256" >&2
  status=1
fi
bash extension/build-upgrade.sh --check || status=1
[ $status = 0 ] && echo "migration-guard: ok"
exit $status
