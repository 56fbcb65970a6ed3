#!/usr/bin/env bash
# Runs every kiln test on this machine (CPU; GPU tests skip without a GPU):
#   1. C build with warnings as errors, ctest; kiln installed and used from C
#   2. ASan+UBSan build, ctest (includes the engine truncation/bit-flip test)
#   3. libFuzzer targets for a bounded time each: the engine reader, and
#      engine execution (load, shapes, run) on mutated engines
#   4. pip install . and pytest (Triton kernels run under TRITON_INTERPRET=1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== C build and tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs" >/dev/null
ctest --test-dir build/release --output-on-failure

echo "== installed kiln used from C (cmake --install, find_package, pkg-config)"
bash scripts/test-install.sh

echo "== C tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DKILN_WERROR=ON -DKILN_SANITIZE=ON -DKILN_CUDA=OFF -DKILN_BENCH=OFF >/dev/null
cmake --build build/asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build/asan --output-on-failure

echo "== fuzzing the engine reader (${KILN_FUZZ_SECONDS:-60} s)"
CC=clang cmake -S . -B build/fuzz -DKILN_WERROR=ON -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DKILN_BENCH=OFF -DKILN_TESTS=ON >/dev/null
cmake --build build/fuzz --target fuzz_engine_reader fuzz_engine_exec kiln_make_exec_corpus -j"$jobs" >/dev/null
corpus=$(mktemp -d)
cp tests/fuzz/corpus/* "$corpus"/
build/fuzz/tests/fuzz/fuzz_engine_reader -max_total_time="${KILN_FUZZ_SECONDS:-60}" -print_final_stats=1 \
  "$corpus" 2>&1 | tail -n 12
rm -rf "$corpus"

echo "== fuzzing engine execution: load, shapes, run (${KILN_FUZZ_SECONDS:-60} s)"
corpus=$(mktemp -d)
build/fuzz/tests/fuzz/kiln_make_exec_corpus "$corpus" >/dev/null
(cd "$corpus" && "$root/build/fuzz/tests/fuzz/fuzz_engine_exec" -max_total_time="${KILN_FUZZ_SECONDS:-60}" \
  -print_final_stats=1 "$corpus" 2>&1 | tail -n 12)
rm -rf "$corpus"

if [ -f pyproject.toml ] && [ -d tests/python ]; then
  echo "== Python package and tests"
  python3 -m pip install -q --no-build-isolation . 
  # KILN_CLI: the Python tests also check what `kiln inspect` says of the engines they build.
  (cd tests/python && KILN_CLI="$root/build/release/kiln" TRITON_INTERPRET=1 python3 -m pytest -q -p no:cacheprovider .)
fi
echo "== all tests passed"
