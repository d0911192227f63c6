#!/usr/bin/env bash
# Scenario "llm-latency": `echo` at ttft_ms=300, itl_ms=20 answering 50
# words, N conversations each streaming a reply over SSE and, as soon as it
# is done, the next (closed loop, parley-load). For each N: delta events/s,
# time to the first delta over the model's 300 ms, and the server's resident
# memory per connection (peak RSS during the run less RSS before it, over N).
# A fresh server (and SQLite file) for each N. Prints a Markdown table; the
# JSON of every run goes to $PARLEY_BENCH_OUT (default: a temporary directory).
# Usage: bench/scenarios/llm-latency.sh [seconds=20] [counts="1000 5000 10000"]
#        (PARLEY_LOAD_ROUTE=ws streams over WebSockets instead of SSE)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-20}"
counts="${2:-1000 5000 10000}"
ttft_ms=300
route="${PARLEY_LOAD_ROUTE:-stream}"
words=""
for i in $(seq 1 49); do words="$words w$i"; done  # "Echo:" and 49 words: 50 deltas

# Each stream is a socket in the client and one in the server: raise the
# soft limit on open files as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for n in $counts; do
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 256)) ]; then
    echo "llm-latency.sh: $n streams need more than $(ulimit -n) open files" >&2
    exit 2
  fi
done

cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"; }

echo "| N | delta events/s | of the ideal | first delta − ${ttft_ms} ms p50 / p99 | replies/s | peak RSS MiB | KiB per connection | server CPU s | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $counts; do
  rm -f "$work"/bench.db*
  start_server "sqlite://$work/bench.db" "$(cat <<TOML
[[providers]]
name = "builtin"
kind = "builtin"
ttft_ms = $ttft_ms
itl_ms = 20
TOML
)"
  rm -f "$work/ready"
  "$load" --url "$base" --route "$route" --concurrency "$n" --seconds "$seconds" --quiet \
    --content "$words" --json "$out/stream-$n.json" --ready-file "$work/ready" > /dev/null &
  load_pid=$!
  # "Before" is once the conversations exist (their actors are live), just
  # as the streams begin.
  while [ ! -e "$work/ready" ] && kill -0 "$load_pid" 2>/dev/null; do sleep 0.05; done
  before=$(rss_kib "$server_pid")
  cpu_before=$(cpu_s "$server_pid")
  peak=$before
  while kill -0 "$load_pid" 2>/dev/null; do
    now=$(rss_kib "$server_pid")
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.2
  done
  wait "$load_pid"
  server_cpu=$(awk -v a="$cpu_before" -v b="$(cpu_s "$server_pid")" 'BEGIN{printf "%.1f", b - a}')
  jq -r --argjson n "$n" --argjson before "$before" --argjson peak "$peak" --argjson ttft "$ttft_ms" \
    --arg cpu "$server_cpu" \
    "$jq_defs"'"| \($n) | \(.deltas_per_s | floor) | \(.deltas_per_s / ($n * 50 / 1.28) * 100 | round / 100) | +\((.latency.first_delta.p50_ms - $ttft) | round) ms / +\((.latency.first_delta.p99_ms - $ttft) | round) ms | \(.requests_per_s | floor) | \($peak / 1024 | floor) | \((($peak - $before) / $n) * 10 | round / 10) | \($cpu) | \(.errors | errors_text) |"' \
    "$out/stream-$n.json"
  strict_check "$out/stream-$n.json" '.errors == {} and .ok > 0'
  stop_server
done
