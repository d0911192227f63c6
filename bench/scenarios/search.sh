#!/usr/bin/env bash
# Scenario "search": GET /v1/search latency over an index of M messages, and
# import throughput beside it. parley-load seeds the index through the API
# (100 users with 10 conversations each, every message carrying 8 words of a
# 20,000-word vocabulary, each send storing the message and echo's reply),
# then searches as those users, two vocabulary words per query, closed loop.
# Then an import of generated ChatGPT conversations is timed. SQLite by
# default; PARLEY_SEARCH_DB=postgresql uses a throwaway PostgreSQL cluster
# (scripts/test-postgres.sh). Prints Markdown tables.
# Usage: bench/scenarios/search.sh [messages=1000000] [seconds=10] [concurrency=4] [import=2000]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
messages="${1:-1000000}"
seconds="${2:-10}"
concurrency="${3:-4}"
imports="${4:-2000}"
database="${PARLEY_SEARCH_DB:-sqlite}"
vocabulary=20000

if [ "$database" = postgresql ]; then
  pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"
  trap 'stop_server; "$root/scripts/test-postgres.sh" "$pg_dir" destroy > /dev/null; rm -rf "$work"' EXIT
  "$root/scripts/test-postgres.sh" "$pg_dir" init > /dev/null
  url="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")/postgres"
else
  url="sqlite://$work/search.db"
fi
start_server "$url" ""

seed_started=$(date +%s.%N)
"$load" --url "$base" --route message --concurrency 64 --users 100 --conversations-per-user 10 \
  --vocabulary "$vocabulary" --requests $((messages / 2)) --seconds 36000 --quiet \
  --json "$out/search-seed.json" > /dev/null
seed_seconds=$(awk -v a="$seed_started" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
strict_check "$out/search-seed.json" '.errors == {}'

profiled search "$load" --url "$base" --route search --concurrency "$concurrency" --users 100 \
  --vocabulary "$vocabulary" --seconds "$seconds" --quiet --json "$out/search.json" > /dev/null
strict_check "$out/search.json" '.errors == {}'

# Conversations as ChatGPT exports them: a user question, two answers (a
# regenerated one), a follow-up; about 1.5 KB each.
jq -n --argjson n "$imports" '[range($n) as $i | {
    title: "imported \($i)", create_time: (1700000000 + $i), update_time: (1700000100 + $i),
    conversation_id: "bench-\($i)", current_node: "u2",
    mapping: {
      r:  {id: "r", message: null, parent: null, children: ["u1"]},
      u1: {id: "u1", parent: "r", children: ["a1", "a2"], message: {author: {role: "user"},
           create_time: (1700000001 + $i), content: {content_type: "text", parts: ["question \($i) " * 20]}}},
      a1: {id: "a1", parent: "u1", children: [], message: {author: {role: "assistant"},
           create_time: (1700000002 + $i), content: {content_type: "text", parts: ["first answer \($i) " * 20]}}},
      a2: {id: "a2", parent: "u1", children: ["u2"], message: {author: {role: "assistant"},
           create_time: (1700000003 + $i), content: {content_type: "text", parts: ["second answer \($i) " * 20]}}},
      u2: {id: "u2", parent: "a2", children: [], message: {author: {role: "user"},
           create_time: (1700000004 + $i), content: {content_type: "text", parts: ["thanks \($i)"]}}}
    }}]' > "$work/chatgpt.json"
import_seconds=$(curl -s -o "$out/import.json" -w '%{time_total}' -X POST "$base/v1/import" \
  -H 'Content-Type: application/json' -H 'X-User-Id: importer' --data-binary @"$work/chatgpt.json")
imported=$(jq '.imported' "$out/import.json")
[ "$imported" = "$imports" ] || { echo "imported $imported of $imports" >&2; exit 1; }

echo "| database | messages indexed | seed sends/s | search concurrency | searches/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
jq -r --arg db "$database" --argjson m "$messages" --argjson seed "$seed_seconds" \
  --slurpfile seed_run "$out/search-seed.json" '
  "| \($db) | \($m) | \($seed_run[0].ok / $seed | floor) | \(.concurrency // "") | \(.requests_per_s | floor) | \(.latency.whole.p50_ms * 100 | round / 100) | \(.latency.whole.p99_ms * 100 | round / 100) |"' \
  "$out/search.json"
echo
echo "| database | conversations imported | body bytes | seconds | conversations/s |"
echo "|---|---|---|---|---|"
echo "| $database | $imported | $(stat -c %s "$work/chatgpt.json") | $import_seconds | $(awk -v n="$imported" -v s="$import_seconds" 'BEGIN {printf "%d", n / s}') |"
