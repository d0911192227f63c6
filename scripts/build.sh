#!/usr/bin/env bash
# Configures and builds Parley (Release, two jobs) into build/. Extra arguments
# name targets; without any, everything (server, tests, benchmarks) is built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${PARLEY_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
if [ $# -gt 0 ]; then
  targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$build_dir" -j2 "${targets[@]}"
else
  cmake --build "$build_dir" -j2
fi
