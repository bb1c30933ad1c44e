#!/usr/bin/env bash
# Configures and builds Loupe (Release) into ./build. Extra arguments are
# passed to `cmake --build` (e.g. --target loupe-server loupe).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${LOUPE_BUILD_JOBS:-$(nproc)}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "$jobs" "$@"
