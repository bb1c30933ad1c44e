#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs every test with ctest.
# This is the command CI runs (.ci/run) and the one README.md gives.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
# Tests start servers on loopback ports chosen by the kernel, so they can run
# in parallel; LibTorch tests use one or two threads each.
ctest --output-on-failure -j "${LOUPE_TEST_JOBS:-2}" "$@"
