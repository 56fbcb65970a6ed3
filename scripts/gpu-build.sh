#!/usr/bin/env bash
# Configure and build kiln with CUDA and the Python extension in build/gpu
# (the first step of gpu-check.sh, alone: for quick runs on the GPU machine).
# Prints the environment to export for the Python tests and benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON -DKILN_CUDA=ON -DKILN_PYTHON=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build/gpu -j"$(nproc)" >/dev/null
echo "export KILN_BUILD_DIR=$PWD/build/gpu PYTHONPATH=$PWD/python:$PWD/examples/python_plugin"
