#!/usr/bin/env bash
# Every chart from tiny runs of the scenarios that feed them, so that neither
# the scenarios' JSON nor bench/plot.sh can rot (ctest: bench_plot).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
export PARLEY_BENCH_OUT="$results" PARLEY_BENCH_STRICT=1
"$root/bench/scenarios/throughput.sh" 1 "1 2" > /dev/null
"$root/bench/scenarios/llm-latency.sh" 2 "10 20" > /dev/null
"$root/bench/scenarios/long-conversation.sh" 30 10 > /dev/null
"$root/bench/scenarios/memory.sh" "100 200" 4 > /dev/null
"$root/bench/plot.sh" "$results" "$results/charts" > /dev/null
for chart in throughput llm-latency long-conversation memory; do
  [ -s "$results/charts/$chart.png" ] || { echo "smoke.sh: no $chart.png" >&2; exit 1; }
done
echo "every chart drawn"
