#!/usr/bin/env bash
# Send-message requests/s against GET /health on the same server in the same run.
# Usage: bench/throughput.sh [connections=64] [seconds=10] [conversations=512]
# Needs a built server (scripts/build.sh parley) and wrk (scripts/install-deps.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${PARLEY_BIN:-${PARLEY_BUILD_DIR:-$root/build}/parley}"
connections="${1:-64}"
seconds="${2:-10}"
conversations="${3:-512}"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/parley.toml" <<TOML
[limits]
conversation_queue = 64
TOML
"$bin" serve --port 0 --config "$work/parley.toml" --database-url "sqlite://$work/bench.db" \
  > "$work/stdout" 2> "$work/stderr" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/stdout" 2>/dev/null && break
  sleep 0.1
done
port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/stdout" | grep -o '[0-9]*$')"
base="http://127.0.0.1:$port"

# Spread the load over many conversations: one conversation's operations run
# one at a time by design, different conversations never wait for each other.
for _ in $(seq 1 "$conversations"); do
  curl -s -X POST "$base/v1/conversations" -H 'Content-Type: application/json' -d '{}' |
    grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4
done > "$work/ids"

{
  echo "local ids = {"
  sed 's/.*/  "&",/' "$work/ids"
  echo "}"
  cat <<'LUA'
local body = '{"content":"hello world, how are you today?"}'
local headers = {["Content-Type"] = "application/json"}
local next_index = 0
function setup(thread)
  thread:set("offset", next_index)
  next_index = next_index + 1
end
function init(args)
  counter = (offset or 0) * 7919
end
function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  return wrk.format("POST", "/v1/conversations/" .. id .. "/messages", headers, body)
end
LUA
} > "$work/send.lua"

echo "== GET /health, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "$base/health" | tee "$work/health.txt"
echo "== POST /v1/conversations/{id}/messages (echo, reply), $connections connections, ${seconds}s, $conversations conversations"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/send.lua" "$base" | tee "$work/send.txt"

health=$(grep 'Requests/sec' "$work/health.txt" | awk '{print $2}')
send=$(grep 'Requests/sec' "$work/send.txt" | awk '{print $2}')
stored=$(sqlite3 "$work/bench.db" "SELECT COUNT(*) FROM messages" 2>/dev/null || echo "?")
echo "== summary: health ${health} req/s, send-message ${send} req/s, ratio $(awk -v s="$send" -v h="$health" 'BEGIN{printf "%.2f", s/h}'), messages stored ${stored}"
