#!/usr/bin/env bash
# Checks what `cmake --install` makes of a build tree: installs BUILD_DIR into a
# temporary prefix, then the installed `parley` must print its version, load
# the installed example config, serve /health and /ready (port 0, SQLite in
# memory) and exit 0 on SIGTERM. Prints `check-install: ok`; any failure
# exits 1 with the reason. The prefix is removed in every case.
# Usage: scripts/check-install.sh BUILD_DIR
set -euo pipefail

fail() {
  echo "check-install: FAILED: $*" >&2
  exit 1
}
[ $# -eq 1 ] || fail "usage: $0 BUILD_DIR"
build_dir=$1
[ -f "$build_dir/cmake_install.cmake" ] || fail "$build_dir is not a configured build tree"

prefix=$(mktemp -d)
work=$(mktemp -d)  # the server's working directory: no stray .env is read
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$prefix" "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM  # a ctest timeout cleans up too

show() {  # a log, indented, to stderr
  sed 's/^/  | /' "$1" >&2 || true
}

if ! cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1; then
  show "$work/install.log"
  fail "cmake --install $build_dir failed"
fi

# The layout the README documents; nothing but the server in bin/.
for f in bin/parley share/parley/parley.toml share/parley/parley.service \
  share/parley/nginx.conf share/doc/parley/README.md share/doc/parley/docs/architecture.md; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done
# The installed documents link only to one another.
"$(dirname "$0")/check-links.sh" "$prefix/share/doc/parley" 2> "$work/links.log" ||
  { show "$work/links.log"; fail "the installed documents have broken links"; }
[ -x "$prefix/bin/parley" ] || fail "bin/parley is not executable"
installed_bins=$(ls -A "$prefix/bin" | tr '\n' ' ')
[ "$installed_bins" = "parley " ] || fail "bin/ holds more than parley: $installed_bins"

parley=$prefix/bin/parley
cd "$work"
# Only what is set here reaches the server, so the caller's DATABASE_URL,
# PARLEY_AUTH_MODE or provider keys cannot change the outcome. A command, not
# a function: `env` execs parley, so $! below is the server's own pid.
run=(env -i PATH="$PATH")

if ! version=$("${run[@]}" "$parley" --version 2>"$work/version.log"); then
  show "$work/version.log"
  fail "parley --version failed"
fi
case $version in
  "parley "*) ;;
  *) fail "parley --version printed '$version'" ;;
esac

# --version takes no --config (that belongs to serve and migrate), so the
# example config is loaded by `migrate` against a throwaway database. The
# secrets it expects from parley.env are stand-ins here.
if ! "${run[@]}" PARLEY_JWT_SECRET=check-install OPENAI_API_KEY=check-install \
  "$parley" migrate --config "$prefix/share/parley/parley.toml" \
  --database-url sqlite::memory: >"$work/migrate.log" 2>&1; then
  show "$work/migrate.log"
  fail "the installed share/parley/parley.toml does not load"
fi

# The log exists before the server runs: the loop below may read it before
# the background shell has opened it, and a failed read would end this script.
: >"$work/stdout"
"${run[@]}" HOST=127.0.0.1 PORT=0 DATABASE_URL=sqlite::memory: \
  "$parley" serve >"$work/stdout" 2>"$work/stderr" &
pid=$!

port=
for _ in $(seq 150); do  # 15 s
  port=$(sed -n 's|^parley listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$work/stdout")
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    show "$work/stderr"
    fail "parley serve exited before it listened"
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  show "$work/stderr"
  fail "parley serve printed no listening line within 15 s"
fi

for route in health ready; do
  if ! body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/$route" 2>&1); then
    show "$work/stderr"
    fail "GET /$route: $body"
  fi
done

kill -TERM "$pid"
for _ in $(seq 300); do  # 30 s: in-flight requests get 10 s, then a flush
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  show "$work/stderr"
  fail "parley serve did not stop within 30 s of SIGTERM"
fi
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" -ne 0 ]; then
  show "$work/stderr"
  fail "parley serve exited with $rc after SIGTERM (expected 0)"
fi

echo "check-install: ok"
