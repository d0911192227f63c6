#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a full test run: installs what
# is missing, builds everything, starts a throwaway PostgreSQL cluster and runs
# the whole suite through ctest (every database test once on SQLite and once on
# PostgreSQL); then the same tests built with ASan + UBSan, and each fuzz
# target for a bounded time (scripts/test-sanitized.sh; PARLEY_SANITIZED=0
# skips that half). The cluster is removed afterwards, also when tests fail.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${PARLEY_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
# The OpenAPI validator (tests/openapi/), the OpenAI SDK (tests/openai_sdk/)
# and the browser driver
# (tests/browser/), each pinned by its package-lock.json.
if [ ! -d "$root/tests/openapi/node_modules/@seriousme/openapi-schema-validator" ]; then
  npm ci --prefix "$root/tests/openapi" --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ ! -d "$root/tests/openai_sdk/node_modules/openai" ]; then
  npm ci --prefix "$root/tests/openai_sdk" --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  npm ci --prefix "$root/tests/browser" --no-audit --no-fund --loglevel=error >/dev/null
fi
"$root/scripts/build.sh"

pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"
trap '"$root/scripts/test-postgres.sh" "$pg_dir" destroy' EXIT
"$root/scripts/test-postgres.sh" "$pg_dir" init
export PARLEY_TEST_PG_SERVER="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")"
export PARLEY_TEST_PG_CONTROL="$root/scripts/test-postgres.sh $pg_dir"

(cd "$build_dir" && ctest --output-on-failure --timeout 600 "$@")
if [ "${PARLEY_SANITIZED:-1}" != 0 ]; then
  "$root/scripts/test-sanitized.sh" "$@"
fi
