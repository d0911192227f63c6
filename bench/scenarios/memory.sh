#!/usr/bin/env bash
# Scenario "memory": the server's resident memory after N conversations were
# touched (each created with a first message and its reply, by 64 closed-loop
# users), with passivation on (idle actors stop after 2 s; at most 10,000
# live) and off (nothing passivates). RSS is read once the last answer is in
# and the idle timeout has passed, and so is the peak (VmHWM: freed memory is
# not always given back to the system, so the peak is what passivation
# bounds). A fresh server and SQLite file each time.
# Usage: bench/scenarios/memory.sh [counts="10000 100000 1000000"] [concurrency=64]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
counts="${1:-10000 100000 1000000}"
concurrency="${2:-64}"

peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

echo "| conversations | passivation | RSS before | peak RSS | RSS after | peak per conversation | creations/s | errors |"
echo "|---|---|---|---|---|---|---|---|"
for n in $counts; do
  for passivation in on off; do
    if [ "$passivation" = on ]; then
      actors=$'[actors]\nidle_timeout_s = 2\nmax_live = 10000'
    else
      actors=$'[actors]\nidle_timeout_s = 86400\nmax_live = 100000000'
    fi
    rm -f "$work"/bench.db*
    start_server "sqlite://$work/bench.db" "$actors"
    before=$(rss_kib "$server_pid")
    "$load" --url "$base" --route create --concurrency "$concurrency" --requests "$n" \
      --seconds 36000 --quiet --json "$out/memory-$n-$passivation.json" > /dev/null
    sleep 3  # past the idle timeout: passivated actors are gone
    after=$(rss_kib "$server_pid")
    peak=$(peak_kib "$server_pid")
    jq -r --argjson n "$n" --arg p "$passivation" --argjson before "$before" --argjson after "$after" \
      --argjson peak "$peak" \
      "$jq_defs"'"| \($n) | \($p) | \($before / 1024 | floor) MiB | \($peak / 1024 | floor) MiB | \($after / 1024 | floor) MiB | \((($peak - $before) * 1024 / $n) | floor) B | \(.requests_per_s | floor) | \(.errors | errors_text) |"' \
      "$out/memory-$n-$passivation.json"
    jq -n --argjson n "$n" --arg p "$passivation" --argjson before "$before" \
      --argjson peak "$peak" --argjson after "$after" \
      '{conversations: $n, passivation: $p, rss_before_kib: $before, rss_peak_kib: $peak,
        rss_after_kib: $after}' > "$out/memory-$n-$passivation.rss.json"
    strict_check "$out/memory-$n-$passivation.json" '.errors == {} and .ok >= $n' --argjson n "$n"
    stop_server
  done
done
