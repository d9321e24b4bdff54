#!/usr/bin/env bash
# test.sh — the README's test command: installs dependencies, builds trlc, runs every test (ctest).
# Options through the environment: BUILD_DIR (default build), TRLC_SANITIZE=1 for ASan+UBSan,
# CI=true makes warnings errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${BUILD_DIR:-build}
opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ "${CI:-}" = "true" ] && opts+=(-DTRLC_WERROR=ON)
[ "${TRLC_SANITIZE:-0}" = "1" ] && opts+=(-DTRLC_SANITIZE=ON)
cmake -S . -B "$build" "${opts[@]}"
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --no-tests=error -j"$(nproc)"
