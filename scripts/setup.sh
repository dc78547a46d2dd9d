#!/usr/bin/env bash
# Installs what Ferry needs to build, run and test, from Debian's archive. Idempotent and quiet when all is there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost-dev libsqlite3-dev libpq-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev libarchive-dev
  libgtest-dev libgmock-dev libhowardhinnant-date-dev libgoogle-perftools-dev
  python3 python3-venv python3-pip curl tzdata openssl systemd
  python3-django python3-psycopg2 postgresql
  python3-sentry-sdk prometheus chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
