#!/usr/bin/env bash
# Scenario "soak": a fixed mixed load for a set time (whole replies from
# closed-loop users with think time, and SSE streams at a fixed arrival rate,
# at once, on one server), then every message an answer acknowledged is read
# back and checked to be stored. Fails (exit 1) if any is missing or any
# request failed. `echo` at 50 ms to first token, 5 ms a word.
# Usage: bench/scenarios/soak.sh [seconds=60] [users=64] [stream_rate=100]
#        (DATABASE_URL=postgresql://… to soak on PostgreSQL instead of SQLite)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-60}"
users="${2:-64}"
stream_rate="${3:-100}"


start_server "${DATABASE_URL:-sqlite://$work/bench.db}" "$(cat <<TOML
[[providers]]
name = "builtin"
kind = "builtin"
ttft_ms = 50
itl_ms = 5
TOML
)"
"$load" --url "$base" --route message --concurrency "$users" --conversations-per-user 4 \
  --think-ms 20 --seconds "$seconds" --quiet --verify --json "$out/soak-message.json" \
  > "$work/message.txt" &
message_pid=$!
"$load" --url "$base" --route stream --rate "$stream_rate" --users "$users" \
  --seconds "$seconds" --quiet --verify --json "$out/soak-stream.json" > "$work/stream.txt" &
stream_pid=$!
status=0
wait "$message_pid" || status=1
wait "$stream_pid" || status=1

echo "| load | requests ok | req/s | p50 ms | p99 ms | errors | acknowledged messages stored | missing |"
echo "|---|---|---|---|---|---|---|---|"
for kind in message stream; do
  jq -r --arg kind "$kind" \
    "$jq_defs"'"| \($kind) | \(.ok) | \(.requests_per_s | floor) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10) | \(.errors | errors_text) | \(.verification.stored) | \(.verification.missing) |"' \
    "$out/soak-$kind.json"
  jq -e '.errors == {} and .ok > 0 and .verification.missing == 0' "$out/soak-$kind.json" > /dev/null ||
    status=1
done
if [ "$status" -ne 0 ]; then
  echo "soak.sh: requests failed or acknowledged messages are missing" >&2
  exit 1
fi
