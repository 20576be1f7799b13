#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test under ctest.
# ../shared (the test models, references and vocabularies) must sit beside the checkout;
# tests that need it fail (not skip) when it is missing, and Vulkan tests fail when no Vulkan
# device (Mesa lavapipe is installed for that) can be found.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/install-deps.sh
if [ -f tests/server/package.json ]; then
  (cd tests/server && npm install --no-audit --no-fund --silent >/dev/null)
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
export MINERVA_SHARED="${MINERVA_SHARED:-$root/../shared}"
export MINERVA_REQUIRE_SHARED=1
export MINERVA_REQUIRE_VULKAN=1
[ -d "$MINERVA_SHARED/models" ] || { echo "error: shared data not found at $MINERVA_SHARED" >&2; exit 1; }
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
