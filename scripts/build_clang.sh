#!/usr/bin/env bash
# Builds tcorex with clang into build-clang, so that CI checks that both
# compilers accept the code with -Wall -Wextra -Werror. Installs clang first
# when it is missing (Debian package clang).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v clang >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd="sudo"
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends clang
fi
CC=clang cmake -S "$root" -B "$root/build-clang" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build-clang" -j "$(nproc)"
