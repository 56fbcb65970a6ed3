#!/usr/bin/env bash
# Runs kiln's main demo: the seed example (a Triton lookup plugin built into
# engines for float32, float16 and bfloat16, then loaded in a fresh process
# and checked against torch).  On the CPU by default; on the GPU when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ -f pyproject.toml ] && [ -f examples/python_plugin/build_lookup.py ]; then
  python3 -m pip install -q --no-build-isolation .
  cd examples/python_plugin
  python3 build_lookup.py
  python3 run_lookup.py
else
  cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/release -j"$(nproc)" --target kiln_demo >/dev/null
  build/release/kiln_demo build/release/libkiln_example_plugin.so build/release/demo.engine
fi
