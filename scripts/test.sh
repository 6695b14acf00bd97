#!/usr/bin/env bash
# The test command: installs what it needs, builds everything and runs every test.
#   ./scripts/test.sh            (BUILD_DIR=build by default)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [ -f tests/compat/install.sh ]; then bash tests/compat/install.sh; fi

BUILD_DIR=${BUILD_DIR:-build}
# ccache keys on the compiler's command line; relative paths let a fresh clone (CI) reuse it.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DREMORA_BUILD_TESTS=ON
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$(nproc)"
