#!/usr/bin/env bash
# The real provider path under load: Parley in front of the mock upstream
# (OpenAI protocol) answering after a fixed time to first token, against the
# ideal of connections / ttft requests/s, and the latency Parley adds on top
# of the mock's own (the mock loaded directly with the same concurrency, in
# the same run), and the send rate beside the same load on `echo`. Every
# run is measured warm; the p99 of Parley's first seconds is reported apart.
# Usage: bench/providers.sh [connections=256] [seconds=20] [ttft_ms=500] [conversations=4096]
# Needs a built tree (scripts/build.sh parley parley-mock-upstream) and wrk.
# PARLEY_BENCH_PERF=DIR profiles the server during the send run (bench/lib.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PARLEY_BUILD_DIR:-$root/build}"
bin="${PARLEY_BIN:-$build/parley}"
mock_bin="$build/tests/parley-mock-upstream"
connections="${1:-256}"
seconds="${2:-20}"
ttft_ms="${3:-500}"
conversations="${4:-4096}"

work="$(mktemp -d)"
. "$root/bench/lib.sh"
mock_pid=""
trap 'stop_server; [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"' EXIT

start_mock "$mock_bin" --ttft-ms "$ttft_ms" --words 20

start_server "sqlite://$work/bench.db" "$(cat <<TOML
[limits]
conversation_queue = 64
[defaults]
model = "mock"
[[providers]]
name = "mock"
kind = "openai"
base_url = "$mock_base/v1"
max_in_flight = 4096
[[models]]
id = "mock"
provider = "mock"
upstream = "mock-model"
TOML
)"
make_send_script "$conversations"

cat > "$work/direct.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-model","messages":[{"role":"user","content":"hello world, how are you today?"}]}'
LUA

# Each measured run follows a warm-up of the same load (3 s): the first
# requests open every connection at once (for Parley, to the client and to
# the upstream), whose tail the warm-up of Parley's send reports apart.
warm_up() {  # warm_up SCRIPT URL [OUT]
  wrk -t2 -c"$connections" -d3s --latency -s "$1" "$2" > "${3:-/dev/null}"
}
echo "== the mock alone: POST /v1/chat/completions, $connections connections, ${seconds}s"
warm_up "$work/direct.lua" "$mock_base/v1/chat/completions"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/direct.lua" "$mock_base/v1/chat/completions" \
  | tee "$work/direct.txt"
echo "== Parley send-message through the mock, $connections connections, ${seconds}s, $conversations conversations"
warm_up "$work/send.lua" "$base" "$work/cold.txt"
profiled send wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/send.lua" "$base" \
  | tee "$work/send.txt"

# The same model at nine tenths of the ideal rate, with the requests spread
# evenly in time (open loop) rather than sent by clients that all started at
# once and so arrive in waves of `connections` every ttft_ms.
rate=$(awk -v c="$connections" -v t="$ttft_ms" 'BEGIN{r = (t > 0 ? c * 1000 / t : 1000) * 0.9; printf "%.0f", r < 1 ? 1 : r}')
echo "== Parley send-message through the mock, open loop at ${rate}/s, ${seconds}s"
"$build/bench/parley-load" --url "$base" --route message --rate "$rate" \
  --connections $((connections * 2)) --users 64 --conversations-per-user $(((conversations + 63) / 64)) \
  --seconds "$seconds" --quiet --json "$work/open.json" > /dev/null

# The same load on the built-in echo model, which asks no upstream: what the
# upstream's round trip costs, in the same run.
stop_server
start_server "sqlite://$work/echo.db" "$(printf '[limits]\nconversation_queue = 64\n')"
make_send_script "$conversations"
echo "== Parley send-message with echo (no upstream), $connections connections, ${seconds}s"
warm_up "$work/send.lua" "$base"
profiled echo wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/send.lua" "$base" | tee "$work/echo.txt"

ms() {  # wrk latency ("512.34ms", "1.02s", "900.00us") in milliseconds
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.1f", v}' <<< "$1"
}
send=$(wrk_field "$work/send.txt" rps)
ideal=$(awk -v c="$connections" -v t="$ttft_ms" 'BEGIN{printf "%.1f", c * 1000 / t}')
p50=$(ms "$(wrk_field "$work/send.txt" 50%)")
p99=$(ms "$(wrk_field "$work/send.txt" 99%)")
mock50=$(ms "$(wrk_field "$work/direct.txt" 50%)")
mock99=$(ms "$(wrk_field "$work/direct.txt" 99%)")
errors=$(grep -E 'Non-2xx|Socket errors' "$work/send.txt" || echo "none")
echo_rps=$(wrk_field "$work/echo.txt" rps)
cold99=$(ms "$(wrk_field "$work/cold.txt" 99%)")
open_line=$(jq -r --arg t "$ttft_ms" '"\(.requests_per_s | floor) req/s, p50 \(.latency.whole.p50_ms * 10 | round / 10) ms, p99 \(.latency.whole.p99_ms * 10 | round / 10) ms (\(.latency.whole.p99_ms - ($t | tonumber) | . * 10 | round / 10) over the model), errors \([.errors[]] | add // 0)"' "$work/open.json")
echo "== summary: ${send} req/s of an ideal ${ideal} ($(awk -v s="$send" -v i="$ideal" 'BEGIN{printf "%.2f", s/i}')), $(awk -v s="$send" -v e="$echo_rps" 'BEGIN{printf "%.2f", s/e}') of echo's ${echo_rps}; p50 ${p50} ms (mock alone ${mock50}, added $(awk -v a="$p50" -v b="$mock50" 'BEGIN{printf "%.1f", a-b}')), p99 ${p99} ms (mock alone ${mock99}, added $(awk -v a="$p99" -v b="$mock99" 'BEGIN{printf "%.1f", a-b}'); in the first 3 s ${cold99}); errors: ${errors}"
echo "== open loop (evenly spread arrivals): ${open_line}"
