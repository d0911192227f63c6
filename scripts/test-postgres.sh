#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, owned by an unprivileged user,
# on a free loopback port, with its socket and data under DIR.
#   test-postgres.sh DIR init      create and start it; the port is in DIR/port
#   test-postgres.sh DIR stop      stop it (the fault tests do this under load)
#   test-postgres.sh DIR start     start it again
#   test-postgres.sh DIR destroy   stop it if running and remove DIR
set -euo pipefail
dir="$1"
action="$2"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

# PostgreSQL refuses to run as root: use the package's postgres user (or nobody).
owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
fi
as_owner() {
  if [ "$(id -un)" = "$owner" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi
}

pg_ctl() { as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" "$@"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$action" in
  init)
    mkdir -p "$dir"
    chown "$owner" "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U parley --auth=trust --no-locale -E UTF8 \
      --no-sync >"$dir/initdb.log"
    for _ in $(seq 1 20); do
      port=$((20000 + RANDOM % 40000))
      port_in_use "$port" && continue
      cat >"$dir/data/postgresql.auto.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
CONF
      if pg_ctl -w -t 60 start >/dev/null; then
        echo "$port" >"$dir/port"
        exit 0
      fi
    done
    echo "test-postgres: could not start PostgreSQL; see $dir/server.log" >&2
    exit 1
    ;;
  start) pg_ctl -w -t 60 start >/dev/null ;;
  stop) pg_ctl -w -t 60 -m fast stop >/dev/null ;;
  destroy)
    if [ -d "$dir/data" ]; then pg_ctl -w -t 60 -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 DIR init|start|stop|destroy" >&2
    exit 2
    ;;
esac
