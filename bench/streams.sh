#!/usr/bin/env bash
# Concurrent open SSE streams on one instance: `echo` at ttft_ms=300,
# itl_ms=20 answering 50 words, N conversations each streaming a reply and,
# as soon as it is done, the next (so N streams are open all the time).
# For each N: delivered delta events/s, time to the first delta as the client
# measures it minus the model's 300 ms (p50/p99), and the server's resident
# memory per open stream (peak RSS during the run less RSS before it, over N).
# A fresh server (and SQLite file) for each N.
# Usage: bench/streams.sh [seconds=20] [counts="1000 5000 10000"]
# Needs a built tree (scripts/build.sh parley parley-bench-streams).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PARLEY_BUILD_DIR:-$root/build}"
bin="${PARLEY_BIN:-$build/parley}"
client="$build/bench/parley-bench-streams"
seconds="${1:-20}"
counts="${2:-1000 5000 10000}"
ttft_ms=300

work="$(mktemp -d)"
. "$root/bench/lib.sh"
trap 'stop_server; rm -rf "$work"' EXIT
# Each stream is a socket in the client and one in the server: raise the
# soft limit on open files as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for n in $counts; do
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 256)) ]; then
    echo "streams.sh: $n streams need more than $(ulimit -n) open files" >&2
    exit 2
  fi
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"; }

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
  create_conversations "$n"
  before=$(rss_kib "$server_pid")
  cpu_before=$(cpu_s "$server_pid")
  "$client" --port "${base##*:}" --ids "$work/ids" --connections "$n" --seconds "$seconds" \
    > "$work/result.json" &
  client_pid=$!
  peak=$before
  while kill -0 "$client_pid" 2>/dev/null; do
    now=$(rss_kib "$server_pid")
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.2
  done
  wait "$client_pid"
  server_cpu=$(awk -v a="$cpu_before" -v b="$(cpu_s "$server_pid")" 'BEGIN{printf "%.1f", b - a}')
  jq -c --argjson before "$before" --argjson peak "$peak" --argjson ttft "$ttft_ms" \
    --argjson server_cpu "$server_cpu" \
    '. + {server_cpu_s: $server_cpu, rss_before_mib: ($before / 1024 | floor), rss_peak_mib: ($peak / 1024 | floor),
          kib_per_open_stream: (($peak - $before) / .connections | . * 10 | round / 10),
          first_delta_p50_over_model_ms: (.first_delta_p50_ms - $ttft | . * 10 | round / 10),
          first_delta_p99_over_model_ms: (.first_delta_p99_ms - $ttft | . * 10 | round / 10)}' \
    "$work/result.json"
  stop_server
done
