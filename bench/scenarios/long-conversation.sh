#!/usr/bin/env bash
# Scenario "long-conversation": one user sends N messages, one after another,
# to one conversation (`echo` at zero latency), and the latency of the k-th
# send is kept. Printed per block of 100 sends (p50 and p99 of the block), to
# show that a turn's cost does not grow with the history (the actor keeps
# only the context window; every send is one commit). The JSON (with every
# latency) goes to $PARLEY_BENCH_OUT (default: a temporary directory).
# Usage: bench/scenarios/long-conversation.sh [sends=2000] [block=100]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
sends="${1:-2000}"
block="${2:-100}"


start_server "sqlite://$work/bench.db" ""
"$load" --url "$base" --route message --concurrency 1 --users 1 --requests "$sends" \
  --seconds 3600 --series --quiet --json "$out/long-conversation.json" > /dev/null
strict_check "$out/long-conversation.json" '.errors == {} and .ok == $n' --argjson n "$sends"
echo "| sends | history before (messages) | p50 ms | p99 ms |"
echo "|---|---|---|---|"
jq -r --argjson b "$block" '.series_ms | [range(0; length; $b) as $i | .[$i:$i+$b] | sort
  | {from: ($i + 1), to: ($i + length), p50: .[(length / 2 | floor)], p99: .[((length - 1) * 0.99 | floor)]}]
  | .[] | "| \(.from)–\(.to) | \((.from - 1) * 2)–\((.to - 1) * 2) | \(.p50 * 100 | round / 100) | \(.p99 * 100 | round / 100) |"' \
  "$out/long-conversation.json"
