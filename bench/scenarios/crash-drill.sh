#!/usr/bin/env bash
# Scenario "crash-drill": a mixed write load (sends with and without
# Idempotency-Key, whole and SSE-streamed, WebSocket sends, edits, deletes,
# whole and streamed regenerates, conversations created and deleted:
# `parley-load --mix crash`), and the server killed with SIGKILL at a random
# moment of each round. After each restart (same database, same port):
# `/ready` must answer 200 within 2 s of the new process starting
# (CRASH_READY_MS=2000: more only to give a loaded machine a little room); then
# `parley-load --verify-journal` retries every Idempotency-Key request (it
# must be replayed, not stored again), reads everything back and checks that
# every acknowledged write is there (a message a 201/200 answer or a
# `message`/`done` event reported, with its last acknowledged content; a
# delete stays deleted), that no seq was given twice in a conversation, that
# nothing was stored twice, and that every conversation and listing loads.
# A request whose answer did not arrive before the kill is not acknowledged
# and may or may not have taken effect. Prints one row per kill and the
# totals; exits 1 on any loss or violation.
#
# Usage: bench/scenarios/crash-drill.sh [kills=20] [seconds=8] [users=8]
#   (or CRASH_KILLS, CRASH_SECONDS: load per round, CRASH_USERS: one thread
#   each, 3 conversations each). CRASH_SEED=N repeats the kill moments.
#   Database: SQLite in a temporary directory, or with CRASH_BACKEND=postgresql
#   (PARLEY_TEST_BACKEND=postgresql as ctest sets it) a new database on
#   $PARLEY_TEST_PG_SERVER (scripts/test.sh starts one), else on a throwaway
#   cluster (scripts/test-postgres.sh); under ctest with no server, skipped
#   (exit 77). DATABASE_URL=… drills that database instead.
# Bounded in time: a server not ready 30 s after starting, a round's load not
# done 90 s after its seconds, or a verification past 300 s fails the drill.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
kills="${1:-${CRASH_KILLS:-20}}"
seconds="${2:-${CRASH_SECONDS:-8}}"
users="${3:-${CRASH_USERS:-8}}"
backend="${CRASH_BACKEND:-${PARLEY_TEST_BACKEND:-sqlite}}"
seed="${CRASH_SEED:-$(( $(date +%s) % 32768 ))}"
RANDOM="$seed"
ready_limit_ms="${CRASH_READY_MS:-2000}"
case "$ready_limit_ms" in
  '' | *[!0-9]*) echo "crash-drill.sh: CRASH_READY_MS must be a number of ms" >&2; exit 2 ;;
esac
# launch gives up on a server this long after starting it; verification, this long.
launch_limit_ms=$(( ready_limit_ms > 30000 ? ready_limit_ms : 30000 ))
verify_limit_s=300
# verify runs under timeout(1), which cannot run $load when that is a function.
verify_load=("$load_bin")
if [ -n "${PARLEY_BENCH_JWT_SECRET:-}" ]; then
  verify_load+=(--jwt-secret "$PARLEY_BENCH_JWT_SECRET")
fi

pg_dir=""
pg_server=""
pg_db=""
load_pid=""
cleanup() {
  if [ -n "$load_pid" ]; then kill -9 "$load_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill -9 "$server_pid" 2>/dev/null || true; fi
  if [ -n "$pg_db" ]; then
    PGCONNECT_TIMEOUT=10 psql -q "$pg_server/postgres" \
      -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -n "$pg_dir" ]; then "$root/scripts/test-postgres.sh" "$pg_dir" destroy; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${DATABASE_URL:-}" ]; then
  url="$DATABASE_URL"
  case "$url" in postgres*) backend=postgresql ;; *) backend=sqlite ;; esac
