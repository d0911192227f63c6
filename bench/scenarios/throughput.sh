#!/usr/bin/env bash
# Scenario "throughput": send-message with `echo` at zero latency against
# GET /health (the HTTP ceiling) on the same server, in the same run, at each
# concurrency (closed loop, parley-load). Prints a Markdown table; the JSON of
# every run goes to $PARLEY_BENCH_OUT (default: a temporary directory).
# Usage: bench/scenarios/throughput.sh [seconds=10] [concurrencies="1 4 16 64 256"]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-10}"
concurrencies="${2:-1 4 16 64 256}"


start_server "sqlite://$work/bench.db" ""
echo "| concurrency | GET /health req/s | send-message req/s | ratio | send p50 ms | send p99 ms | errors |"
echo "|---|---|---|---|---|---|---|"
for c in $concurrencies; do
  "$load" --url "$base" --route health --concurrency "$c" --seconds "$seconds" --quiet \
    --json "$out/health-$c.json" > /dev/null
  "$load" --url "$base" --route message --concurrency "$c" --seconds "$seconds" --quiet \
    --json "$out/message-$c.json" > /dev/null
  jq -r --slurpfile h "$out/health-$c.json" \
    "$jq_defs"'"| \(.concurrency) | \($h[0].requests_per_s | floor) | \(.requests_per_s | floor) | \(.requests_per_s / $h[0].requests_per_s * 100 | round / 100) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10) | \((.errors + $h[0].errors) | errors_text) |"' \
    "$out/message-$c.json"
  strict_check "$out/message-$c.json" '.errors == {} and .ok > 0'
done
