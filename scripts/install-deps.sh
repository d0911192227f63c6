#!/usr/bin/env bash
# Installs every Debian 12 package Parley needs to build, run and test.
# Idempotent: when everything is present it prints nothing and touches nothing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl
  clang libclang-rt-dev llvm
  libcaf-dev
  librestinio-dev libasio-dev libfmt-dev libhttp-parser-dev
  libsoci-dev libsqlite3-dev sqlite3 libpq-dev
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libpcre2-dev
  libcurl4-openssl-dev libssl-dev libboost-test-dev libboost-dev libbenchmark-dev
  postgresql wrk procps jq gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A new machine's package lists may be empty or stale.
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