elif [ "$backend" = postgresql ]; then
  pg_server="${PARLEY_TEST_PG_SERVER:-}"
  if [ -z "$pg_server" ]; then
    if [ -n "${PARLEY_TEST_BACKEND:-}" ]; then
      echo "crash-drill.sh: PARLEY_TEST_BACKEND=postgresql but PARLEY_TEST_PG_SERVER is not set;" \
        "scripts/test.sh starts a PostgreSQL server for the tests. Skipping." >&2
      exit 77
    fi
    pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/parley-pg-XXXXXX")"
    "$root/scripts/test-postgres.sh" "$pg_dir" init
    pg_server="postgresql://parley@127.0.0.1:$(cat "$pg_dir/port")"
  fi
  pg_db="crash_drill_$$_$(date +%s)"
  PGCONNECT_TIMEOUT=10 psql -q "$pg_server/postgres" -c "CREATE DATABASE $pg_db"
  url="$pg_server/$pg_db"
else
  url="sqlite://$work/crash.db"
fi

# Echo with a little latency, so a kill can land mid-stream. A reply the kill
# cut off leaves a provisional 502 as its Idempotency-Key answer; the retry
# after the restart must get it at once (it predates the new process).
config="$work/parley.toml"
cat > "$config" <<TOML
[[providers]]
name = "builtin"
kind = "builtin"
ttft_ms = 20
itl_ms = 2
TOML
if [ -n "${PARLEY_BENCH_JWT_SECRET:-}" ]; then
  printf '[auth]\nmode = "jwt"\njwt_secret = "%s"\n' "$PARLEY_BENCH_JWT_SECRET" >> "$config"
fi

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# launch PORT LOG: starts parley (PORT 0: a free one; afterwards the same
# again) and waits for /ready to answer 200, at most $launch_limit_ms; sets
# $server_pid, $port, $base and $ready_ms, the time from starting the process
# to that answer.
launch() {
  local t0 code
  t0="$(now_ms)"
  "$bin" serve --port "$1" --config "$config" --database-url "$url" > "$2.out" 2> "$2.err" &
  server_pid=$!
  port="$1"
  while [ $(( $(now_ms) - t0 )) -lt "$launch_limit_ms" ]; do
    if [ "$port" = 0 ]; then
      port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$2.out" 2>/dev/null | grep -o '[0-9]*$' || true)"
      port="${port:-0}"
    fi
    if [ "$port" != 0 ]; then
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/ready" || true)"
      if [ "$code" = 200 ]; then
        ready_ms=$(( $(now_ms) - t0 ))
        base="http://127.0.0.1:$port"
        return 0
      fi
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.01
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "crash-drill.sh: the server was not ready $(( launch_limit_ms / 1000 )) s" \
      "after starting; its log:" >&2
  else
    echo "crash-drill.sh: the server exited before it was ready; its log:" >&2
  fi
  tail -20 "$2.err" >&2
  exit 1
}

# wait_for PID SECONDS: waits for a background job at most that long, then kills it.
wait_for() {
  for _ in $(seq 1 $(( $2 * 10 ))); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then
    echo "crash-drill.sh: job $1 still running after $2 s; killed" >&2
    kill -9 "$1" 2>/dev/null || true
  fi
  wait "$1"
}

