#!/usr/bin/env bash
# Scenario "read-replica": one Parley instance on a throwaway PostgreSQL
# cluster, without and with a streaming standby of it as database.read_url
# (scripts/test-postgres.sh DIR replica), taking turns on fresh databases:
#   send    closed-loop sends (`echo` at zero latency): what tracking each
#           batch's WAL position and announcing its users costs the writes
#   search  closed-loop GET /v1/search of each user's messages: reads the
#           replica may serve, and where they went
# Both clusters run on this machine, so the replica adds work to the same two
# cores instead of taking it off the primary's: the figures show what the
# bookkeeping costs, not what a replica on its own machine gains.
# With PARLEY_BENCH_PERF=DIR, each run is profiled (bench/lib.sh).
# Usage: bench/scenarios/read-replica.sh [seconds=10] [concurrency=32] [rounds=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-10}"
concurrency="${2:-32}"
rounds="${3:-2}"

pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"  # beside $work: its owner must reach it
trap 'stop_server; "$root/scripts/test-postgres.sh" "$pg_dir" destroy >/dev/null; rm -rf "$work"' EXIT
"$root/scripts/test-postgres.sh" "$pg_dir" init >/dev/null
pg_server="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")"
replica_server="$("$root/scripts/test-postgres.sh" "$pg_dir" replica)"

# A fresh database, there on the standby too.
new_database() {
  local name="replica_$(date +%s%N)"
  psql -q "$pg_server/postgres" -c "CREATE DATABASE $name"
  for _ in $(seq 1 100); do
    psql -q "$replica_server/$name" -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "$name"
}

# counter NAME LABELS: a counter's value (0 when absent).
counter() {
  curl -s "$base/metrics" | awk -v n="$1$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}

# run MODE ROUTE: one measured run; MODE is primary or replica.
run() {
  local mode="$1" route="$2" name
  name="$(new_database)"
  local config="[limits]
conversation_queue = 64"
  if [ "$mode" = replica ]; then
    config="$config
[database]
read_url = \"$replica_server/$name\""
  fi
  start_server "$pg_server/$name" "$config"
  profiled "read-replica-$mode-$route" "$load" --url "$base" --route "$route" \
    --concurrency "$concurrency" --seconds "$seconds" --vocabulary 200 --quiet \
    --json "$out/$mode-$route.json" > /dev/null
  local on_replica behind unavailable
  on_replica="$(counter parley_replica_reads_total '{outcome="replica"}')"
  behind="$(counter parley_replica_reads_total '{outcome="behind"}')"
  unavailable="$(counter parley_replica_reads_total '{outcome="unavailable"}')"
  jq -r --arg mode "$mode" --arg route "$route" --arg replica "$on_replica" \
    --arg behind "$behind" --arg unavailable "$unavailable" \
    "$jq_defs"'"| \($mode) | \($route) | \(.requests_per_s | floor) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10) | \($replica) / \($behind) / \($unavailable) | \(.errors | errors_text) |"' \
    "$out/$mode-$route.json"
  strict_check "$out/$mode-$route.json" '.errors == {} and .ok > 0'
  stop_server
}

echo "| database.read_url | load | req/s | p50 ms | p99 ms | reads: replica / behind / unavailable | errors |"
echo "|---|---|---|---|---|---|---|"
for _ in $(seq 1 "$rounds"); do
  for route in message search; do
    run primary "$route"
    run replica "$route"
  done
done
