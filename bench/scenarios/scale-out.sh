#!/usr/bin/env bash
# Scenario "scale-out": one Parley instance against two behind nginx
# (deploy/nginx.conf through scripts/local-nginx.sh), on one throwaway
# PostgreSQL, under the same closed-loop send load (parley-load, `echo` at
# zero latency), in one run:
#   one        nginx -> A
#   two        nginx -> A, B, routed by conversation id (the shipped config)
#   two-random nginx -> A, B, each request to a random instance: every
#              conversation is shared, as while a balancer rebalances
#   hot        as two-random, with 4 users on one conversation each
# For each: requests/s, p50 and p99 through nginx, and per acknowledged
# send the conflicts (a write that found its conversation changed by the
# other instance and ran again) and the other instance's changes that
# reached a conversation held in memory (each costs a reload or drops it).
# With PARLEY_BENCH_PERF=DIR, instance A is profiled in each run (bench/lib.sh).
# Usage: bench/scenarios/scale-out.sh [seconds=15] [concurrency=32]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-15}"
concurrency="${2:-32}"

pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"  # beside $work: its owner must reach it
instance_pids=()
nginx_pid=""
stop_all() {
  if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  nginx_pid=""
  for pid in "${instance_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  instance_pids=()
}
trap 'stop_all; "$root/scripts/test-postgres.sh" "$pg_dir" destroy >/dev/null; rm -rf "$work"' EXIT
"$root/scripts/test-postgres.sh" "$pg_dir" init >/dev/null
pg_server="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")"

# start_instance NAME URL: a parley on a free port; sets ${NAME}_port.
start_instance() {
  printf '[limits]\nconversation_queue = 64\n' > "$work/$1.toml"
  : > "$work/$1.out"
  "$bin" serve --port 0 --config "$work/$1.toml" --database-url "$2" \
    > "$work/$1.out" 2> "$work/$1.err" &
  instance_pids+=($!)
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/$1.out" 2>/dev/null && break
    sleep 0.1
  done
  local port
  port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/$1.out" | grep -o '[0-9]*$')"
  printf -v "${1}_port" '%s' "$port"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_nginx PORT...: nginx in front of those instances; sets $base.
start_nginx() {
  local port dir="$work/nginx-$RANDOM"
  port="$(free_port)"
  "$root/scripts/local-nginx.sh" "$dir" "$port" "$@" > /dev/null 2>&1 &
  nginx_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
    sleep 0.1
  done
  base="http://127.0.0.1:$port"
}

# counter PORT NAME: a counter's value on the instance at PORT (0 when absent).
counter() {
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}

new_database() {
  local name="scale_$(date +%s%N)"
  psql -q "$pg_server/postgres" -c "CREATE DATABASE $name"
  "$bin" migrate --database-url "$pg_server/$name" > /dev/null
  echo "$pg_server/$name"
}

# run NAME INSTANCES [ROUTING] [LOAD_ARGS...]: one measured run on a fresh database.
run() {
  local name="$1" instances="$2" routing="${3:-}"
  shift 3 || shift $#
  local url
  url="$(new_database)"
  start_instance a "$url"
  local ports=("$a_port")
  if [ "$instances" = 2 ]; then
    start_instance b "$url"
    ports+=("$b_port")
  fi
  PARLEY_NGINX_ROUTING="$routing" start_nginx "${ports[@]}"
  server_pid="${instance_pids[0]}"  # what PARLEY_BENCH_PERF samples: instance A
  profiled "scale-out-$name" "$load" --url "$base" --route message --concurrency "$concurrency" \
    --seconds "$seconds" --quiet --json "$out/$name.json" "$@" > /dev/null
  server_pid=""
  local conflicts=0 remote=0 p
  for p in "${ports[@]}"; do
    conflicts=$((conflicts + $(counter "$p" parley_conversation_conflicts_total)))
    remote=$((remote + $(counter "$p" parley_remote_changes_total)))
  done
  jq -r --arg name "$name" --arg n "$instances" --argjson conflicts "$conflicts" \
    --argjson remote "$remote" \
    "$jq_defs"'"| \($name) | \($n) | \(.requests_per_s | floor) | \(.latency.whole.p50_ms * 10 | round / 10) | \(.latency.whole.p99_ms * 10 | round / 10) | \(if .ok > 0 then ($conflicts / .ok * 1000 | round / 1000) else 0 end) | \(if .ok > 0 then ($remote / .ok * 1000 | round / 1000) else 0 end) | \(.errors | errors_text) |"' \
    "$out/$name.json"
  strict_check "$out/$name.json" '.errors == {} and .ok > 0'
  stop_all
}

echo "| run | instances | send req/s | p50 ms | p99 ms | conflicts per send | remote changes per send | errors |"
echo "|---|---|---|---|---|---|---|---|"
run one 1 ""
run two 2 ""
run two-random 2 random
run hot 2 random --users 4
