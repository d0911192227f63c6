#!/usr/bin/env bash
# Runs Debian's nginx in the foreground with deploy/nginx.conf, rewritten to
# serve on 127.0.0.1:PORT in front of Parley instances on 127.0.0.1 at the
# ports given, with every file it writes under DIR: what the multi-instance
# test (tests/integration/test_api_behind_nginx.cpp) and
# bench/scenarios/scale-out.sh put in front of their instances. The routing
# (maps, upstream, locations) is the shipped file's, unchanged, unless
# PARLEY_NGINX_ROUTING=random: then every request goes to a random instance,
# as while a balancer rebalances (the worst case for the instances' caches).
#   scripts/local-nginx.sh DIR PORT INSTANCE_PORT...
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 DIR PORT INSTANCE_PORT..." >&2
  exit 2
fi
dir=$1 port=$2
shift 2
source_dir=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir/tmp"
servers=
for p in "$@"; do
  servers+="        server 127.0.0.1:$p max_fails=3 fail_timeout=10s;\n"
done
# Workers run as the user nginx starts as (root's would otherwise be nobody,
# who may not write DIR); every temporary path goes under DIR.
if [ "$(id -u)" -eq 0 ]; then user_line='user root;'; else user_line=''; fi
temp_paths="    client_body_temp_path $dir/tmp/body;\n    proxy_temp_path $dir/tmp/proxy;\n"
temp_paths+="    fastcgi_temp_path $dir/tmp/fastcgi;\n    uwsgi_temp_path $dir/tmp/uwsgi;\n"
temp_paths+="    scgi_temp_path $dir/tmp/scgi;\n"
random=
if [ "${PARLEY_NGINX_ROUTING:-}" = random ]; then random=1; fi
awk -v user_line="$user_line" -v dir="$dir" -v port="$port" -v servers="$servers" \
    -v temp_paths="$temp_paths" -v random="$random" '
  /^user / { if (user_line != "") print user_line; next }
  /^worker_rlimit_nofile/ { next }
  /^pid / { print "pid " dir "/nginx.pid;"; next }
  /^error_log / { print "error_log " dir "/error.log;"; next }
  /access_log / { sub(/access_log [^ ]+/, "access_log " dir "/access.log") }
  /^ *listen 80;/ { print "        listen 127.0.0.1:" port ";"; next }
  /hash \$parley_route_key consistent;/ && random { sub(/\$parley_route_key/, "$request_id") }
  /^ *server 127\.0\.0\.1:800[0-9]/ {
    if (!done_servers) { printf "%s", servers; done_servers = 1 }
    next
  }
  { print }
  /^http \{/ { printf "%s", temp_paths }
' "$source_dir/deploy/nginx.conf" > "$dir/nginx.conf"
exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;'
