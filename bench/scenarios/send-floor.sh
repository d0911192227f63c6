#!/usr/bin/env bash
# Scenario "send-floor": Parley's send path beside the thinnest durable send
# path on the same libraries (parley-bench-reference-send), each next to its
# own GET /health, servers taking turns so that both see the same machine.
# Each user sends to its one conversation (the long-conversation workload of
# bench/scenarios/throughput.sh). Prints a Markdown table; with PARLEY_BENCH_PERF=DIR, each send run is profiled into
# DIR/ROUND-SERVER.data (bench/lib.sh). With PARLEY_FLOOR_DB=postgresql both
# write to a throwaway PostgreSQL cluster (scripts/test-postgres.sh, fsync
# on) instead of SQLite files; there the reference is no floor: it runs a
# statement (a round trip) per row, where Parley pipelines multi-row ones.
# Usage: bench/scenarios/send-floor.sh [seconds=8] [concurrency=64] [rounds=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-8}"
concurrency="${2:-64}"
rounds="${3:-2}"
reference="$build/bench/parley-bench-reference-send"
database="${PARLEY_FLOOR_DB:-sqlite}"
if [ "$database" = postgresql ]; then
  pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"  # beside $work: its owner must reach it
  trap 'stop_server; "$root/scripts/test-postgres.sh" "$pg_dir" destroy > /dev/null; rm -rf "$work"' EXIT
  "$root/scripts/test-postgres.sh" "$pg_dir" init > /dev/null
  pg_port="$(cat "$pg_dir/port")"
fi

# database_for NAME: the database URL Parley gets (a new database on the
# cluster, or a SQLite file); database_args NAME: the same for the reference.
database_for() {
  if [ "$database" = postgresql ]; then
    psql -q "postgresql://parley@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE $1"
    echo "postgresql://parley@127.0.0.1:$pg_port/$1"
  else
    echo "sqlite://$work/$1.db"
  fi
}
database_args() {
  if [ "$database" = postgresql ]; then
    psql -q "postgresql://parley@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE $1"
    echo "--postgresql"
    echo "host=127.0.0.1 port=$pg_port user=parley dbname=$1"
  else
    echo "--database"
    echo "$work/$1.db"
  fi
}

start_reference() {
  : > "$work/stdout"
  : > "$work/stderr"
  local args
  mapfile -t args < <(database_args "reference_$1")
  "$reference" --port 0 "${args[@]}" > "$work/stdout" 2> "$work/stderr" &
  server_pid=$!
  await_listening reference
}

measure() {  # measure ROUND SERVER
  "$load" --url "$base" --route health --concurrency "$concurrency" --seconds "$seconds" \
    --quiet --json "$out/health-$1-$2.json" > /dev/null
  profiled "$1-$2" "$load" --url "$base" --route message --concurrency "$concurrency" \
    --seconds "$seconds" --quiet --json "$out/message-$1-$2.json" > /dev/null
  strict_check "$out/message-$1-$2.json" '.errors == {} and .ok > 0'
  jq -r --arg server "$2" --slurpfile h "$out/health-$1-$2.json" \
    '"| \($server) | \($h[0].requests_per_s | floor) | \(.requests_per_s | floor) | \(.requests_per_s / $h[0].requests_per_s * 100 | round / 100) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10) |"' \
    "$out/message-$1-$2.json"
}

echo "| server | GET /health req/s | send req/s | ratio | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  url="$(database_for "parley_$round")"
  "$bin" migrate --database-url "$url" > /dev/null
  start_server "$url" ""
  measure "$round" parley
  stop_server
  start_reference "$round"
  measure "$round" reference
  stop_server
done
