#!/usr/bin/env bash
# Persisted messages per second through the engine (send-message with echo,
# wrk at 64 and 256 connections) on SQLite and on PostgreSQL, beside the same
# database's ceiling measured in the same run by parley-bench-insert-ceiling;
# then p50/p99 of a send against the writer's batch delay.
# Usage: bench/persistence.sh [seconds=10] [conversations=2048]
#   BATCH_MAX=256 BATCH_DELAY_MS=0 DELAYS="0 2 5 10" BACKENDS="sqlite postgresql"
# Needs a build (scripts/build.sh) and the packages of scripts/install-deps.sh.
# PostgreSQL runs as a throwaway cluster (scripts/test-postgres.sh), fsync on.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PARLEY_BUILD_DIR:-$root/build}"
bin="${PARLEY_BIN:-$build/parley}"
ceiling="$build/bench/parley-bench-insert-ceiling"
seconds="${1:-10}"
conversations="${2:-2048}"
batch_max="${BATCH_MAX:-256}"
batch_delay="${BATCH_DELAY_MS:-0}"
delays="${DELAYS:-0 2 5 10}"
backends="${BACKENDS:-sqlite postgresql}"

work="$(mktemp -d)"
. "$root/bench/lib.sh"
pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"  # beside $work: its owner must reach it
trap 'stop_server; "$root/scripts/test-postgres.sh" "$pg_dir" destroy; rm -rf "$work"' EXIT
"$root/scripts/test-postgres.sh" "$pg_dir" init
pg_server="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")"

# new_database BACKEND: a fresh, migrated database; prints its URL.
new_database() {
  local url name="bench_$(date +%s%N)"
  if [ "$1" = sqlite ]; then
    url="sqlite://$work/$name.db"
  else
    psql -q "$pg_server/postgres" -c "CREATE DATABASE $name"
    url="$pg_server/$name"
  fi
  "$bin" migrate --database-url "$url" >/dev/null
  echo "$url"
}

count_messages() {
  if [[ "$1" == sqlite://* ]]; then
    sqlite3 "${1#sqlite://}" "SELECT COUNT(*) FROM messages"
  else
    psql -tA "$1" -c "SELECT COUNT(*) FROM messages"
  fi
}

config() {
  printf '[limits]\nconversation_queue = 64\n[database]\nbatch_max_requests = %s\nbatch_delay_ms = %s\n' \
    "$batch_max" "$1"
}

# run_send BACKEND CONNECTIONS DELAY: one wrk run on a fresh database and server;
# prints "messages/s p50 p99".
run_send() {
  local url before after
  url="$(new_database "$1")"
  start_server "$url" "$(config "$3")"
  make_send_script "$conversations"
  before="$(count_messages "$url")"
  wrk -t2 -c"$2" -d"${seconds}s" --latency -s "$work/send.lua" "$base" > "$work/wrk.txt"
  after="$(count_messages "$url")"
  stop_server
  echo "$(awk -v a="$after" -v b="$before" -v s="$seconds" 'BEGIN{printf "%.0f", (a-b)/s}')" \
    "$(wrk_field "$work/wrk.txt" 50%)" "$(wrk_field "$work/wrk.txt" 99%)"
}

echo "== persisted messages/s: engine (send-message, echo; batch_max_requests=$batch_max," \
  "batch_delay_ms=$batch_delay; ${seconds}s; $conversations conversations) vs ceiling"
printf '%-11s %-12s %14s %14s %7s %10s %10s\n' backend connections engine_msg/s ceiling_rows/s ratio p50 p99
for backend in $backends; do
  ceiling_rows="$("$ceiling" "$(new_database "$backend")" "$seconds" 1000 |
    grep -o '= [0-9]* rows/s' | grep -o '[0-9]*')"
  for connections in 64 256; do
    read -r rate p50 p99 < <(run_send "$backend" "$connections" "$batch_delay")
    printf '%-11s %-12s %14s %14s %7s %10s %10s\n' "$backend" "$connections" "$rate" \
      "$ceiling_rows" "$(awk -v r="$rate" -v c="$ceiling_rows" 'BEGIN{printf "%.2f", r/c}')" \
      "$p50" "$p99"
  done
done

echo "== send latency against batch_delay_ms (64 connections, ${seconds}s)"
printf '%-11s %-15s %12s %10s %10s\n' backend batch_delay_ms messages/s p50 p99
for backend in $backends; do
  for delay in $delays; do
    read -r rate p50 p99 < <(run_send "$backend" 64 "$delay")
    printf '%-11s %-15s %12s %10s %10s\n' "$backend" "$delay" "$rate" "$p50" "$p99"
  done
done
