#!/usr/bin/env bash
# Scenario "openai-compat": POST /v1/chat/completions through Parley (an
# `openai` provider in front of the mock upstream, which answers at once)
# against the mock loaded directly with the same request, connections and
# duration, in one run: the latency Parley adds (p50, p99) and the ratio of
# the throughputs, for whole answers and for streamed ones (wrk times the
# whole stream). Each measured run follows a 3 s warm-up of the same load.
# Prints a Markdown table. Needs wrk and a built tree.
# Usage: bench/scenarios/openai-compat.sh [seconds=10] [connections=64]
# PARLEY_BENCH_PERF=DIR profiles the server during Parley's runs (bench/lib.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/bench/lib.sh"
scenario_setup
seconds="${1:-10}"
connections="${2:-64}"
mock_bin="$build/tests/parley-mock-upstream"

mock_pid=""
trap 'stop_server; [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"' EXIT
start_mock "$mock_bin" --ttft-ms 0 --words 20

start_server "sqlite://$work/bench.db" "$(cat <<TOML
[[providers]]
name = "mock"
kind = "openai"
base_url = "$mock_base/v1"
max_in_flight = 4096
[[models]]
id = "fast"
provider = "mock"
upstream = "mock-model"
TOML
)"

# script MODEL STREAM: a wrk script posting the same chat completion.
script() {
  cat <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"$1","stream":$2,"messages":[{"role":"user","content":"hello world, how are you today?"}]}'
LUA
}
run() {  # run NAME SCRIPT URL: warm-up, then the measured run into $work/NAME.txt
  wrk -t2 -c"$connections" -d3s --latency -s "$2" "$3" > /dev/null
  case "$1" in
    parley-*) profiled "$1" wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$2" "$3" ;;
    *) wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$2" "$3" ;;
  esac > "$work/$1.txt"
}
ms() {  # wrk latency ("512.34ms", "1.02s", "900.00us") in milliseconds
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}' <<< "$1"
}
failed() {  # failed FILE: wrk's count of answers that were not 2xx (and socket errors)
  local n
  n=$(grep -E 'Non-2xx' "$1" | awk '{print $NF}' || true)
  echo "${n:-0}"
}

echo "| answer | mock alone req/s | through Parley req/s | ratio | p50 alone / Parley / added ms | p99 alone / Parley / added ms | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for stream in false true; do
  script mock-model "$stream" > "$work/direct.lua"
  script fast "$stream" > "$work/parley.lua"
  run "direct-$stream" "$work/direct.lua" "$mock_base/v1/chat/completions"
  run "parley-$stream" "$work/parley.lua" "$base/v1/chat/completions"
  d="$work/direct-$stream.txt" p="$work/parley-$stream.txt"
  drps=$(wrk_field "$d" rps) prps=$(wrk_field "$p" rps)
  d50=$(ms "$(wrk_field "$d" 50%)") p50=$(ms "$(wrk_field "$p" 50%)")
  d99=$(ms "$(wrk_field "$d" 99%)") p99=$(ms "$(wrk_field "$p" 99%)")
  bad=$(( $(failed "$d") + $(failed "$p") ))
  echo "| $([ "$stream" = true ] && echo streamed || echo whole) | $drps | $prps" \
    "| $(awk -v a="$prps" -v b="$drps" 'BEGIN{printf "%.2f", a/b}')" \
    "| $d50 / $p50 / $(awk -v a="$p50" -v b="$d50" 'BEGIN{printf "%.2f", a-b}')" \
    "| $d99 / $p99 / $(awk -v a="$p99" -v b="$d99" 'BEGIN{printf "%.2f", a-b}') | $bad |"
  if [ -n "${PARLEY_BENCH_STRICT:-}" ] && [ "$bad" != 0 ]; then
    echo "openai-compat.sh: $bad answers were not 2xx" >&2
    exit 1
  fi
done
