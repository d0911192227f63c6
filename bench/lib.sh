# Shared by the bench scripts (sourced, not run). Expects $bin (the parley
# binary) and $work (a scratch directory the caller removes), or call
# scenario_setup, which makes both.

server_pid=""

# scenario_setup: what every bench/scenarios script starts with. Expects
# $root (the checkout); sets $build, $bin (parley), $load (parley-load),
# $work (removed on exit, with the server stopped) and $out (where the JSON
# results go: $PARLEY_BENCH_OUT, or $work). With PARLEY_BENCH_JWT_SECRET set,
# servers run in auth.mode jwt and $load signs its users tokens with it.
scenario_setup() {
  build="${PARLEY_BUILD_DIR:-$root/build}"
  bin="${PARLEY_BIN:-$build/parley}"
  load_bin="$build/bench/parley-load"
  load="$load_bin"
  if [ -n "${PARLEY_BENCH_JWT_SECRET:-}" ]; then load=load_with_jwt; fi
  work="$(mktemp -d)"
  out="${PARLEY_BENCH_OUT:-$work}"
  mkdir -p "$out"
  trap 'stop_server; rm -rf "$work"' EXIT
}

# start_server DATABASE_URL [CONFIG_TOML]: runs parley on a free port; sets $base.
load_with_jwt() { "$load_bin" --jwt-secret "$PARLEY_BENCH_JWT_SECRET" "$@"; }

start_server() {
  local config="$work/parley.toml"
  printf '%s\n' "${2:-}" > "$config"
  if [ -n "${PARLEY_BENCH_JWT_SECRET:-}" ]; then
    printf '[auth]\nmode = "jwt"\njwt_secret = "%s"\n' "$PARLEY_BENCH_JWT_SECRET" >> "$config"
  fi
  # Emptied here, not by the redirection below: that runs in the child, which
  # may get to it after the loop has read the previous server's line.
  : > "$work/stdout"
  : > "$work/stderr"
  "$bin" serve --port 0 --config "$config" --database-url "$1" \
    > "$work/stdout" 2> "$work/stderr" &
  server_pid=$!
  await_listening server
}

# await_listening WHAT: waits up to 10 s for the process started last (its
# output in $work/stdout and $work/stderr, emptied before it started) to
# print "listening on http://HOST:PORT"; sets $base, or shows the output and
# exits.
await_listening() {
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/stdout" 2>/dev/null && break
    sleep 0.1
  done
  local port
  port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/stdout" | grep -o '[0-9]*$' || true)"
  if [ -z "$port" ]; then
    echo "$(basename "$0"): the $1 did not start listening within 10 s; its output:" >&2
    cat "$work/stdout" "$work/stderr" >&2
    exit 1
  fi
  base="http://127.0.0.1:$port"
}

# profiled NAME COMMAND…: runs COMMAND; with PARLEY_BENCH_PERF=DIR set, the
# server is sampled meanwhile (`perf record -g`) into DIR/NAME.data, for
# `perf report -i DIR/NAME.data`. The scenarios wrap their measured load in it.
# PARLEY_BENCH_PERF_CALL_GRAPH=dwarf,16384 unwinds stacks through code built
# without frame pointers (libc's malloc), at the price of far larger files.
profiled() {
  local name="$1"
  shift
  if [ -z "${PARLEY_BENCH_PERF:-}" ]; then
    "$@"
    return
  fi
  command -v perf > /dev/null || {
    echo "PARLEY_BENCH_PERF is set but perf is not installed (Debian: linux-perf)" >&2
    return 1
  }
  mkdir -p "$PARLEY_BENCH_PERF"
  perf record -g ${PARLEY_BENCH_PERF_CALL_GRAPH:+--call-graph "$PARLEY_BENCH_PERF_CALL_GRAPH"} -q -o "$PARLEY_BENCH_PERF/$name.data" -p "$server_pid" 2> /dev/null &
  local perf_pid=$!
  local status=0
  "$@" || status=$?
  kill -INT "$perf_pid" 2> /dev/null && wait "$perf_pid" 2> /dev/null || true
  return "$status"
}

# jq definitions the scenarios' tables use: `errors_text` turns a parley-load
# result's errors into "none" or "KIND N, …". Put "$jq_defs" before a program.
jq_defs='def errors_text: to_entries | map("\(.key) \(.value)") | join(", ")
  | if . == "" then "none" else . end; '

# strict_check FILE JQ_TEST [JQ_ARGS…]: with PARLEY_BENCH_STRICT set (ctest),
# fails the scenario unless the parley-load result FILE passes JQ_TEST.
strict_check() {
  local file="$1" test="$2"
  shift 2
  if [ -n "${PARLEY_BENCH_STRICT:-}" ] && ! jq -e "$@" "$test" "$file" > /dev/null; then
    echo "$(basename "$0"): requests failed in $(basename "$file") (PARLEY_BENCH_STRICT)" >&2
    exit 1
  fi
}

# rss_kib PID: the process's resident memory now, in KiB.
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start_mock MOCK_BINARY ARGS…: runs the mock upstream on a free port with
# ARGS (output in $work/mock.*); sets $mock_pid and $mock_base.
start_mock() {
  local binary="$1"
  shift
  "$binary" --port 0 --no-request-log "$@" > "$work/mock.out" 2> "$work/mock.err" &
  mock_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/mock.out" 2>/dev/null && break
    sleep 0.1
  done
  mock_base="$(grep -o 'http://[0-9.]*:[0-9]*' "$work/mock.out")"
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

# create_conversations N: creates N conversations on $base; their ids go to $work/ids.
create_conversations() {
  # One curl process per 256 creations: starting a process per request costs
  # more than the request.
  local urls=()
  for _ in $(seq 1 "$1"); do urls+=("$base/v1/conversations"); done
  printf '%s\n' "${urls[@]}" | xargs -P 4 -n 256 curl -s -X POST -H 'Content-Type: application/json' \
    -d '{}' -w '\n' | grep -o '"id":"[^"]*"' | cut -d'"' -f4 > "$work/ids"
}

# make_send_script N: creates N conversations on $base and writes $work/send.lua,
# a wrk script that spreads send-message requests over them. One conversation's
# operations run one at a time by design; different ones never wait for each other.
make_send_script() {
  create_conversations "$1"
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
}

# wrk_field FILE WHAT: "rps", or a latency percentile such as "50%" or "99%".
wrk_field() {
  if [ "$2" = rps ]; then
    grep 'Requests/sec' "$1" | awk '{print $2}'
  else
    grep -E "^ +$2 " "$1" | awk '{print $2}'
  fi
}
