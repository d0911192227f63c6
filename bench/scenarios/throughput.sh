#!/usr/bin/env bash
# Scenario "throughput": send-message with `echo` at zero latency against
# GET /health (the HTTP ceiling) on the same server, in the same run, at each
# concurrency (closed loop, parley-load). Prints a Markdown table; the JSON of
# every run goes to $PARLEY_BENCH_OUT (default: a temporary directory).
# With PARLEY_BENCH_PERF=DIR, each send run is profiled into DIR (bench/lib.sh).
# Usage: bench/scenarios/throughput.sh [seconds=10] [concurrencies="1 4 16 64 256"]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-10}"
concurrencies="${2:-1 4 16 64 256}"


start_server "sqlite://$work/bench.db" ""
# Two workloads per concurrency: each user sends to its one conversation, which
# grows to hundreds of messages within the run (the window fills, as in real
# use), and each user takes its 64 conversations in turn, so that they stay
# short (4,096 conversations at 64 users).
echo "| concurrency | GET /health req/s | send, long conversations req/s | ratio | p50 ms | p99 ms | send, 64 short conversations per user req/s | ratio | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in $concurrencies; do
  "$load" --url "$base" --route health --concurrency "$c" --seconds "$seconds" --quiet \
    --json "$out/health-$c.json" > /dev/null
  profiled "message-$c" "$load" --url "$base" --route message --concurrency "$c" \
    --seconds "$seconds" --quiet --json "$out/message-$c.json" > /dev/null
  profiled "fresh-$c" "$load" --url "$base" --route message --concurrency "$c" \
    --conversations-per-user 64 --seconds "$seconds" --quiet --json "$out/fresh-$c.json" > /dev/null
  jq -r --slurpfile h "$out/health-$c.json" --slurpfile f "$out/fresh-$c.json" \
    "$jq_defs"'def cells($h): "\(.requests_per_s | floor) | \(.requests_per_s / $h.requests_per_s * 100 | round / 100) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10)";
      "| \(.concurrency) | \($h[0].requests_per_s | floor) | \(cells($h[0])) | \($f[0] | cells($h[0])) | \([.errors, $h[0].errors, $f[0].errors] | map(to_entries) | add | group_by(.key) | map({(.[0].key): (map(.value) | add)}) | add // {} | errors_text) |"' \
    "$out/message-$c.json"
  strict_check "$out/message-$c.json" '.errors == {} and .ok > 0'
  strict_check "$out/fresh-$c.json" '.errors == {} and .ok > 0'
done
