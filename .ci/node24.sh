#!/usr/bin/env bash
# The second test pass: the whole vitest suite again, on Node 24.
#
#   bash .ci/node24.sh <report.json> [vitest filters...]
#
# Node 24 comes from the npm registry (the `node` package ships the official binary), installed
# once into $NODE24_PREFIX. Vitest is started by that node, so its test workers (forked with
# process.execPath) and anything the tests spawn through PATH run on Node 24 too.
# Workspace packages whose native addons were built for another Node ABI and cannot load here are
# left out with a reason (.ci/native-probe.mjs), written to <report.json>.skipped.json for
# .ci/summary.mjs. Exits with vitest's status.
set -uo pipefail
cd "$(dirname "$0")/.."
report="${1:?usage: .ci/node24.sh <report.json> [vitest filters...]}"
shift
NODE24_VERSION="${NODE24_VERSION:-24.21.0}"
NODE24_PREFIX="${NODE24_PREFIX:-/opt/node24}"
node24="$NODE24_PREFIX/node_modules/node/bin/node"

if [ "$("$node24" -v 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  echo "installing node@$NODE24_VERSION into $NODE24_PREFIX (npm registry)"
  npm i --prefix "$NODE24_PREFIX" --no-audit --no-fund --loglevel=error "node@$NODE24_VERSION" || exit 1
fi
echo "node: $("$node24" -v) ($node24)"

rm -f "$report" "$report.unhandled.json" "$report.skipped.json"
skipped="$("$node24" .ci/native-probe.mjs .)" || exit 1
echo "$skipped" >"$report.skipped.json"

filters=("$@")
if [ "$skipped" != "[]" ]; then
  # Vitest's --exclude does not reach projects: name the packages to run instead.
  "$node24" -e 'for (const s of JSON.parse(process.argv[1])) console.log(`left out on Node 24: ${s.dir}: ${s.reason}`)' "$skipped"
  if [ "${#filters[@]}" -eq 0 ]; then
    for dir in packages/*/; do
      dir="${dir%/}"
      case "$skipped" in *"\"dir\":\"$dir\""*) continue ;; esac
      filters+=("$dir/")
    done
    filters+=("examples/")
  fi
fi

PATH="$(dirname "$node24"):$PATH" ERRAND_TEST_REPORT="$report" \
  "$node24" node_modules/vitest/vitest.mjs run "${filters[@]}"
