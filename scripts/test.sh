#!/usr/bin/env bash
# Installs and builds tcorex if needed, then runs the whole test suite.
# Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

"$root/scripts/setup.sh"
cd "$root/build"
ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
