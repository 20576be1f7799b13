#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds Minerva, and runs the main job: greedy generation
# with a shared model, streaming text to stdout and timings to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
shared="${MINERVA_SHARED:-$PWD/../shared}"
model="${1:-$shared/models/stories260K-f32.gguf}"
./build/minerva run -m "$model" -p "Once upon a time" -n 128 --temp 0
