#!/usr/bin/env bash
# The sanitizer half of the test command (scripts/test.sh runs it after the
# plain suite): builds build-sanitize/ with clang (every warning an error, the
# thread-safety analysis of base/thread_annotations.hpp among them) under AddressSanitizer and
# UndefinedBehaviorSanitizer, then runs there the unit and integration tests
# (on SQLite, and on PostgreSQL when PARLEY_TEST_PG_SERVER names a server) and
# each fuzz target of tests/fuzz for PARLEY_FUZZ_SECONDS (default 60). Any
# sanitizer report, leak or fuzzer finding fails it. Arguments go to ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${PARLEY_SANITIZE_BUILD_DIR:-$root/build-sanitize}"
# -O1 with line tables only: readable reports at a fraction of the build time.
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DPARLEY_SANITIZE=ON -DPARLEY_FUZZ=ON -DPARLEY_BENCH=OFF -DPARLEY_WERROR=ON \
  -DPARLEY_FUZZ_SECONDS="${PARLEY_FUZZ_SECONDS:-60}" >/dev/null
cmake --build "$build_dir" -j2

# Reports are fatal; the servers the integration tests start inherit these.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd "$build_dir"
echo "test-sanitized: ASan + UBSan build, fuzzers ${PARLEY_FUZZ_SECONDS:-60} s each" >&2
# The tooling checks (OpenAPI document, install tree) ran in the plain build.
ctest --output-on-failure --timeout 900 -LE tooling "$@"
