#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, owned by an unprivileged user,
# on a free loopback port, with its socket and data under DIR.
#   test-postgres.sh DIR init      create and start it; the port is in DIR/port
#   test-postgres.sh DIR stop      stop it (the fault tests do this under load)
#   test-postgres.sh DIR start     start it again
#   test-postgres.sh DIR destroy   stop it (and its replica) if running and remove DIR
#   test-postgres.sh DIR replica   make (once) and start a streaming standby of
#                                  it under DIR/replica; prints its server URL
#   test-postgres.sh DIR replica-stop / replica-start   take the standby down, bring it back
#   test-postgres.sh DIR replica-hang / replica-unhang  stop (SIGSTOP) every process of the
#                                  standby, as a lost host would, and let them go on
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
replica_ctl() { as_owner "$bin/pg_ctl" -D "$dir/replica/data" -l "$dir/replica/server.log" "$@"; }

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
  replica)
    # Copied from the running cluster (initdb's superuser may replicate, and
    # its pg_hba.conf trusts local replication), then started on a port of
    # its own: it replays the primary's WAL as it streams in.
    # A run that stopped midway may have left it hung (replica-hang).
    if [ -f "$dir/replica/data/postmaster.pid" ]; then
      postmaster="$(head -1 "$dir/replica/data/postmaster.pid")"
      # shellcheck disable=SC2046
      kill -CONT "$postmaster" $(pgrep -P "$postmaster") 2>/dev/null || true
    fi
    if [ ! -f "$dir/replica/port" ]; then
      if [ -d "$dir/replica/data" ]; then replica_ctl -m immediate stop >/dev/null 2>&1 || true; fi
      rm -rf "$dir/replica"
      # A slot left by an attempt that failed to start.
      as_owner "$bin/psql" -q -h 127.0.0.1 -p "$(cat "$dir/port")" -U parley -d postgres -c \
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
         WHERE slot_name = 'parley_test_replica'" >/dev/null
      mkdir -p "$dir/replica"
      chown "$owner" "$dir/replica"
      # A replication slot keeps the WAL the standby has not received, also
      # while it is stopped (replica-stop).
      as_owner "$bin/pg_basebackup" -h 127.0.0.1 -p "$(cat "$dir/port")" -U parley \
        -D "$dir/replica/data" --write-recovery-conf --wal-method=stream --no-sync \
        --create-slot --slot=parley_test_replica --checkpoint=fast
      started=""
      for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        port_in_use "$port" && continue
        # Later lines win over the primary's, copied with the data.
        cat >>"$dir/replica/data/postgresql.auto.conf" <<CONF
port = $port
unix_socket_directories = '$dir/replica'
CONF
        if replica_ctl -w -t 60 start >/dev/null; then
          started="$port"
          break
        fi
      done
      if [ -z "$started" ]; then
        echo "test-postgres: could not start the replica; see $dir/replica/server.log" >&2
        exit 1
      fi
      echo "$started" >"$dir/replica/port"
    elif ! replica_ctl status >/dev/null 2>&1; then
      replica_ctl -w -t 60 start >/dev/null
    fi
    echo "postgresql://parley@127.0.0.1:$(cat "$dir/replica/port")"
    ;;
  replica-start) replica_ctl -w -t 60 start >/dev/null ;;
  replica-hang | replica-unhang)
    postmaster="$(head -1 "$dir/replica/data/postmaster.pid")"
    signal=STOP
    [ "$action" = replica-unhang ] && signal=CONT
    # shellcheck disable=SC2046
    kill -"$signal" "$postmaster" $(pgrep -P "$postmaster")
    ;;
  replica-stop) replica_ctl -w -t 60 -m fast stop >/dev/null ;;
  destroy)
    if [ -d "$dir/replica/data" ]; then
      replica_ctl -w -t 60 -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ -d "$dir/data" ]; then pg_ctl -w -t 60 -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 DIR init|start|stop|destroy|replica|replica-stop|replica-start|replica-hang|replica-unhang" >&2
    exit 2
    ;;
esac
