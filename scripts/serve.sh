#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running server: installs what
# is missing, builds (Release) and runs `parley serve` on 127.0.0.1:8000 with
# SQLite (./parley.db) and the built-in echo model. Arguments go to `parley serve`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" parley
exec "${PARLEY_BUILD_DIR:-$root/build}/parley" serve "$@"
