#!/usr/bin/env bash
# Installs the Debian packages tcorex builds and tests with, then configures
# and builds the project in ./build. Run as root on Debian 12 (or with sudo).
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libscalapack-openmpi-dev
  libopenblas-dev liblapacke-dev
  libcmocka-dev
  libnifti2-dev zlib1g-dev
  # tcorex changepoints --plot: PLplot and its pngcairo device
  libplplot-dev plplot-driver-cairo
  # The SLURM tests (tests/test_slurm_*.c) start a private single-node
  # scheduler from these and submit the job scripts in jobs/ to it.
  slurmctld slurmd slurm-client
  # scripts/test_valgrind.sh runs an MPI test under memcheck.
  valgrind
  # scripts/fuzz.sh builds the fuzz targets with clang's libFuzzer
  # (libclang_rt.fuzzer is in libclang-rt-14-dev).
  clang libclang-rt-14-dev
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" = "--no-build" ]; then
  exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build" -j "$(nproc)"
