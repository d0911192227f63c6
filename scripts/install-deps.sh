#!/usr/bin/env bash
# Installs every Debian 12 package Parley needs to build, run and test.
# `--runtime` installs only what the built `parley` binary needs to run (its
# shared libraries and the CA store), for a machine or image that does not build.
# Idempotent: when everything is present it prints nothing and touches nothing.
set -euo pipefail

mode=all
if [ $# -eq 1 ] && [ "$1" = --runtime ]; then
  mode=runtime
elif [ $# -ne 0 ]; then
  echo "usage: $0 [--runtime]" >&2
  exit 2
fi

if [ "$mode" = runtime ]; then
  # The libraries `parley` is linked against (readelf -d: NEEDED), by package
  # (dpkg -S); they are what the -dev packages below depend on. Their own
  # dependencies (Kerberos, LDAP, nghttp2 … under libpq5 and libcurl4) come
  # with them, as do libc6, libgcc-s1 and libstdc++6.
  # ca-certificates: libcurl verifies providers' TLS against the system store.
  packages=(
    libcaf-core0.17
    libsoci-core4.0 libsoci-sqlite3-4.0 libsoci-postgresql4.0 libpq5 libsqlite3-0
    libcurl4 libssl3 libspdlog1.10 libfmt9 libtomlplusplus3 libpcre2-8-0 libhttp-parser2.9
    ca-certificates
  )
else
  packages=(
    build-essential cmake pkg-config git ca-certificates curl
    clang libclang-rt-dev llvm
    libcaf-dev
    librestinio-dev libasio-dev libfmt-dev libhttp-parser-dev
    libsoci-dev libsqlite3-dev sqlite3 libpq-dev
    nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libpcre2-dev
    libcurl4-openssl-dev libssl-dev libboost-test-dev libboost-dev libbenchmark-dev
    postgresql wrk procps jq gnuplot-nox
    chromium
    nginx-light
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# The build takes the API viewers from npm, and the tests a validator and a
# browser driver (chromium above is the browser). A machine
# with Node.js from elsewhere (its own npm inside) keeps it; Debian's
# otherwise, as a dpkg check for the name npm would clash with such a one.
if [ "$mode" = all ] && { ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A new machine's package lists may be empty or stale.
"${sudo_cmd[@]}" apt-get update -qq
# Packages with a service (nginx, PostgreSQL) would start it as they install:
# the tests start their own on free ports, so nothing is started here
# (policy-rc.d's 101: "action forbidden"), unless the machine has a policy.
if [ "$mode" = all ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod 755 /usr/sbin/policy-rc.d
  trap '"${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