journal="$out/crash-journal.jsonl"
: > "$journal"
status=0
ready_worst=0
echo "crash drill on $backend: $kills kills, $seconds s of load a round, $users users (seed $seed)"
echo
echo "| kill | at s | ops acknowledged | /ready ms | messages acknowledged | found | removed by unanswered | lost | violations |"
echo "|---|---|---|---|---|---|---|---|---|"
launch 0 "$work/server-0"
for round in $(seq 1 "$kills"); do
  rm -f "$work/ready"
  "$load" --mix crash --url "$base" --users "$users" --conversations-per-user 3 \
    --seconds "$seconds" --think-ms 5 --journal "$journal" --ready-file "$work/ready" \
    --seed $(( seed * 1000 + round )) --quiet --json "$work/load-$round.json" \
    > "$work/load-$round.txt" 2>&1 &
  load_pid=$!
  for _ in $(seq 1 300); do
    [ -e "$work/ready" ] || ! kill -0 "$load_pid" 2>/dev/null && break
    sleep 0.1
  done
  # A random moment between 10 % and 95 % of the round's load.
  at="$(awk -v s="$seconds" -v r="$RANDOM" 'BEGIN { printf "%.3f", s * (0.10 + 0.85 * r / 32767) }')"
  sleep "$at"
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  if ! wait_for "$load_pid" $(( ${seconds%.*} + 90 )); then
    echo "crash-drill.sh: the load failed in round $round:" >&2
    cat "$work/load-$round.txt" >&2
    status=1
  fi
  load_pid=""
  launch "$port" "$work/server-$round"
  if [ "$ready_ms" -gt "$ready_worst" ]; then ready_worst="$ready_ms"; fi
  if [ "$ready_ms" -gt "$ready_limit_ms" ]; then
    echo "crash-drill.sh: /ready answered 200 only $ready_ms ms after restart $round" \
      "(limit $ready_limit_ms ms, CRASH_READY_MS)" >&2
    status=1
  fi
  verify_status=0
  timeout -k 10 "$verify_limit_s" "${verify_load[@]}" --url "$base" --verify-journal "$journal" \
    --json "$work/verify-$round.json" > "$work/verify-$round.txt" 2>&1 || verify_status=$?
  if [ "$verify_status" -eq 124 ] || [ "$verify_status" -eq 137 ]; then
    echo "crash-drill.sh: the verification after restart $round took over" \
      "$verify_limit_s s; killed" >&2
  fi
  if [ "$verify_status" -ne 0 ] || [ ! -s "$work/verify-$round.json" ]; then
    status=1
    cat "$work/verify-$round.txt" >&2
  fi
  ops="$(jq -r '.acknowledged // 0' "$work/load-$round.json" 2>/dev/null || echo "?")"
  jq -r --arg round "$round" --arg at "$at" --arg ops "$ops" --arg ready "$ready_ms" \
    '"| \($round) | \($at) | \($ops) | \($ready) | \(.messages.acknowledged) | \(.messages.found) | \(.removed_by_unanswered) | \(.lost) | \(.violation_count) |"' \
    "$work/verify-$round.json" 2>/dev/null || echo "| $round | $at | $ops | $ready_ms | ? | ? | ? | ? | ? |"
done
stop_server

last="$work/verify-$kills.json"
echo
if [ -s "$last" ]; then
  jq -r '"acknowledged \(.acknowledged) (messages \(.messages.acknowledged), edited \(.edits.acknowledged), deletes \(.deletes.acknowledged), conversations \(.conversations.acknowledged), conversation deletes \(.conversations.deletes_acknowledged)), found \(.found), removed by an unanswered delete \(.removed_by_unanswered), lost \(.lost)",
         "idempotent retries \(.idempotent_retries.sent), replayed \(.idempotent_retries.replayed) (slowest \(.idempotent_retries.slowest_ms) ms); violations \(.violation_count)\(if .violation_count > 0 then ": " + (.violations | to_entries | map("\(.key) \(.value)") | join(", ")) else "" end)"' \
    "$last"
  cp "$last" "$out/crash-drill-verify.json" 2>/dev/null || true
fi
echo "/ready after a restart: at most $ready_worst ms (limit $ready_limit_ms ms)"
# Errors the load met while the server was up (not losses: reported).
all_errors="$(cat "$work"/load-*.json 2>/dev/null | jq -s -r '[.[].errors | to_entries[]] | group_by(.key)
  | map("\(.[0].key) × \(map(.value) | add)") | join("; ")')"
echo "load errors while the server was up: ${all_errors:-none}"
if [ -n "$all_errors" ] && [ -n "${PARLEY_BENCH_STRICT:-}" ]; then
  echo "crash-drill.sh: requests failed while the server was up (PARLEY_BENCH_STRICT)" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  # Keep the evidence: the journal, the checks' answers and the servers' logs.
  kept="$(mktemp -d "${TMPDIR:-/tmp}/crash-drill-failed-XXXXXX")"
  cp "$journal" "$work"/*.json "$work"/*.txt "$work"/server-* "$kept/" 2>/dev/null || true
  echo "crash-drill.sh: journal, results and server logs kept in $kept" >&2
  echo "crash-drill.sh: FAILED: acknowledged writes lost, invariants violated or /ready late (above)" >&2
  exit 1
fi
echo "crash-drill.sh: no acknowledged write lost, no violation"
