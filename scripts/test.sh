#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a full test run: installs what
# is missing, builds everything and runs the whole suite through ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${PARLEY_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$build_dir"
ctest --output-on-failure --timeout 600 "$@"
