#!/usr/bin/env bash
# Send-message requests/s against GET /health on the same server in the same run.
# Usage: bench/throughput.sh [connections=64] [seconds=10] [conversations=512]
# Needs a built server (scripts/build.sh parley) and wrk (scripts/install-deps.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${PARLEY_BIN:-${PARLEY_BUILD_DIR:-$root/build}/parley}"
connections="${1:-64}"
seconds="${2:-10}"
conversations="${3:-512}"

work="$(mktemp -d)"
. "$root/bench/lib.sh"
trap 'stop_server; rm -rf "$work"' EXIT

start_server "sqlite://$work/bench.db" "$(printf '[limits]\nconversation_queue = 64')"
make_send_script "$conversations"

echo "== GET /health, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "$base/health" | tee "$work/health.txt"
echo "== POST /v1/conversations/{id}/messages (echo, reply), $connections connections, ${seconds}s, $conversations conversations"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/send.lua" "$base" | tee "$work/send.txt"

health=$(wrk_field "$work/health.txt" rps)
send=$(wrk_field "$work/send.txt" rps)
stored=$(sqlite3 "$work/bench.db" "SELECT COUNT(*) FROM messages" 2>/dev/null || echo "?")
echo "== summary: health ${health} req/s, send-message ${send} req/s, ratio $(awk -v s="$send" -v h="$health" 'BEGIN{printf "%.2f", s/h}'), messages stored ${stored}"
